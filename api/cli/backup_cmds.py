"""User commands: offerings on VMs, backups, schedules, restores, jobs."""

from __future__ import annotations

import sys

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.inventory_cmds import vm
from api.cli.output import emit, handle_errors, json_option, paging_options
from orchestrator.usecases import (
    assignments,
    backups,
    inventory,
    jobs,
    offerings,
    pruning,
    restores,
    rounds,
    schedules,
    verification,
)

BACKUP_COLUMNS = ["id", "vm_name", "offering", "type", "status", "size", "date"]
JOB_COLUMNS = ["id", "kind", "state", "subject_id", "attempts", "progress", "error"]


def _finish(job: dict, as_json: bool) -> None:
    """Print the job; a job that failed makes the command fail too."""
    emit(job, as_json)
    if job["state"] == "failed":
        sys.exit(1)


@vm.command("assign")
@click.argument("vm_ref")
@click.argument("offering_ref")
@json_option
@pass_app
@handle_errors
def vm_assign(app: App, vm_ref: str, offering_ref: str, as_json: bool) -> None:
    """Put a VM under a backup offering."""
    with app.scope() as s:
        target = inventory.find_vm(s, vm_ref)
        row = assignments.assign(s, target.id, offerings.find(s, offering_ref, target.zone_id).id)
        emit(views.vm(row), as_json)


@vm.command("unassign")
@click.argument("vm_ref")
@click.option("--forced", is_flag=True, help="Also where the provider then deletes the VM's backups.")
@json_option
@pass_app
@handle_errors
def vm_unassign(app: App, vm_ref: str, forced: bool, as_json: bool) -> None:
    """Take a VM out of its offering (its schedules go too)."""
    with app.scope() as s:
        emit(views.vm(assignments.remove(s, inventory.find_vm(s, vm_ref).id, forced=forced)), as_json)


@vm.command("change-offering")
@click.argument("vm_ref")
@click.argument("offering_ref")
@click.option("--forced", is_flag=True, help="Also where the old provider then deletes the VM's backups.")
@json_option
@pass_app
@handle_errors
def vm_change_offering(app: App, vm_ref: str, offering_ref: str, forced: bool, as_json: bool) -> None:
    """Move a VM to another offering; old restore points stay restorable, the next backup is FULL."""
    with app.scope() as s:
        target = inventory.find_vm(s, vm_ref)
        new = offerings.find(s, offering_ref, target.zone_id)
        emit(views.vm(assignments.change(s, target.id, new.id, forced=forced)), as_json)


@click.group()
def backup() -> None:
    """Restore points."""


@backup.command("create")
@click.argument("vm_ref")
@click.option("--idempotency-key", help="Repeat-safe: the same key never makes a second backup.")
@json_option
@pass_app
@handle_errors
def backup_create(app: App, vm_ref: str, idempotency_key: str | None, as_json: bool) -> None:
    """Back up every volume of a VM now, as one restore point."""
    _finish(
        app.run_job(
            lambda s: backups.create_backup(
                s, inventory.find_vm(s, vm_ref).id, idempotency_key=idempotency_key
            )
        ),
        as_json,
    )


@backup.command("list")
@click.option("--vm", "vm_ref")
@click.option("--zone")
@click.option("--account")
@click.option("--offering", "offering_ref")
@click.option("--status")
@click.option("--keyword")
@click.option("--all", "include_removed", is_flag=True, help="Include removed and expunged points.")
@paging_options
@json_option
@pass_app
@handle_errors
def backup_list(
    app: App,
    vm_ref: str | None,
    zone: str | None,
    account: str | None,
    offering_ref: str | None,
    status: str | None,
    keyword: str | None,
    include_removed: bool,
    page: int,
    pagesize: int,
    as_json: bool,
) -> None:
    with app.scope() as s:
        result = backups.list_backups(
            s,
            vm_id=inventory.find_vm(s, vm_ref).id if vm_ref else None,
            zone=zone,
            account=account,
            offering_id=offerings.find(s, offering_ref).id if offering_ref else None,
            status=status,
            keyword=keyword,
            include_removed=include_removed,
            page=page,
            pagesize=pagesize,
        )
        rows = [views.backup(b) for b in result.items]
        if as_json:
            emit({"count": result.total, "page": page, "pagesize": pagesize, "backups": rows}, True)
        else:
            emit(rows, False, BACKUP_COLUMNS)


@backup.command("show")
@click.argument("backup_id")
@json_option
@pass_app
@handle_errors
def backup_show(app: App, backup_id: str, as_json: bool) -> None:
    with app.scope() as s:
        emit(views.backup(backups.show(s, backup_id)), as_json)


@backup.command("prune")
@click.option("--vm", "vm_ref", help="Only this VM.")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted, delete nothing.")
@json_option
@pass_app
@handle_errors
def backup_prune(app: App, vm_ref: str | None, dry_run: bool, as_json: bool) -> None:
    """Apply retention: offerings' keep rules and schedules' max backups, never breaking a chain."""
    with app.scope() as s:
        vm_id = inventory.find_vm(s, vm_ref).id if vm_ref else None
        decisions = pruning.prune(s, vm_id=vm_id, dry_run=dry_run)
    rows = [{"vm_id": d.vm_id, "rule": d.rule, "expire": d.expire, "job_id": d.job_id} for d in decisions]
    emit(rows, as_json)


@backup.command("delete")
@click.argument("backup_id")
@click.option("--forced", is_flag=True, help="Delete the whole chain where the provider can only do that.")
@json_option
@pass_app
@handle_errors
def backup_delete(app: App, backup_id: str, forced: bool, as_json: bool) -> None:
    _finish(app.run_job(lambda s: backups.delete_backup(s, backup_id, forced=forced)), as_json)


@backup.command("verify")
@click.argument("backup_id")
@json_option
@pass_app
@handle_errors
def backup_verify(app: App, backup_id: str, as_json: bool) -> None:
    """Re-read a restore point at its back end and check it (a point found damaged becomes Error)."""
    _finish(app.run_job(lambda s: verification.verify_backup(s, backup_id)), as_json)


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


@click.group()
def restore() -> None:
    """Restores from restore points."""


@restore.command("vm")
@click.argument("backup_id")
@json_option
@pass_app
@handle_errors
def restore_vm(app: App, backup_id: str, as_json: bool) -> None:
    """Restore every volume of a VM in place (recreating the VM if it was destroyed)."""
    _finish(app.run_job(lambda s: restores.restore_vm(s, backup_id)), as_json)


@restore.command("new-vm")
@click.argument("backup_id")
@click.option("--name", required=True, help="Name of the new VM.")
@click.option("--host", help="Host of the new VM (default: the original's).")
@json_option
@pass_app
@handle_errors
def restore_new_vm(app: App, backup_id: str, name: str, host: str | None, as_json: bool) -> None:
    """Create a new VM from a restore point (new id and volume paths); the original stays."""
    _finish(app.run_job(lambda s: restores.restore_to_new_vm(s, backup_id, name, host)), as_json)


@restore.command("volume")
@click.argument("backup_id")
@click.option("--volume", "volume_id", required=True, help="Volume id as recorded in the restore point.")
@click.option("--vm", "vm_ref", required=True, help="VM to attach the restored volume to (same zone).")
@json_option
@pass_app
@handle_errors
def restore_volume(app: App, backup_id: str, volume_id: str, vm_ref: str, as_json: bool) -> None:
    """Restore one volume as a new data disk attached to a VM."""
    _finish(
        app.run_job(
            lambda s: restores.restore_volume(s, backup_id, volume_id, inventory.find_vm(s, vm_ref).id)
        ),
        as_json,
    )


@click.group()
def job() -> None:
    """Jobs: every backup, restore and delete runs as one."""


@job.command("list")
@click.option("--state")
@click.option("--kind")
@click.option("--subject")
@paging_options
@json_option
@pass_app
@handle_errors
def job_list(
    app: App,
    state: str | None,
    kind: str | None,
    subject: str | None,
    page: int,
    pagesize: int,
    as_json: bool,
) -> None:
    with app.scope() as s:
        result = jobs.list_jobs(s, state=state, kind=kind, subject_id=subject, page=page, pagesize=pagesize)
        emit([views.job(j) for j in result.items], as_json, JOB_COLUMNS)


@job.command("show")
@click.argument("job_id")
@json_option
@pass_app
@handle_errors
def job_show(app: App, job_id: str, as_json: bool) -> None:
    with app.scope() as s:
        emit(views.job(jobs.show(s, job_id)), as_json)


@job.command("cancel")
@click.argument("job_id")
@json_option
@pass_app
@handle_errors
def job_cancel(app: App, job_id: str, as_json: bool) -> None:
    with app.scope() as s:
        emit(views.job(jobs.cancel(s, job_id)), as_json)


@job.command("logs")
@click.argument("job_id")
@json_option
@pass_app
@handle_errors
def job_logs(app: App, job_id: str, as_json: bool) -> None:
    """What happened to the job: attempts, workers, retries, failures."""
    with app.scope() as s:
        entries = [views.job_log(e) for e in jobs.logs(s, job_id)]
    if as_json:
        emit(entries, True)
        return
    for e in entries:
        click.echo(f"{e['at']}  {e['level']:<7}  {e['message']}")


@click.command()
@json_option
@pass_app
@handle_errors
def tick(app: App, as_json: bool) -> None:
    """Fire due user schedules, release due SLA backups, re-plan the rest, deliver due jobs.

    On the embedded default, run it every minute (cron or a systemd timer)."""
    app.actor.require_admin("run the scheduler")
    emit(rounds.tick(app.core), as_json)
