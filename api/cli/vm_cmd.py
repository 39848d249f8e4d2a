"""``backupctl vm``: virtual machines, registered or imported from a host, and their backup offering."""

from __future__ import annotations

import json
from typing import Any

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.ingest_jobs import WAIT_SECONDS, discovered, require_succeeded
from api.cli.output import emit, handle_errors, json_option, paging_options
from api.cli.parsing import volume
from orchestrator.domain import validate
from orchestrator.usecases import assignments, ingest, inventory, offerings

VM_COLUMNS = ["id", "name", "account", "state", "backup_offering"]
UNMANAGED_COLUMNS = ("uuid", "name", "state", "vcpus", "memory", "disks", "nics")


@click.group()
def vm() -> None:
    """Virtual machines and their backup offering."""


@vm.command("register")
@click.argument("name")
@click.option("--account", required=True, help="Owner account (name or id).")
@click.option("--zone", required=True, help="Zone of the VM (name or id).")
@click.option("--host", help="Host that runs the VM (name or id, in that zone).")
@click.option("--id", "vm_id", help="Keep the cloud's own UUID.")
@click.option(
    "--volume",
    "volumes",
    multiple=True,
    required=True,
    help="pool=POOL,size=SIZE[,type=ROOT|DATADISK][,path=FILE][,format=qcow2|raw|vmdk][,name=N]; "
    "SIZE in bytes or K/M/G/T (binary), e.g. 20G. Repeatable; the first is ROOT.",
)
@click.option("--details", help="JSON object: cpus, memory, nics...")
@json_option
@pass_app
@handle_errors
def vm_register(
    app: App,
    name: str,
    account: str,
    zone: str,
    host: str | None,
    vm_id: str | None,
    volumes: tuple[str, ...],
    details: str | None,
    as_json: bool,
) -> None:
    """Register a VM the cloud already runs, with its volumes (admins).

    One --volume per disk; exactly one is ROOT (by default the first). To take a VM from a
    connected host instead, see `vm unmanaged` and `vm import`."""
    try:
        extra = json.loads(details) if details else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"--details is not JSON: {exc}") from None
    # JSON escapes may spell a lone surrogate ("\\udfff"), which no database can store.
    validate.unicode_strings(extra, "details")
    with app.scope() as s:
        row = inventory.register_vm(
            s,
            name=name,
            account=account,
            zone=zone,
            host=host,
            vm_id=vm_id,
            volumes=[volume(v) for v in volumes],
            details=extra,
        )
        emit(views.vm(row), as_json)


@vm.command("list")
@click.option("--zone", help="Only VMs in this zone (name or id).")
@click.option("--account", help="Only this account's VMs (name or id; admins).")
@click.option("--keyword", help="Only VMs whose name contains this text.")
@paging_options
@json_option
@pass_app
@handle_errors
def vm_list(
    app: App,
    zone: str | None,
    account: str | None,
    keyword: str | None,
    page: int,
    pagesize: int,
    as_json: bool,
) -> None:
    """List VMs by name (users see only their own)."""
    with app.scope() as s:
        result = inventory.list_vms(
            s, zone=zone, account=account, keyword=keyword, page=page, pagesize=pagesize
        )
        emit([views.vm(v) for v in result.items], as_json, VM_COLUMNS)


@vm.command("show")
@click.argument("vm_ref")
@json_option
@pass_app
@handle_errors
def vm_show(app: App, vm_ref: str, as_json: bool) -> None:
    """Show one VM (name or id) with its volumes and offering."""
    with app.scope() as s:
        emit(views.vm(inventory.find_vm(s, vm_ref)), as_json)


@vm.command("update")
@click.argument("vm_ref")
@click.option(
    "--state",
    type=click.Choice([s.value for s in inventory.LIVE_VM_STATES]),
    help="The VM was stopped or started in the cloud. An in-place restore of a Running VM is "
    "refused unless it stops it (restore vm --stop).",
)
@json_option
@pass_app
@handle_errors
def vm_update(app: App, vm_ref: str, state: str | None, as_json: bool) -> None:
    """Record what a VM is doing (admins); what is not given keeps its value.

    Only admins: the state is the cloud's fact, and a restore in place trusts it not to
    write under a running guest. Discovery on a connected host refreshes it by itself."""
    with app.scope() as s:
        emit(views.vm(inventory.update_vm(s, inventory.find_vm(s, vm_ref).id, state=state)), as_json)


@vm.command("destroy")
@click.argument("vm_ref")
@json_option
@pass_app
@handle_errors
def vm_destroy(app: App, vm_ref: str, as_json: bool) -> None:
    """Remove a VM from the inventory; its restore points stay and can recreate it."""
    with app.scope() as s:
        emit(views.vm(inventory.destroy_vm(s, inventory.find_vm(s, vm_ref).id)), as_json)


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


def _unmanaged_row(found: dict[str, Any]) -> dict[str, Any]:
    disks = [d for d in found["disks"] if d["device"] == "disk"]
    return {
        **found,
        "memory": f"{found['memory_bytes'] / 2**30:.1f}G",
        "disks": ", ".join(f"{d['target']}={d['path']}" for d in disks),
        "nics": ", ".join(f"{n['mac']}@{n['source']}" for n in found["nics"]),
    }


@vm.command("unmanaged")
@click.option("--host", "host_ref", required=True, help="Host to look at.")
@json_option
@pass_app
@handle_errors
def vm_unmanaged(app: App, host_ref: str, as_json: bool) -> None:
    """List the VMs a host runs that the inventory does not know (an ingest job; it also
    re-links managed VMs whose domain was replaced, see host rediscover)."""
    result = discovered(app, host_ref)
    for relinked in result.get("relinked", []):
        click.echo(f"re-linked: {relinked['name']} ({relinked['vm_id']})", err=True)
    found = result.get("unmanaged", [])
    emit(found if as_json else [_unmanaged_row(f) for f in found], as_json, UNMANAGED_COLUMNS)


@vm.command("import")
@click.argument("uuid")
@click.option(
    "--host", "host_ref", required=True, help="Host that runs the VM (name or id), set up by `host connect`."
)
@click.option("--account", required=True, help="Account that will own the VM.")
@click.option("--name", help="Name in the inventory (default: the hypervisor's).")
@json_option
@pass_app
@handle_errors
def vm_import(app: App, uuid: str, host_ref: str, account: str, name: str | None, as_json: bool) -> None:
    """Import an unmanaged VM: its disks become volumes on the pools that hold them."""
    job = app.run_job(
        lambda s: ingest.import_vm(s, host=host_ref, uuid=uuid, account=account, name=name), wait=WAIT_SECONDS
    )
    require_succeeded(job)
    emit(job, as_json)
