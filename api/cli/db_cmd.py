"""``backupctl db``: the schema, for deployments that migrate in a step of their own."""

from __future__ import annotations

import click
from alembic.runtime.migration import MigrationContext

from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option
from orchestrator.infra.db import Database


@click.group("db")
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@json_option
@pass_app
@handle_errors
def upgrade(app: App, as_json: bool) -> None:
    """Migrate the schema to this version's newest revision (a no-op when it is there)."""
    database = Database.from_settings(app.settings)
    with database.engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
    emit(
        {"database": database.engine.url.render_as_string(hide_password=True), "revision": revision},
        as_json,
    )
    database.dispose()
