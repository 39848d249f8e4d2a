"""Which queue a job goes to, and which host and storage pool limits it counts against.
Backups are bound by storage, restores by the host they write on.

Queue names are made here and nowhere else: ``pool.<id>``, ``host.<id>``, ``ingest`` and
``default``.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.models import JobKind, VirtualMachine, VolumeType

INGEST_QUEUE = "ingest"
DEFAULT_QUEUE = "default"


def pool_queue(pool_id: str) -> str:
    """The queue of work bound by a storage pool (backups reading from it)."""
    return f"pool.{pool_id}"


def host_queue(host_id: str) -> str:
    """The queue of work bound by a host (restores writing on it)."""
    return f"host.{host_id}"


@dataclass(frozen=True)
class Placement:
    queue: str
    host_id: str | None = None
    pool_id: str | None = None


# Work on a provider's repository alone (verifying or deleting restore points) touches no
# host or pool: any worker takes it, as every worker consumes the default queue.
PROVIDER_WORK = Placement(DEFAULT_QUEUE)


def _root_pool(vm: VirtualMachine) -> str | None:
    """The ROOT volume's pool: a backup's reads hit that pool hardest."""
    volumes = vm.live_volumes
    root = next((v for v in volumes if v.type is VolumeType.ROOT), volumes[0] if volumes else None)
    return root.pool_id if root else None


def placement(kind: JobKind, vm: VirtualMachine | None) -> Placement:
    if kind is JobKind.INGEST:
        return Placement(INGEST_QUEUE)
    if vm is None:
        return Placement(DEFAULT_QUEUE)
    pool_id = _root_pool(vm)
    if kind in (JobKind.RESTORE_VM, JobKind.RESTORE_VOLUME) and vm.host_id:
        return Placement(host_queue(vm.host_id), vm.host_id, pool_id)
    return Placement(pool_queue(pool_id) if pool_id else DEFAULT_QUEUE, vm.host_id, pool_id)


def restore_placement(host_id: str | None) -> Placement:
    """A restore of a destroyed or new VM writes on the host that will run it."""
    return Placement(host_queue(host_id), host_id) if host_id else Placement(DEFAULT_QUEUE)


def planned_placement(pool_id: str) -> Placement:
    """Where a planned backup is expected to run; releasing it routes it where its VM is then."""
    return Placement(pool_queue(pool_id), pool_id=pool_id)
