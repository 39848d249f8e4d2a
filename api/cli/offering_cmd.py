"""``backupctl offering``: the SLA offerings (gold, silver, bronze...) imported from providers."""

from __future__ import annotations

from typing import Any

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option, paging_options
from api.cli.parsing import time_range
from orchestrator.usecases import offerings

OFFERING_COLUMNS = ["id", "name", "provider", "rpo", "timezone", "windows", "allow_user_driven_backups"]


def sla_options(fn: Any) -> Any:
    options = [
        click.option("--description"),
        click.option("--rpo", help="Most data a VM may lose, e.g. 6h, 1d."),
        click.option("--timezone", help="Time zone of windows and blackouts, e.g. Europe/Berlin."),
        click.option("--window", "windows", multiple=True, help="[days@]HH:MM-HH:MM, repeatable."),
        click.option("--blackout", "blackouts", multiple=True, help="[days@]HH:MM-HH:MM, repeatable."),
        click.option("--retention-count", type=int, help="Keep this many restore points."),
        click.option("--keep-daily", type=int),
        click.option("--keep-weekly", type=int),
        click.option("--keep-monthly", type=int),
        click.option("--user-driven/--no-user-driven", "allow_user_driven_backups", default=None),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _sla_fields(options: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in options.items() if v is not None and k not in ("windows", "blackouts")}
    if options.get("windows"):
        fields["windows"] = [time_range(w) for w in options["windows"]]
    if options.get("blackouts"):
        fields["blackouts"] = [time_range(b) for b in options["blackouts"]]
    return fields


@click.group()
def offering() -> None:
    """SLA offerings (gold, silver, bronze...)."""


@offering.command("import")
@click.argument("name")
@click.option("--zone", required=True)
@click.option("--provider", "provider_ref", required=True)
@click.option("--external-id", required=True, help="The provider's offering id (see `provider offerings`).")
@sla_options
@json_option
@pass_app
@handle_errors
def offering_import(
    app: App, name: str, zone: str, provider_ref: str, external_id: str, as_json: bool, **sla: Any
) -> None:
    fields = _sla_fields(sla)
    if "rpo" not in fields:
        raise click.UsageError("--rpo is required")
    with app.scope() as s:
        row = offerings.import_offering(
            s, name=name, zone=zone, provider=provider_ref, external_id=external_id, **fields
        )
        emit(views.offering(row), as_json)


@offering.command("list")
@click.option("--zone")
@click.option("--keyword")
@paging_options
@json_option
@pass_app
@handle_errors
def offering_list(
    app: App, zone: str | None, keyword: str | None, page: int, pagesize: int, as_json: bool
) -> None:
    with app.scope() as s:
        result = offerings.list_offerings(s, zone=zone, keyword=keyword, page=page, pagesize=pagesize)
        emit([views.offering(o) for o in result.items], as_json, OFFERING_COLUMNS)


@offering.command("show")
@click.argument("offering_ref")
@json_option
@pass_app
@handle_errors
def offering_show(app: App, offering_ref: str, as_json: bool) -> None:
    with app.scope() as s:
        emit(views.offering(offerings.find(s, offering_ref)), as_json)


@offering.command("update")
@click.argument("offering_ref")
@click.option("--name")
@sla_options
@json_option
@pass_app
@handle_errors
def offering_update(app: App, offering_ref: str, name: str | None, as_json: bool, **sla: Any) -> None:
    with app.scope() as s:
        row = offerings.update_offering(s, offerings.find(s, offering_ref).id, name=name, **_sla_fields(sla))
        emit(views.offering(row), as_json)


@offering.command("delete")
@click.argument("offering_ref")
@json_option
@pass_app
@handle_errors
def offering_delete(app: App, offering_ref: str, as_json: bool) -> None:
    with app.scope() as s:
        row = offerings.delete_offering(s, offerings.find(s, offering_ref).id)
        emit({"deleted": row.id, "name": row.name}, as_json)
