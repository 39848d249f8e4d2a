"""Operator commands for the inventory: zones, hosts, storage pools, VMs."""

from __future__ import annotations

import json

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option, paging_options
from api.cli.parsing import size, volume
from orchestrator.usecases import inventory

VM_COLUMNS = ["id", "name", "account", "state", "backup_offering"]


@click.group()
def zone() -> None:
    """Zones."""


@zone.command("create")
@click.argument("name")
@click.option("--description", default="")
@json_option
@pass_app
@handle_errors
def zone_create(app: App, name: str, description: str, as_json: bool) -> None:
    with app.scope() as s:
        emit(views.zone(inventory.create_zone(s, name, description)), as_json)


@zone.command("list")
@json_option
@pass_app
@handle_errors
def zone_list(app: App, as_json: bool) -> None:
    with app.scope() as s:
        emit([views.zone(z) for z in inventory.list_zones(s)], as_json)


@click.group()
def host() -> None:
    """Hypervisor hosts."""


@host.command("register")
@click.argument("name")
@click.option("--zone", required=True)
@click.option("--hypervisor", type=click.Choice(["kvm", "vmware"]), required=True)
@click.option("--address", default="")
@click.option("--max-concurrent-backups", type=int, default=2, show_default=True)
@json_option
@pass_app
@handle_errors
def host_register(
    app: App, name: str, zone: str, hypervisor: str, address: str, max_concurrent_backups: int, as_json: bool
) -> None:
    with app.scope() as s:
        row = inventory.create_host(
            s,
            zone=zone,
            name=name,
            hypervisor=hypervisor,
            address=address,
            max_concurrent_backups=max_concurrent_backups,
        )
        emit(views.host(row), as_json)


@host.command("list")
@click.option("--zone")
@json_option
@pass_app
@handle_errors
def host_list(app: App, zone: str | None, as_json: bool) -> None:
    with app.scope() as s:
        emit([views.host(h) for h in inventory.list_hosts(s, zone)], as_json)


@click.group()
def pool() -> None:
    """Primary storage pools."""


@pool.command("register")
@click.argument("name")
@click.option("--zone", required=True)
@click.option("--path", default="")
@click.option("--max-concurrent-backups", type=int, default=4, show_default=True)
@click.option("--bandwidth", help="Sustained read bandwidth per second, e.g. 500M.")
@json_option
@pass_app
@handle_errors
def pool_register(
    app: App,
    name: str,
    zone: str,
    path: str,
    max_concurrent_backups: int,
    bandwidth: str | None,
    as_json: bool,
) -> None:
    with app.scope() as s:
        row = inventory.create_pool(
            s,
            zone=zone,
            name=name,
            path=path,
            max_concurrent_backups=max_concurrent_backups,
            bandwidth_bytes_per_s=size(bandwidth) if bandwidth else None,
        )
        emit(views.pool(row), as_json)


@pool.command("list")
@click.option("--zone")
@json_option
@pass_app
@handle_errors
def pool_list(app: App, zone: str | None, as_json: bool) -> None:
    with app.scope() as s:
        emit([views.pool(p) for p in inventory.list_pools(s, zone)], as_json)


@click.group()
def vm() -> None:
    """Virtual machines and their backup offering."""


@vm.command("register")
@click.argument("name")
@click.option("--account", required=True, help="Owner account.")
@click.option("--zone", required=True)
@click.option("--host")
@click.option("--id", "vm_id", help="Keep the cloud's own UUID.")
@click.option(
    "--volume",
    "volumes",
    multiple=True,
    required=True,
    help="pool=P,size=10G[,type=ROOT|DATADISK][,path=...][,format=qcow2]; the first is ROOT.",
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
    try:
        extra = json.loads(details) if details else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"--details is not JSON: {exc}") from None
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
@click.option("--zone")
@click.option("--account")
@click.option("--keyword")
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
    with app.scope() as s:
        emit(views.vm(inventory.find_vm(s, vm_ref)), as_json)


@vm.command("destroy")
@click.argument("vm_ref")
@json_option
@pass_app
@handle_errors
def vm_destroy(app: App, vm_ref: str, as_json: bool) -> None:
    """Remove a VM from the inventory; its restore points stay and can recreate it."""
    with app.scope() as s:
        emit(views.vm(inventory.destroy_vm(s, inventory.find_vm(s, vm_ref).id)), as_json)
