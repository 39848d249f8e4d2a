"""``backupctl init``: the first step of an installation: the database, the admin account and key."""

from __future__ import annotations

import click

from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option
from orchestrator.usecases import accounts


@click.command()
@json_option
@pass_app
@handle_errors
def init(app: App, as_json: bool) -> None:
    """Create the database (or migrate it) and, the first time, the admin account and key."""
    issued = accounts.bootstrap(app.core)
    out = {
        "home": str(app.settings.home),
        "database": app.core.db.engine.url.render_as_string(hide_password=True),
        "created_admin": issued is not None,
    }
    if issued:
        out |= {"apikey": issued.apikey, "secretkey": issued.secretkey}
    emit(out, as_json)
    if issued and not as_json:
        click.echo("\nThe secret key is shown only now: keep it.")
