"""``backupctl offering``: the SLA offerings (gold, silver, bronze...) imported from providers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option, paging_options
from api.cli.parsing import time_range
from orchestrator.usecases import offerings

OFFERING_COLUMNS = ["id", "name", "provider", "rpo", "timezone", "windows", "allow_user_driven_backups"]


def sla_options(*, importing: bool) -> Callable[[Any], Any]:
    """The SLA and retention options, worded for ``offering import`` or ``offering update``."""
    replaces = "" if importing else " Given, they replace the current ones."
    options = [
        click.option("--description", help="Free text shown with the offering."),
        click.option(
            "--rpo",
            help="Most data a VM may lose, e.g. 90m, 6h, 1d12h (units s m h d w; at least 15m)."
            + (" Required." if importing else ""),
        ),
        click.option(
            "--timezone",
            help="Time zone of windows, blackouts and retention days, e.g. Europe/Berlin."
            + (" Default: UTC." if importing else ""),
        ),
        click.option(
            "--window",
            "windows",
            multiple=True,
            help="When backups may run: [DAYS@]HH:MM-HH:MM, e.g. 18:00-08:00, sat,sun@00:00-24:00. "
            "Repeatable; none: any time." + replaces,
        ),
        click.option(
            "--blackout",
            "blackouts",
            multiple=True,
            help="No backups then, cut out of the windows: [DAYS@]HH:MM-HH:MM. Repeatable." + replaces,
        ),
        click.option("--retention-count", type=int, help="Keep the newest N restore points."),
        click.option("--keep-daily", type=int, help="Also keep the newest point of each of the last N days."),
        click.option(
            "--keep-weekly", type=int, help="Also keep the newest point of each of the last N weeks."
        ),
        click.option(
            "--keep-monthly", type=int, help="Also keep the newest point of each of the last N months."
        ),
        click.option(
            "--user-driven/--no-user-driven",
            "allow_user_driven_backups",
            default=None,
            help="Whether users may take backups and keep schedules themselves (admins always may)."
            + (" Default: they may." if importing else ""),
        ),
    ]

    def decorate(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


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
@click.option("--zone", required=True, help="Zone of the offering (name or id).")
@click.option(
    "--provider", "provider_ref", required=True, help="Provider (name or id); enabled, serving the zone."
)
@click.option("--external-id", required=True, help="The provider's offering id (see `provider offerings`).")
@sla_options(importing=True)
@json_option
@pass_app
@handle_errors
def offering_import(
    app: App, name: str, zone: str, provider_ref: str, external_id: str, as_json: bool, **sla: Any
) -> None:
    """Import a provider's policy as an SLA offering (admins); --rpo is required.

    RPO: the most data a VM may lose, e.g. 90m, 6h, 1d12h (at least 15m). Windows and blackouts
    are [DAYS@]HH:MM-HH:MM in --timezone: a window may cross midnight (18:00-08:00), DAYS
    (mon,...,sun) limits it to the days it starts on (sat,sun@00:00-24:00); blackouts are cut
    out of the windows. An RPO the windows can never meet (backups barred for longer than the
    RPO in a row) is refused, as are blackouts that cover every window.

    Retention (periods counted in --timezone) applies to a VM's restore points under the offering,
    except a user schedule's, which keep to its --max-backups. With none, every point is kept."""
    fields = _sla_fields(sla)
    if "rpo" not in fields:
        raise click.UsageError("--rpo is required")
    with app.scope() as s:
        row = offerings.import_offering(
            s, name=name, zone=zone, provider=provider_ref, external_id=external_id, **fields
        )
        emit(views.offering(row), as_json)


@offering.command("list")
@click.option("--zone", help="Only offerings in this zone (name or id).")
@click.option("--keyword", help="Only offerings whose name contains this text.")
@paging_options
@json_option
@pass_app
@handle_errors
def offering_list(
    app: App, zone: str | None, keyword: str | None, page: int, pagesize: int, as_json: bool
) -> None:
    """List the offerings, by name."""
    with app.scope() as s:
        result = offerings.list_offerings(s, zone=zone, keyword=keyword, page=page, pagesize=pagesize)
        emit([views.offering(o) for o in result.items], as_json, OFFERING_COLUMNS)


@offering.command("show")
@click.argument("offering_ref")
@json_option
@pass_app
@handle_errors
def offering_show(app: App, offering_ref: str, as_json: bool) -> None:
    """Show one offering (name or id; a name used in several zones needs the id)."""
    with app.scope() as s:
        emit(views.offering(offerings.find(s, offering_ref)), as_json)


@offering.command("update")
@click.argument("offering_ref")
@click.option("--name", help="New name, unique in the offering's zone.")
@sla_options(importing=False)
@json_option
@pass_app
@handle_errors
def offering_update(app: App, offering_ref: str, name: str | None, as_json: bool, **sla: Any) -> None:
    """Change an offering (admins); what is not given keeps its value.

    Formats as for `offering import`. The SLA is checked as a whole (an RPO the windows can
    never meet is refused), and a refused update changes nothing. A new SLA re-plans the
    offering's VMs at once: their planned backups move inside the new windows."""
    with app.scope() as s:
        row = offerings.update_offering(s, offerings.find(s, offering_ref).id, name=name, **_sla_fields(sla))
        emit(views.offering(row), as_json)


@offering.command("delete")
@click.argument("offering_ref")
@json_option
@pass_app
@handle_errors
def offering_delete(app: App, offering_ref: str, as_json: bool) -> None:
    """Delete an offering (admins); refused while VMs are assigned to it.

    Restore points made under it stay restorable."""
    with app.scope() as s:
        row = offerings.delete_offering(s, offerings.find(s, offering_ref).id)
        emit({"deleted": row.id, "name": row.name}, as_json)
