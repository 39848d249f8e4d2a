"""``backupctl backup``: restore points: take, list, prune, delete and verify them."""

from __future__ import annotations

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.follow import no_wait_option, run_and_finish
from api.cli.output import emit, finish_job, handle_errors, json_option, paging_options
from orchestrator.usecases import backups, inventory, offerings, pruning, verification

BACKUP_COLUMNS = ["id", "vm_name", "offering", "type", "status", "logical_size", "stored_size", "date"]


@click.group()
def backup() -> None:
    """Restore points."""


@backup.command("create")
@click.argument("vm_ref")
@click.option("--idempotency-key", help="Repeat-safe: the same key never makes a second backup.")
@no_wait_option
@json_option
@pass_app
@handle_errors
def backup_create(app: App, vm_ref: str, idempotency_key: str | None, no_wait: bool, as_json: bool) -> None:
    """Back up every volume of a VM now, as one restore point, showing its progress until it ends."""
    run_and_finish(
        app,
        lambda s: backups.create_backup(s, inventory.find_vm(s, vm_ref).id, idempotency_key=idempotency_key),
        as_json,
        no_wait,
    )


@backup.command("list")
@click.option("--vm", "vm_ref", help="Only this VM's (name or id).")
@click.option("--zone", help="Only those in this zone (name or id).")
@click.option("--account", help="Only this account's (name or id; admins).")
@click.option("--offering", "offering_ref", help="Only those made under this offering (name or id).")
@click.option(
    "--status",
    help="Only this status: Allocated, Queued, BackingUp, BackedUp, Error, Failed, Restoring, Removed, "
    "Expunged.",
)
@click.option("--keyword", help="Only those of VMs whose name contains this text.")
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
    """List restore points, newest first (users see only their own)."""
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
    """Show one restore point: status, type, parent, sizes (what it restores, what it stored) and
    the volumes it holds."""
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
    """Delete a restore point (as a job).

    Refused while it is being made or restored from. Where newer points depend on it and the
    provider cannot delete one point in the middle of a chain, --forced deletes the whole chain
    (where the provider can)."""
    finish_job(app.run_job(lambda s: backups.delete_backup(s, backup_id, forced=forced)), as_json)


@backup.command("verify")
@click.argument("backup_id")
@json_option
@pass_app
@handle_errors
def backup_verify(app: App, backup_id: str, as_json: bool) -> None:
    """Re-read a restore point at its back end and check it (a point found damaged becomes Error)."""
    finish_job(app.run_job(lambda s: verification.verify_backup(s, backup_id)), as_json)
