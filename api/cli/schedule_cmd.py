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
    "--interval",
    "interval_type",
    type=click.Choice(["HOURLY", "DAILY", "WEEKLY", "MONTHLY"]),
    required=True,
    help="How often it runs.",
)
@click.option(
    "--schedule", "spec", required=True, help="When: MM, MM:HH or MM:HH:DD by interval (see above)."
)
@click.option(
    "--timezone", default="UTC", show_default=True, help="Time zone of --schedule, e.g. Europe/Berlin."
)
@click.option(
    "--max-backups",
    type=int,
    default=0,
    show_default=True,
    help="Restore points it keeps of its own (at most 1000); 0 keeps all.",
)
@json_option
@pass_app
@handle_errors
def schedule_create(
    app: App, vm_ref: str, interval_type: str, spec: str, timezone: str, max_backups: int, as_json: bool
) -> None:
    """Create a VM's backup schedule for an interval, or replace the one it has.

    --schedule is MM (HOURLY), MM:HH (DAILY), MM:HH:DD (WEEKLY, DD 1-7 with 1 = Sunday) or
    MM:HH:DD (MONTHLY, DD 1-28), in --timezone; e.g. 30:02 is daily at 02:30. One schedule per
    VM and interval. Users may keep one only where the VM's offering allows user-driven
    backups. A run that finds the VM's previous backup still going is skipped."""
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
@click.option("--schedule", "spec", help="New time, in its interval's format (see `schedule create`).")
@click.option("--timezone", help="New time zone, e.g. Europe/Berlin.")
@click.option("--max-backups", type=int, help="Restore points it keeps of its own; 0 keeps all.")
@json_option
@pass_app
@handle_errors
def schedule_update(
    app: App, schedule_id: str, spec: str | None, timezone: str | None, max_backups: int | None, as_json: bool
) -> None:
    """Change a schedule (by id); what is not given keeps its value. Its interval stays."""
    with app.scope() as s:
        row = schedules.update(s, schedule_id, schedule=spec, timezone=timezone, max_backups=max_backups)
        emit(views.schedule(row), as_json)


@schedule.command("list")
@click.option("--vm", "vm_ref", help="Only this VM's (name or id).")
@json_option
@pass_app
@handle_errors
def schedule_list(app: App, vm_ref: str | None, as_json: bool) -> None:
    """List backup schedules and their next run (users see only their own)."""
    with app.scope() as s:
        vm_id = inventory.find_vm(s, vm_ref).id if vm_ref else None
        emit([views.schedule(r) for r in schedules.list_schedules(s, vm_id)], as_json)


@schedule.command("delete")
@click.argument("schedule_id")
@json_option
@pass_app
@handle_errors
def schedule_delete(app: App, schedule_id: str, as_json: bool) -> None:
    """Delete a schedule (by id). Its restore points stay; the offering's retention governs them."""
    with app.scope() as s:
        schedules.delete(s, schedule_id)
    emit({"deleted": schedule_id}, as_json)
