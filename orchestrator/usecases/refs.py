"""Turn rows into the plain values the provider port speaks."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.orm import Session

from orchestrator.domain.models import Backup, Host, VirtualMachine, Volume
from providers.base import HostRef, RestorePointRef, VMRef, VolumeRef


def volume_ref(volume: Volume) -> VolumeRef:
    return VolumeRef(
        id=volume.id,
        name=volume.name,
        type=volume.type.value,
        device_id=volume.device_id,
        size=volume.size,
        path=volume.path,
        format=volume.format,
        pool_id=volume.pool_id,
    )


def host_ref(host: Host | None) -> HostRef | None:
    if host is None:
        return None
    return HostRef(id=host.id, hypervisor=host.hypervisor.value, connection=dict(host.connection or {}))


def vm_ref(vm: VirtualMachine) -> VMRef:
    return VMRef(
        id=vm.id,
        name=vm.name,
        zone_id=vm.zone_id,
        host_id=vm.host_id,
        volumes=tuple(volume_ref(v) for v in vm.live_volumes),
        details=dict(vm.details),
        host=host_ref(vm.host),
    )


def on_its_host(session: Session, ref: VMRef) -> VMRef:
    """``ref`` (from a restore point or a job) with its host as the inventory has it now."""
    host = session.get(Host, ref.host_id) if ref.host_id else None
    return replace(ref, host=host_ref(host))


def point_ref(point: Backup) -> RestorePointRef:
    return RestorePointRef(
        id=point.id,
        external_id=point.external_id or "",
        backup_type=point.backup_type.value,
        vm=VMRef.from_dict(point.vm_metadata),
        parent_external_id=point.parent.external_id if point.parent else None,
    )
