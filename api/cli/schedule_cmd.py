"""``backupctl schedule``: the users' own backup schedules of their VMs (CloudStack format)."""

from __future__ import annotations

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option
from orchestrator.usecases import inventory, schedules


@click.group()
def schedule() -> None:
    """User backup schedules (CloudStack format)."""


@schedule.command("create")
@click.argument("vm_ref")
@click.option(
    "--interval", "interval_type", type=click.Choice(["HOURLY", "DAILY", "WEEKLY", "MONTHLY"]), required=True
)
@click.option("--schedule", "spec", required=True, help="MM, MM:HH, or MM:HH:DD (weekly 1-7 = Sun-Sat).")
@click.option("--timezone", default="UTC", show_default=True)
@click.option("--max-backups", type=int, default=0, show_default=True, help="0 keeps all.")
@json_option
@pass_app
@handle_errors
def schedule_create(
    app: App, vm_ref: str, interval_type: str, spec: str, timezone: str, max_backups: int, as_json: bool
) -> None:
    with app.scope() as s:
        row = schedules.create(
            s,
            vm_id=inventory.find_vm(s, vm_ref).id,
            interval_type=interval_type,
            schedule=spec,
            timezone=timezone,
            max_backups=max_backups,
        )
        emit(views.schedule(row), as_json)


@schedule.command("update")
@click.argument("schedule_id")
@click.option("--schedule", "spec")
@click.option("--timezone")
@click.option("--max-backups", type=int)
@json_option
@pass_app
@handle_errors
def schedule_update(
    app: App, schedule_id: str, spec: str | None, timezone: str | None, max_backups: int | None, as_json: bool
) -> None:
    with app.scope() as s:
        row = schedules.update(s, schedule_id, schedule=spec, timezone=timezone, max_backups=max_backups)
        emit(views.schedule(row), as_json)


@schedule.command("list")
@click.option("--vm", "vm_ref")
@json_option
@pass_app
@handle_errors
def schedule_list(app: App, vm_ref: str | None, as_json: bool) -> None:
    with app.scope() as s:
        vm_id = inventory.find_vm(s, vm_ref).id if vm_ref else None
        emit([views.schedule(r) for r in schedules.list_schedules(s, vm_id)], as_json)


@schedule.command("delete")
@click.argument("schedule_id")
@json_option
@pass_app
@handle_errors
def schedule_delete(app: App, schedule_id: str, as_json: bool) -> None:
    with app.scope() as s:
        schedules.delete(s, schedule_id)
    emit({"deleted": schedule_id}, as_json)
