"""The cloud's inventory as this service knows it: zones, hosts, storage pools, VMs, volumes.

Operators register it (or ingestion discovers it); users see only their own VMs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from orchestrator.domain import validate
from orchestrator.domain.errors import Conflict, InvalidArgument, NotFound
from orchestrator.domain.models import (
    BackupSchedule,
    Host,
    Hypervisor,
    StoragePool,
    VirtualMachine,
    VMState,
    Volume,
    VolumeType,
    Zone,
    utcnow,
)
from orchestrator.engine.core import Scope
from orchestrator.infra.paging import DEFAULT_PAGESIZE, Page, paginate
from orchestrator.usecases import audit, jobs, lookup, usage
from orchestrator.usecases.accounts import find_account
from providers.base import VMRef, VolumeRef

VOLUME_FORMATS = ("raw", "qcow2", "vmdk")
_Named = TypeVar("_Named", Zone, Host, StoragePool)


def _by_name_or_id(scope: Scope, model: type[_Named], value: str, kind: str, **where: Any) -> _Named:
    stmt = select(model).where((model.id == value) | (model.name == value))
    for column, wanted in where.items():
        stmt = stmt.where(getattr(model, column) == wanted)
    found = scope.session.scalars(stmt).all()
    if not found:
        raise NotFound.of(kind, value)
    if len(found) > 1:
        raise InvalidArgument(f"{kind} name {value!r} is ambiguous: use its id")
    return found[0]


def find_zone(scope: Scope, value: str) -> Zone:
    return _by_name_or_id(scope, Zone, value, "zone")


def find_host(scope: Scope, value: str, zone_id: str | None = None) -> Host:
    return _by_name_or_id(scope, Host, value, "host", **({"zone_id": zone_id} if zone_id else {}))


def find_pool(scope: Scope, value: str, zone_id: str | None = None) -> StoragePool:
    return _by_name_or_id(
        scope, StoragePool, value, "storage pool", **({"zone_id": zone_id} if zone_id else {})
    )


def create_zone(scope: Scope, name: str, description: str = "") -> Zone:
    scope.actor.require_admin("register zones")
    name = validate.name(name)
    if scope.session.scalar(select(Zone).where(Zone.name == name)):
        raise Conflict(f"zone {name!r} already exists", field="name")
    row = Zone(name=name, description=validate.text(description, "description"))
    scope.session.add(row)
    scope.session.flush()
    audit.record(scope, "zone.create", "zone", row.id, name=name)
    return row


def create_host(
    scope: Scope, *, zone: str, name: str, hypervisor: str, address: str = "", max_concurrent_backups: int = 2
) -> Host:
    scope.actor.require_admin("register hosts")
    z = find_zone(scope, zone)
    name = validate.name(name)
    if scope.session.scalar(select(Host).where(Host.zone_id == z.id, Host.name == name)):
        raise Conflict(f"host {name!r} already exists in zone {z.name}", field="name")
    row = Host(
        zone_id=z.id,
        name=name,
        hypervisor=validate.parse_enum(Hypervisor, hypervisor, "hypervisor"),
        address=validate.text(address, "address", 255),
        max_concurrent_backups=validate.positive(max_concurrent_backups, "max_concurrent_backups"),
    )
    scope.session.add(row)
    scope.session.flush()
    audit.record(scope, "host.create", "host", row.id, name=name)
    return row


def create_pool(
    scope: Scope,
    *,
    zone: str,
    name: str,
    path: str = "",
    max_concurrent_backups: int = 4,
    bandwidth_bytes_per_s: int | None = None,
) -> StoragePool:
    scope.actor.require_admin("register storage pools")
    z = find_zone(scope, zone)
    name = validate.name(name)
    if scope.session.scalar(select(StoragePool).where(StoragePool.zone_id == z.id, StoragePool.name == name)):
        raise Conflict(f"storage pool {name!r} already exists in zone {z.name}", field="name")
    if bandwidth_bytes_per_s is not None:
        validate.positive(bandwidth_bytes_per_s, "bandwidth_bytes_per_s", validate.MAX_BYTES)
    row = StoragePool(
        zone_id=z.id,
        name=name,
        path=validate.folder_path(path, "path"),
        max_concurrent_backups=validate.positive(max_concurrent_backups, "max_concurrent_backups"),
        bandwidth_bytes_per_s=bandwidth_bytes_per_s,
    )
    scope.session.add(row)
    scope.session.flush()
    audit.record(scope, "pool.create", "storage_pool", row.id, name=name)
    return row


def _rename(scope: Scope, row: Host | StoragePool, name: str, kind: str) -> bool:
    """Give ``row`` a new name, unique in its zone; whether it changed."""
    name = validate.name(name)
    if name == row.name:
        return False
    model = type(row)
    if scope.session.scalar(select(model.id).where(model.zone_id == row.zone_id, model.name == name)):
        raise Conflict(f"{kind} {name!r} already exists in zone {row.zone.name}", field="name")
    row.name = name
    return True


def update_host(
    scope: Scope,
    host: str,
    *,
    name: str | None = None,
    address: str | None = None,
    max_concurrent_backups: int | None = None,
) -> Host:
    """Change a host's name, address or concurrency limit; only what is given changes. A new
    limit holds for the next job claimed (jobs running keep their slot). How workers reach
    the host is set with ``ingest.set_connection``."""
    scope.actor.require_admin("update hosts")
    row = find_host(scope, host)
    changed = ["name"] if name is not None and _rename(scope, row, name, "host") else []
    if address is not None:
        row.address = validate.text(address, "address", 255)
        changed.append("address")
    if max_concurrent_backups is not None:
        row.max_concurrent_backups = validate.positive(max_concurrent_backups, "max_concurrent_backups")
        changed.append("max_concurrent_backups")
    audit.record(scope, "host.update", "host", row.id, changed=changed)
    return row


def remove_host(scope: Scope, host: str) -> Host:
    """Remove a host that runs no live VM and has no job planned, queued or running on it.
    Destroyed VMs that ran there forget it; their restore points can recreate them elsewhere."""
    scope.actor.require_admin("remove hosts")
    row = find_host(scope, host)
    usage.refuse_if_used("host", row.name, usage.of_host(scope, row.id))
    scope.session.execute(update(VirtualMachine).where(VirtualMachine.host_id == row.id).values(host_id=None))
    scope.session.delete(row)
    audit.record(scope, "host.remove", "host", row.id, name=row.name)
    return row


def update_pool(
    scope: Scope,
    pool: str,
    *,
    name: str | None = None,
    path: str | None = None,
    max_concurrent_backups: int | None = None,
    bandwidth_bytes_per_s: int | None = None,
    unlimited_bandwidth: bool = False,
) -> StoragePool:
    """Change a pool's name, path, concurrency limit or bandwidth (``unlimited_bandwidth``
    drops the limit); only what is given changes. The planner counts the new limits at its
    next round; a new concurrency limit holds for the next job claimed."""
    scope.actor.require_admin("update storage pools")
    row = find_pool(scope, pool)
    if unlimited_bandwidth and bandwidth_bytes_per_s is not None:
        raise InvalidArgument("bandwidth: give a limit or no limit, not both", field="bandwidth_bytes_per_s")
    changed = ["name"] if name is not None and _rename(scope, row, name, "storage pool") else []
    if path is not None:
        # Existing volumes keep their paths: the pool's path only names where new ones go.
        row.path = validate.text(path, "path")
        changed.append("path")
    if max_concurrent_backups is not None:
        row.max_concurrent_backups = validate.positive(max_concurrent_backups, "max_concurrent_backups")
        changed.append("max_concurrent_backups")
    if unlimited_bandwidth:
        row.bandwidth_bytes_per_s = None
        changed.append("bandwidth_bytes_per_s")
    elif bandwidth_bytes_per_s is not None:
        row.bandwidth_bytes_per_s = validate.positive(
            bandwidth_bytes_per_s, "bandwidth_bytes_per_s", validate.MAX_BYTES
        )
        changed.append("bandwidth_bytes_per_s")
    audit.record(scope, "pool.update", "storage_pool", row.id, changed=changed)
    return row


def remove_pool(scope: Scope, pool: str) -> StoragePool:
    """Remove a pool that holds no volume (of a live or of a destroyed VM) and has no job
    planned, queued or running on it."""
    scope.actor.require_admin("remove storage pools")
    row = find_pool(scope, pool)
    usage.refuse_if_used("storage pool", row.name, usage.of_pool(scope, row.id))
    scope.session.delete(row)
    audit.record(scope, "pool.remove", "storage_pool", row.id, name=row.name)
    return row


@dataclass(frozen=True)
class VolumeSpec:
    pool: str
    size: int
    type: str = "DATADISK"
    path: str = ""
    format: str = "qcow2"
    name: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any], index: int) -> VolumeSpec:
        field = f"volumes[{index}]"
        if not isinstance(raw, Mapping) or "pool" not in raw or "size" not in raw:
            raise InvalidArgument(f"{field}: needs 'pool' and 'size'", field=field)
        try:
            size = int(raw["size"])
        except (TypeError, ValueError):
            raise InvalidArgument(
                f"{field}.size: not a number: {raw['size']!r}", field=f"{field}.size"
            ) from None
        return cls(
            pool=str(raw["pool"]),
            size=size,
            type=str(raw.get("type", "ROOT" if index == 0 else "DATADISK")).upper(),
            path=str(raw.get("path", "")),
            format=str(raw.get("format", "qcow2")).lower(),
            name=str(raw.get("name", "")),
        )


def register_vm(
    scope: Scope,
    *,
    name: str,
    account: str,
    zone: str,
    volumes: Iterable[Mapping[str, Any]],
    host: str | None = None,
    vm_id: str | None = None,
    state: str = "Running",
    details: Mapping[str, Any] | None = None,
) -> VirtualMachine:
    scope.actor.require_admin("register virtual machines")
    z = find_zone(scope, zone)
    owner = find_account(scope.session, account)
    h = find_host(scope, host, z.id) if host else None
    specs = [VolumeSpec.parse(v, i) for i, v in enumerate(volumes)]
    if not specs:
        raise InvalidArgument("volumes: a VM needs at least its ROOT volume", field="volumes")
    if sum(s.type == "ROOT" for s in specs) != 1:
        raise InvalidArgument("volumes: exactly one volume must be ROOT", field="volumes")
    if vm_id and len(vm_id) != 36:
        raise InvalidArgument(f"id: {vm_id!r} is not a UUID", field="id")
    if vm_id and scope.session.get(VirtualMachine, vm_id):
        raise Conflict(f"virtual machine {vm_id} is already in the inventory", field="id")
    vm = VirtualMachine(
        name=validate.name(name),
        account_id=owner.id,
        zone_id=z.id,
        host_id=h.id if h else None,
        state=validate.parse_enum(VMState, state, "state"),
        details=dict(details or {}),
    )
    if vm_id:
        vm.id = vm_id
    scope.session.add(vm)
    scope.session.flush()
    for device_id, spec in enumerate(specs):
        _add_volume(scope, vm, spec, device_id)
    audit.record(scope, "vm.register", "vm", vm.id, name=vm.name)
    return vm


# What the inventory may be told a live VM is doing (Destroyed is ``destroy_vm``'s).
LIVE_VM_STATES = (VMState.RUNNING, VMState.STOPPED)


def update_vm(scope: Scope, vm_id: str, *, state: str | None = None) -> VirtualMachine:
    """Record that a VM was stopped or started; only what is given changes (admins). The
    state is the cloud's fact, as in CloudStack where the hypervisor reports it and users
    start and stop VMs through the cloud: an in-place restore trusts it to write only
    under a stopped guest, so a user who could set it could have the disks of a running
    VM overwritten. Discovery on a connected host refreshes it from the hypervisor."""
    scope.actor.require_admin("update virtual machines")
    vm = lookup.vm(scope, vm_id)
    changed = {}
    if state is not None:
        new = validate.parse_enum(VMState, state, "state")
        if new not in LIVE_VM_STATES:
            raise InvalidArgument(
                f"state: a VM can be set {' or '.join(LIVE_VM_STATES)}; destroy it to remove it",
                field="state",
            )
        if new is not vm.state:
            changed["state"] = {"from": vm.state.value, "to": new.value}
            vm.state = new
    audit.record(scope, "vm.update", "vm", vm.id, changed=changed)
    return vm


def _add_volume(scope: Scope, vm: VirtualMachine, spec: VolumeSpec, device_id: int) -> Volume:
    p = find_pool(scope, spec.pool, vm.zone_id)
    if spec.format not in VOLUME_FORMATS:
        raise InvalidArgument(f"volume format {spec.format!r} is not one of {VOLUME_FORMATS}", field="format")
    # Backups read and restores write this path: outside its pool it could be any file of
    # the host (/etc/shadow), read into a tenant's restore point or overwritten by a restore.
    if spec.path.startswith("["):
        # A vSphere disk: read and written through vCenter, never as a file of some machine.
        path = validate.datastore_path(spec.path)
    else:
        path = validate.path_in_folder(spec.path, p.path, "path", f"storage pool {p.name!r} at")
    # Through the relationship, so vm.volumes is right without a reload.
    volume = Volume(
        vm=vm,
        pool_id=p.id,
        type=validate.parse_enum(VolumeType, spec.type, "type"),
        device_id=device_id,
        size=validate.positive(spec.size, "size", validate.MAX_BYTES),
        path=path or f"{p.path or '/' + p.name}/{vm.id}-{device_id}.{spec.format}",
        format=spec.format,
        name=spec.name or f"{'ROOT' if spec.type == 'ROOT' else 'DATA'}-{vm.name}-{device_id}",
    )
    scope.session.add(volume)
    return volume


def relink(session: Session, ref: VMRef) -> VirtualMachine:
    """Point a VM's record at the instance ``ref`` describes: its details (the hypervisor's
    name and UUID for it, its definition), and each volume, by id, at its new image. The VM
    keeps its id, and so its restore points, offering and schedules."""
    vm = session.get(VirtualMachine, ref.id)
    if vm is None or vm.removed_at is not None:
        raise NotFound.of("virtual machine", ref.id)
    vm.details = dict(ref.details)
    for volume in vm.live_volumes:
        if (placed := ref.volume(volume.id)) is not None:
            place_volume(volume, placed)
    return vm


def place_volume(volume: Volume, ref: VolumeRef) -> None:
    volume.path, volume.format, volume.size, volume.pool_id = ref.path, ref.format, ref.size, ref.pool_id


def destroy_vm(scope: Scope, vm_id: str) -> VirtualMachine:
    """Remove a VM from the inventory. Its restore points stay, and can recreate it."""
    scope.actor.require_admin("destroy virtual machines")
    vm = lookup.vm(scope, vm_id)
    now = utcnow()
    vm.removed_at = now
    vm.state = VMState.DESTROYED
    vm.backup_offering_id = None
    for volume in vm.live_volumes:
        volume.removed_at = now
    # Nothing is left to back up: its schedules and planned backups go with it.
    scope.session.execute(delete(BackupSchedule).where(BackupSchedule.vm_id == vm.id))
    jobs.cancel_planned(scope, [vm.id], "the virtual machine was destroyed")
    audit.record(scope, "vm.destroy", "vm", vm.id)
    return vm


def list_zones(scope: Scope) -> list[Zone]:
    return list(scope.session.scalars(select(Zone).order_by(Zone.name)))


def list_hosts(scope: Scope, zone: str | None = None) -> list[Host]:
    scope.actor.require_admin("list hosts")
    stmt = select(Host).order_by(Host.name)
    if zone:
        stmt = stmt.where(Host.zone_id == find_zone(scope, zone).id)
    return list(scope.session.scalars(stmt))


def list_pools(scope: Scope, zone: str | None = None) -> list[StoragePool]:
    scope.actor.require_admin("list storage pools")
    stmt = select(StoragePool).order_by(StoragePool.name)
    if zone:
        stmt = stmt.where(StoragePool.zone_id == find_zone(scope, zone).id)
    return list(scope.session.scalars(stmt))


def list_vms(
    scope: Scope,
    *,
    zone: str | None = None,
    account: str | None = None,
    offering_id: str | None = None,
    keyword: str | None = None,
    page: int = 1,
    pagesize: int = DEFAULT_PAGESIZE,
) -> Page[VirtualMachine]:
    stmt = select(VirtualMachine).where(VirtualMachine.removed_at.is_(None)).order_by(VirtualMachine.name)
    if not scope.actor.is_admin:
        stmt = stmt.where(VirtualMachine.account_id == scope.actor.account_id)
    elif account:
        stmt = stmt.where(VirtualMachine.account_id == find_account(scope.session, account).id)
    if zone:
        stmt = stmt.where(VirtualMachine.zone_id == find_zone(scope, zone).id)
    if offering_id:
        stmt = stmt.where(VirtualMachine.backup_offering_id == offering_id)
    if keyword := validate.keyword(keyword):
        stmt = stmt.where(VirtualMachine.name.contains(keyword, autoescape=True))
    return paginate(scope.session, stmt, page, pagesize)


def show_vm(scope: Scope, vm_id: str) -> VirtualMachine:
    return lookup.vm(scope, vm_id)


def list_volumes(scope: Scope, vm_id: str | None = None) -> list[Volume]:
    """One VM's volumes, or those of every live VM the actor can see."""
    if vm_id:
        return lookup.vm(scope, vm_id).live_volumes
    stmt = (
        select(Volume)
        .join(VirtualMachine, VirtualMachine.id == Volume.vm_id)
        .where(Volume.removed_at.is_(None), VirtualMachine.removed_at.is_(None))
        .order_by(VirtualMachine.name, Volume.device_id)
    )
    if not scope.actor.is_admin:
        stmt = stmt.where(VirtualMachine.account_id == scope.actor.account_id)
    return list(scope.session.scalars(stmt))


def find_vm(scope: Scope, value: str) -> VirtualMachine:
    """A VM the actor can see, by id or by name."""
    by_id = scope.session.get(VirtualMachine, value)
    if by_id is not None:
        return lookup.vm(scope, value)
    stmt = select(VirtualMachine).where(VirtualMachine.name == value, VirtualMachine.removed_at.is_(None))
    if not scope.actor.is_admin:
        stmt = stmt.where(VirtualMachine.account_id == scope.actor.account_id)
    found = scope.session.scalars(stmt).all()
    if not found:
        raise NotFound.of("virtual machine", value)
    if len(found) > 1:
        raise InvalidArgument(f"virtual machine name {value!r} is ambiguous: use its id", field="vm")
    return found[0]
