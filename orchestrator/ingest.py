"""Ingestion: VMs a hypervisor runs that the inventory does not know yet ("unmanaged"),
and importing them with their disks, NICs and controllers.

Both run as ``ingest`` jobs on the ``ingest`` queue: reaching a host takes seconds and may
fail, so it is done by a worker that can retry, not inside an API request. A KVM domain's
UUID becomes the VM's id, as CloudStack names its KVM domains by the VM's UUID: an
imported VM, and one the cloud already manages, keep the same id on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator import accounts, audit, inventory, jobs, routing, validate
from orchestrator.core import Core, Scope
from orchestrator.errors import Conflict, InvalidArgument, ProviderError
from orchestrator.execution import Finish, JobHandler, ProgressFn
from orchestrator.models import Account, Host, Job, JobKind, StoragePool, VirtualMachine, new_id
from providers import hypervisor
from providers.hypervisor import DiscoveredDisk, DiscoveredVM

# Details kept from discovery on the VM (and so in each restore point's metadata).
DETAIL_KEYS = ("vcpus", "memory_bytes", "nics", "controllers", "has_guest_agent", "xml")


def _host(scope: Scope, host: str) -> Host:
    return inventory.find_host(scope, host)


def set_connection(scope: Scope, host: str, connection: Mapping[str, Any]) -> Host:
    """How workers reach the host; checked by the host's driver before it is stored."""
    scope.actor.require_admin("set how hosts are reached")
    row = _host(scope, host)
    row.connection = hypervisor.driver_class(row.hypervisor.value).check_connection(connection)
    audit.record(scope, "host.connection", "host", row.id, transport=row.connection.get("transport"))
    return row


def discover(scope: Scope, host: str) -> Job:
    """A job whose result lists the host's VMs that the inventory does not know."""
    scope.actor.require_admin("discover unmanaged virtual machines")
    row = _connected_host(scope, host)
    return _ingest_job(scope, row, {"action": "discover"})


def import_vm(scope: Scope, *, host: str, uuid: str, account: str, name: str | None = None) -> Job:
    """A job that imports one unmanaged VM of the host into ``account``, in the host's zone."""
    scope.actor.require_admin("import virtual machines")
    row = _connected_host(scope, host)
    owner = accounts.find_account(scope.session, account)
    if name is not None:
        name = validate.name(name)
    _refuse_known(scope.session, uuid)
    return _ingest_job(scope, row, {"action": "import", "uuid": uuid, "account_id": owner.id, "name": name})


def _connected_host(scope: Scope, host: str) -> Host:
    row = _host(scope, host)
    if not row.connection:
        raise Conflict(f"host {row.name} has no connection settings yet; set them first", field="host")
    return row


def _refuse_known(session: Session, uuid: str) -> None:
    known = session.get(VirtualMachine, uuid)
    if known is not None and known.removed_at is None:
        raise Conflict(f"virtual machine {uuid} is already in the inventory as {known.name}", field="uuid")


def _ingest_job(scope: Scope, row: Host, params: dict[str, Any]) -> Job:
    job = jobs.create(
        scope,
        kind=JobKind.INGEST,
        account_id=scope.actor.account_id,
        subject_type="host",
        subject_id=row.id,
        placement=routing.placement(JobKind.INGEST, None),
        idempotency_key=f"ingest:{row.id}:{new_id()}",
        params=params,
    )
    audit.record(scope, f"ingest.{params['action']}", "host", row.id, job=job.id, uuid=params.get("uuid"))
    return job


# -- the job ---------------------------------------------------------------------------------------


def _run(core: Core, job: Job, progress: ProgressFn) -> Finish:
    with core.db.session() as session:
        row = session.get(Host, job.subject_id)
        if row is None:
            raise ProviderError(f"host {job.subject_id} is no longer in the inventory", retryable=False)
        driver = hypervisor.connect(row.hypervisor.value, row.connection)
    try:
        found = driver.discover()
    finally:
        driver.close()
    progress(1, 1)
    if job.params["action"] == "discover":
        return lambda session: {"host_id": job.subject_id, "unmanaged": _unmanaged(session, found)}
    wanted = next((vm for vm in found if vm["uuid"] == job.params["uuid"]), None)
    if wanted is None:
        raise ProviderError(f"host has no virtual machine {job.params['uuid']}", retryable=False)
    return lambda session: _import(core, session, job, wanted)


def _unmanaged(session: Session, found: list[DiscoveredVM]) -> list[dict[str, Any]]:
    known = set(
        session.scalars(
            select(VirtualMachine.id).where(
                VirtualMachine.id.in_([vm["uuid"] for vm in found]), VirtualMachine.removed_at.is_(None)
            )
        )
    )
    return [{k: v for k, v in vm.items() if k != "xml"} for vm in found if vm["uuid"] not in known]


def _import(core: Core, session: Session, job: Job, vm: DiscoveredVM) -> dict[str, Any]:
    host = session.get(Host, job.subject_id)
    assert host is not None
    try:
        _refuse_known(session, vm["uuid"])
        volumes = _volumes(session, host, vm)
    except (Conflict, InvalidArgument) as exc:
        # Not worth a retry: the host or the inventory must change first.
        raise ProviderError(exc.message, retryable=False) from exc
    scope = Scope(session, accounts.acting_as(job.requested_by or job.account_id)(session), core)
    owner = session.get(Account, job.params["account_id"])
    assert owner is not None
    row = inventory.register_vm(
        scope,
        name=job.params.get("name") or vm["name"],
        account=owner.name,
        zone=host.zone_id,
        host=host.id,
        volumes=volumes,
        vm_id=vm["uuid"],
        state="Running" if vm["state"] == "running" else "Stopped",
        details={"instance_name": vm["name"], **{k: vm.get(k) for k in DETAIL_KEYS}},
    )
    return {"vm_id": row.id, "name": row.name, "volumes": [v.id for v in row.volumes]}


def _volumes(session: Session, host: Host, vm: DiscoveredVM) -> list[dict[str, Any]]:
    """The VM's disks as volumes: the first by target name is ROOT (vda before vdb), each on
    the zone's storage pool whose path holds it; CD-ROMs are not volumes."""
    disks = sorted(
        (d for d in vm["disks"] if d["device"] == "disk"), key=lambda d: (len(d["target"]), d["target"])
    )
    if not disks:
        raise InvalidArgument(f"virtual machine {vm['name']} has no disk to import", field="uuid")
    pools = list(session.scalars(select(StoragePool).where(StoragePool.zone_id == host.zone_id)))
    return [
        {
            "pool": _pool_of(disk, pools, vm["name"]).id,
            "size": _size(disk, vm["name"]),
            "type": "ROOT" if i == 0 else "DATADISK",
            "path": disk["path"],
            "format": disk["format"] or "raw",
            "name": f"{vm['name']}-{disk['target']}",
        }
        for i, disk in enumerate(disks)
    ]


def _pool_of(disk: DiscoveredDisk, pools: list[StoragePool], vm_name: str) -> StoragePool:
    if not disk["path"]:
        raise InvalidArgument(f"disk {disk['target']} of {vm_name} is not a file or device path")
    path = PurePosixPath(disk["path"])
    holding = [p for p in pools if p.path and path.is_relative_to(PurePosixPath(p.path))]
    if not holding:
        known = ", ".join(f"{p.name}={p.path}" for p in pools if p.path) or "none"
        raise InvalidArgument(
            f"disk {disk['target']} of {vm_name} ({disk['path']}) is on no storage pool of the host's "
            f"zone (pools: {known}); register the pool that holds it"
        )
    return max(holding, key=lambda p: len(p.path))


def _size(disk: DiscoveredDisk, vm_name: str) -> int:
    if not disk["size_bytes"]:
        raise InvalidArgument(f"the size of disk {disk['target']} of {vm_name} is unknown to its host")
    return disk["size_bytes"]


def _on_failure(_session: Session, _job: Job, _message: str, _final: bool) -> None:
    """Ingestion changes nothing until its last step, so a failure leaves nothing to undo."""


INGEST_HANDLER = JobHandler(run=_run, on_failure=_on_failure)
