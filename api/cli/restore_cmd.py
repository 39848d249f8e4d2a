"""``backupctl restore``: restores from restore points: a VM in place, a new VM, or one volume."""

from __future__ import annotations

import click

from api.cli.app import App, pass_app
from api.cli.follow import no_wait_option, run_and_finish
from api.cli.output import handle_errors, json_option
from orchestrator.usecases import inventory, restores


@click.group()
def restore() -> None:
    """Restores from restore points."""


@restore.command("vm")
@click.argument("backup_id")
@click.option(
    "--stop",
    is_flag=True,
    help="Have the provider stop the VM first if it is running (where it can: the stop_vm capability).",
)
@no_wait_option
@json_option
@pass_app
@handle_errors
def restore_vm(app: App, backup_id: str, stop: bool, no_wait: bool, as_json: bool) -> None:
    """Restore every volume of a VM in place (recreating the VM if it was destroyed).

    The VM must be stopped: a running one is refused unless --stop."""
    run_and_finish(app, lambda s: restores.restore_vm(s, backup_id, stop=stop), as_json, no_wait)


@restore.command("new-vm")
@click.argument("backup_id")
@click.option("--name", required=True, help="Name of the new VM.")
@click.option("--host", help="Host of the new VM (default: the original's).")
@no_wait_option
@json_option
@pass_app
@handle_errors
def restore_new_vm(
    app: App, backup_id: str, name: str, host: str | None, no_wait: bool, as_json: bool
) -> None:
    """Create a new VM from a restore point (new id and volume paths); the original stays."""
    run_and_finish(app, lambda s: restores.restore_to_new_vm(s, backup_id, name, host), as_json, no_wait)


@restore.command("volume")
@click.argument("backup_id")
@click.option("--volume", "volume_id", required=True, help="Volume id as recorded in the restore point.")
@click.option("--vm", "vm_ref", required=True, help="VM to attach the restored volume to (same zone).")
@no_wait_option
@json_option
@pass_app
@handle_errors
def restore_volume(
    app: App, backup_id: str, volume_id: str, vm_ref: str, no_wait: bool, as_json: bool
) -> None:
    """Restore one volume as a new data disk attached to a VM."""
    run_and_finish(
        app,
        lambda s: restores.restore_volume(s, backup_id, volume_id, inventory.find_vm(s, vm_ref).id),
        as_json,
        no_wait,
    )
