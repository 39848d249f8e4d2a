"""Which queue a job goes to. Backups are bound by storage, restores by the host they write on."""

from __future__ import annotations

from orchestrator.models import JobKind, VirtualMachine, VolumeType

INGEST_QUEUE = "ingest"
DEFAULT_QUEUE = "default"


def backup_queue(vm: VirtualMachine) -> str:
    """``pool.<id>`` of the ROOT volume's pool: reads hit that pool hardest."""
    volumes = vm.live_volumes
    root = next((v for v in volumes if v.type is VolumeType.ROOT), volumes[0] if volumes else None)
    return f"pool.{root.pool_id}" if root else DEFAULT_QUEUE


def queue_for(kind: JobKind, vm: VirtualMachine | None) -> str:
    if kind is JobKind.INGEST:
        return INGEST_QUEUE
    if vm is None:
        return DEFAULT_QUEUE
    if kind is JobKind.BACKUP:
        return backup_queue(vm)
    if kind in (JobKind.RESTORE_VM, JobKind.RESTORE_VOLUME) and vm.host_id:
        return f"host.{vm.host_id}"
    return backup_queue(vm)
