"""Operator commands: backup providers and the SLA offerings imported from them."""

from __future__ import annotations

import json
from typing import Any

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option, paging_options
from api.cli.parsing import time_range
from orchestrator.usecases import backup_providers, offerings

OFFERING_COLUMNS = ["id", "name", "provider", "rpo", "timezone", "windows", "allow_user_driven_backups"]


@click.group()
def provider() -> None:
    """Backup providers (drivers for back ends)."""


@provider.command("add")
@click.argument("name")
@click.option("--driver", required=True, help="Installed driver, e.g. dummy.")
@click.option("--zone")
@click.option("--config", "config_json", help="Driver configuration as a JSON object.")
@json_option
@pass_app
@handle_errors
def provider_add(
    app: App, name: str, driver: str, zone: str | None, config_json: str | None, as_json: bool
) -> None:
    try:
        config = json.loads(config_json) if config_json else {}
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"--config is not JSON: {exc}") from None
    with app.scope() as s:
        row = backup_providers.add(s, name=name, driver=driver, zone=zone, config=config)
        emit(views.provider(row, s.driver(row)), as_json)


@provider.command("list")
@json_option
@pass_app
@handle_errors
def provider_list(app: App, as_json: bool) -> None:
    with app.scope() as s:
        rows = [views.provider(p, s.driver(p)) for p in backup_providers.list_providers(s)]
        emit(rows, as_json, ["id", "name", "driver", "enabled", "capabilities"])


@provider.command("offerings")
@click.argument("provider_ref")
@click.option("--zone")
@json_option
@pass_app
@handle_errors
def provider_offerings(app: App, provider_ref: str, zone: str | None, as_json: bool) -> None:
    """The provider's own policies that can be imported as offerings."""
    with app.scope() as s:
        items = backup_providers.list_offerings(s, provider_ref, zone)
        emit([views.provider_offering(o) for o in items], as_json)


@provider.command("enable")
@click.argument("provider_ref")
@json_option
@pass_app
@handle_errors
def provider_enable(app: App, provider_ref: str, as_json: bool) -> None:
    with app.scope() as s:
        emit(views.provider(backup_providers.set_enabled(s, provider_ref, True)), as_json)


@provider.command("disable")
@click.argument("provider_ref")
@json_option
@pass_app
@handle_errors
def provider_disable(app: App, provider_ref: str, as_json: bool) -> None:
    with app.scope() as s:
        emit(views.provider(backup_providers.set_enabled(s, provider_ref, False)), as_json)


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
