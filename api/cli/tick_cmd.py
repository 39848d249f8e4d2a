"""``backupctl tick``: one scheduler round, for the embedded default (cron or a systemd timer)."""

from __future__ import annotations

import click

from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option
from orchestrator.usecases import rounds


@click.command()
@json_option
@pass_app
@handle_errors
def tick(app: App, as_json: bool) -> None:
    """Fire due user schedules, release due SLA backups, re-plan the rest, deliver due jobs.

    On the embedded default, run it every minute (cron or a systemd timer)."""
    app.actor.require_admin("run the scheduler")
    emit(rounds.tick(app.core), as_json)
