"""``backupctl audit``: the audit log, who did what."""

from __future__ import annotations

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option, paging_options
from orchestrator.usecases import audit


@click.command("audit")
@click.option("--object", "object_id", help="Only events about this object id.")
@click.option("--action", help="e.g. backup.create, offering.update.")
@paging_options
@json_option
@pass_app
@handle_errors
def audit_log(
    app: App, object_id: str | None, action: str | None, page: int, pagesize: int, as_json: bool
) -> None:
    """Who did what, newest first."""
    with app.scope() as s:
        events = audit.list_events(s, object_id=object_id, action=action, page=page, pagesize=pagesize)
        emit([views.audit_event(e) for e in events.items], as_json, ["at", "actor", "action", "object_id"])
