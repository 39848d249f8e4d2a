"""Ingestion: VMs a hypervisor runs that the inventory does not know yet ("unmanaged"),
importing them with their disks, NICs and controllers, and re-linking managed VMs whose
instance changed behind our back.

All run as ``ingest`` jobs on the ``ingest`` queue: reaching a host takes seconds and may
fail, so it is done by a worker that can retry, not inside an API request. A KVM domain's
UUID becomes the VM's id, as CloudStack names its KVM domains by the VM's UUID: an
imported VM, and one the cloud already manages, keep the same id on both sides.

Re-discovery: some back ends restore a VM by defining a new domain (a new UUID, new image
paths) and deleting the old one. Every discovery follows such a VM: a managed VM of the host
whose domain UUID is gone is matched to the domain that now has its hypervisor name
(``instance_name``), each volume to the disk on the device (``vda``...) its image was on,
and the record is re-linked: the new UUID kept in the details as ``domain``, the volumes
pointed at the new images. The VM's id does not change, so its restore points, offering and
schedules stay attached. Each managed VM also takes the state (Running, Stopped) its domain
is in, which an in-place restore relies on.

A vCenter host (hypervisor ``vmware``) is the same flow: a VM's id is its instance UUID, so
one registered again under a new moref is found under its own UUID and re-linked when its
moref or .vmx path changed (``hypervisor.relocated``); each disk's pool is the zone's pool
named as its datastore, else the one whose path is the datastore's URL path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.domain import secrets, validate
from orchestrator.domain.actor import acting_as
from orchestrator.domain.errors import Conflict, InvalidArgument, ProviderError
from orchestrator.domain.jobparams import Ingest as IngestParams
from orchestrator.domain.models import (
    Account,
    Host,
    Job,
    JobKind,
    JobState,
    StoragePool,
    VirtualMachine,
    VMState,
    new_id,
    utcnow,
)
from orchestrator.engine import routing
from orchestrator.engine.core import Core, Finish, JobHandler, ProgressFn, Scope
from orchestrator.usecases import accounts, audit, inventory, jobs
from orchestrator.usecases.refs import vm_ref, volume_ref
from providers import hypervisor
from providers.base import VolumeRef
from providers.hypervisor import (
    LOCATOR_KEYS,
    DiscoveredDisk,
    DiscoveredVM,
    domain_uuid,
    relocated,
    vm_details,
)


def _host(scope: Scope, host: str) -> Host:
    return inventory.find_host(scope, host)


@dataclass(frozen=True)
class Connected:
    """A host with its new connection settings, and what of them this machine cannot confirm."""

    host: Host
    warnings: list[str]


def set_connection(scope: Scope, host: str, connection: Mapping[str, Any]) -> Connected:
    """How workers reach the host; checked by the host's driver before it is stored. Files
    the settings name that are not on this machine are stored with a warning: the workers
    that read them may run elsewhere."""
    scope.actor.require_admin("set how hosts are reached")
    row = _host(scope, host)
    driver = hypervisor.driver_class(row.hypervisor.value)
    sealer = scope.core.sealer
    # A secret sent back as ``********`` keeps the stored one.
    stored = sealer.unseal_config(dict(row.connection or {}))
    checked = driver.check_connection(secrets.keep_stored(dict(connection), stored, "connection"))
    row.connection = sealer.seal_settings(checked, driver.secret_settings)
    audit.record(scope, "host.connection", "host", row.id, transport=row.connection.get("transport"))
    return Connected(row, driver.connection_warnings(checked))


def discover(scope: Scope, host: str) -> Job:
    """A job whose result lists the host's VMs that the inventory does not know, and re-links
    the host's managed VMs whose domain was replaced (listed as ``relinked``; those that
    cannot be followed as ``not_relinked``, with why)."""
    scope.actor.require_admin("discover unmanaged virtual machines")
    row = _connected_host(scope, host)
    return _ingest_job(scope, row, IngestParams(action="discover"))


def rediscover_due(core: Core, now: datetime | None = None) -> list[str]:
    """Discovery jobs for the connected hosts not discovered within ``rediscover_seconds``
    (the dispatcher's round), as the first admin."""
    every = core.settings.rediscover_seconds
    if every <= 0:
        return []
    since = (now or utcnow()) - timedelta(seconds=every)
    recent = (
        select(Job.id)
        .where(
            Job.kind == JobKind.INGEST,
            Job.subject_type == "host",
            Job.subject_id == Host.id,
            Job.params["action"].as_string() == "discover",
            Job.created_at > since,
        )
        .exists()
    )
    with core.db.session() as session:
        rows = session.execute(select(Host.id, Host.connection).where(~recent).order_by(Host.name)).all()
    due = [host_id for host_id, connection in rows if connection]
    if not due:
        return []
    made = []
    with core.scope(accounts.admin_actor(core)) as scope:
        for host_id in due:
            made.append(discover(scope, host_id).id)
    return made


def import_vm(scope: Scope, *, host: str, uuid: str, account: str, name: str | None = None) -> Job:
    """A job that imports one unmanaged VM of the host into ``account``, in the host's zone."""
    scope.actor.require_admin("import virtual machines")
    row = _connected_host(scope, host)
    owner = accounts.find_account(scope.session, account)
    if name is not None:
        name = validate.name(name)
    _refuse_known(scope.session, row, uuid)
    if (seen := _last_seen(scope.session, row, uuid)) is not None:
        # Refused now rather than by a failed job: the disks need pools, as last discovered.
        _volumes(scope.session, row, seen)
    return _ingest_job(scope, row, IngestParams(action="import", uuid=uuid, account_id=owner.id, name=name))


@dataclass(frozen=True)
class Unmanaged:
    """The host's unmanaged VMs as its latest finished discovery listed them (less those
    imported since), and that discovery's job; ``job`` is None when none has finished yet."""

    vms: list[dict[str, Any]]
    job: Job | None


def unmanaged(scope: Scope, host: str) -> Unmanaged:
    """What the host's latest finished discovery found unmanaged, without reaching the host
    (discovery is a job; the dispatcher repeats it every ``rediscover_seconds``)."""
    scope.actor.require_admin("list unmanaged virtual machines")
    row = _connected_host(scope, host)
    job = _last_discovery(scope.session, row)
    if job is None:
        return Unmanaged([], None)
    found = list((job.result or {}).get("unmanaged", []))
    claimed = _claimed(scope.session, row, found)
    return Unmanaged([vm for vm in found if vm["uuid"] not in claimed], job)


def _last_discovery(session: Session, host: Host) -> Job | None:
    return session.scalars(
        select(Job)
        .where(
            Job.kind == JobKind.INGEST,
            Job.subject_type == "host",
            Job.subject_id == host.id,
            Job.state == JobState.SUCCEEDED,
            Job.params["action"].as_string() == "discover",
        )
        .order_by(Job.finished_at.desc())
        .limit(1)
    ).first()


def _last_seen(session: Session, host: Host, uuid: str) -> DiscoveredVM | None:
    job = _last_discovery(session, host)
    found = (job.result or {}).get("unmanaged", []) if job is not None else []
    return next((vm for vm in found if vm.get("uuid") == uuid), None)


def _connected_host(scope: Scope, host: str) -> Host:
    row = _host(scope, host)
    if not row.connection:
        raise Conflict(f"host {row.name} has no connection settings yet; set them first", field="host")
    return row


def _refuse_known(session: Session, host: Host, uuid: str) -> None:
    known = session.get(VirtualMachine, uuid)
    if known is None or known.removed_at is not None:
        known = next((vm for vm in _managed(session, host) if domain_uuid(vm.id, vm.details) == uuid), None)
    if known is not None:
        raise Conflict(f"virtual machine {uuid} is already in the inventory as {known.name}", field="uuid")


def _managed(session: Session, host: Host) -> list[VirtualMachine]:
    return list(
        session.scalars(
            select(VirtualMachine)
            .where(VirtualMachine.host_id == host.id, VirtualMachine.removed_at.is_(None))
            .order_by(VirtualMachine.name)
        )
    )


def _ingest_job(scope: Scope, row: Host, params: IngestParams) -> Job:
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
    audit.record(scope, f"ingest.{params.action}", "host", row.id, job=job.id, uuid=params.uuid)
    return job


# -- the job ---------------------------------------------------------------------------------------


def _run(core: Core, job: Job, progress: ProgressFn) -> Finish:
    with core.db.session() as session:
        row = session.get(Host, job.subject_id)
        if row is None:
            raise ProviderError(f"host {job.subject_id} is no longer in the inventory", retryable=False)
        driver = hypervisor.connect(row.hypervisor.value, core.sealer.unseal_config(dict(row.connection)))
    try:
        found = driver.discover()
    finally:
        driver.close()
    progress(1, 1)
    params = IngestParams.of(job)
    if params.action == "discover":
        return lambda session: _discover(core, session, job, found)
    wanted = next((vm for vm in found if vm["uuid"] == params.uuid), None)
    if wanted is None:
        raise ProviderError(f"host has no virtual machine {params.uuid}", retryable=False)
    return lambda session: _import(core, session, job, params, wanted)


def _acting(core: Core, session: Session, job: Job) -> Scope:
    """The job's requester, in the session that records its outcome."""
    return Scope(session, acting_as(job.requested_by or job.account_id)(session), core)


def _discover(core: Core, session: Session, job: Job, found: list[DiscoveredVM]) -> dict[str, Any]:
    host = session.get(Host, job.subject_id)
    assert host is not None
    # Domains the inventory stands for; re-linking adds the ones it follows.
    claimed = _claimed(session, host, found)
    scope = _acting(core, session, job)
    relinked, not_relinked = _relink_host(scope, host, found, claimed)
    return {
        "host_id": host.id,
        "unmanaged": [
            {k: v for k, v in vm.items() if k != "xml"} for vm in found if vm["uuid"] not in claimed
        ],
        "relinked": relinked,
        "not_relinked": not_relinked,
        "state_changed": _refresh_states(scope, host, found),
    }


# What drivers call a VM that holds none of its disks open: libvirt's "shut off", and the
# inventory's own "Stopped" (vSphere's poweredOff).
_STOPPED = ("shut off", VMState.STOPPED.value)


def _state_of(domain: DiscoveredVM) -> VMState:
    """A domain that may still have its disks open (running, paused, shutting down...) is
    Running: an in-place restore must not write under it."""
    return VMState.STOPPED if domain["state"] in _STOPPED else VMState.RUNNING


def _refresh_states(scope: Scope, host: Host, found: list[DiscoveredVM]) -> list[dict[str, Any]]:
    """Each managed VM of the host takes the state its domain is in now (it may have been
    stopped or started outside this service); the VMs whose state changed."""
    by_uuid = {vm["uuid"]: vm for vm in found}
    changed = []
    for vm in _managed(scope.session, host):
        domain = by_uuid.get(domain_uuid(vm.id, vm.details))
        if domain is None or (now := _state_of(domain)) is vm.state:
            continue
        changed.append({"vm_id": vm.id, "name": vm.name, "state": {"from": vm.state.value, "to": now.value}})
        inventory.update_vm(scope, vm.id, state=now.value)
    return changed


def _claimed(session: Session, host: Host, found: list[DiscoveredVM]) -> set[str]:
    """The found domains some live VM of the inventory already stands for."""
    claimed = set(
        session.scalars(
            select(VirtualMachine.id).where(
                VirtualMachine.id.in_([vm["uuid"] for vm in found]), VirtualMachine.removed_at.is_(None)
            )
        )
    )
    return claimed | {domain_uuid(vm.id, vm.details) for vm in _managed(session, host)}


# -- re-discovery ----------------------------------------------------------------------------------


def _relink_host(
    scope: Scope, host: Host, found: list[DiscoveredVM], claimed: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Re-link each managed VM of the host whose domain has another UUID, name, address
    (vSphere's moref and .vmx path) or disk paths now; what was re-linked, and the VMs whose
    new domain was found but cannot be followed.
    ``claimed`` (the domains the inventory stands for) gains each domain followed."""
    by_uuid = {vm["uuid"]: vm for vm in found}
    by_name = {vm["name"]: vm for vm in found}
    pools = list(scope.session.scalars(select(StoragePool).where(StoragePool.zone_id == host.zone_id)))
    relinked, not_relinked = [], []
    for vm in _managed(scope.session, host):
        was = domain_uuid(vm.id, vm.details)
        instance_name = vm.details.get("instance_name")
        domain = by_uuid.get(was)
        if domain is None:
            # Its domain is gone: the one that took over its hypervisor name, unless that one
            # is another VM's already.
            domain = by_name.get(instance_name) if instance_name else None
            if domain is None or domain["uuid"] in claimed:
                continue
        try:
            moved = _moved_volumes(vm, domain, pools)
        except InvalidArgument as exc:
            not_relinked.append(
                {"vm_id": vm.id, "name": vm.name, "domain": domain["uuid"], "reason": exc.message}
            )
            continue
        renamed = instance_name is not None and instance_name != domain["name"]
        moved_instance = relocated(vm.details, domain)
        if domain["uuid"] == was and not renamed and not moved and not moved_instance:
            continue
        before = {v.id: v.path for v in vm.live_volumes}
        previous = dict(vm.details)
        inventory.relink(
            scope.session,
            replace(vm_ref(vm), details=vm_details(domain, vm.id, vm.details), volumes=tuple(moved)),
        )
        claimed.add(domain["uuid"])
        audit.record(scope, "vm.relink", "vm", vm.id, domain=domain["uuid"], previous_domain=was)
        relinked.append(
            {
                "vm_id": vm.id,
                "name": vm.name,
                "domain": {"from": was, "to": domain["uuid"]},
                "instance_name": {"from": instance_name, "to": domain["name"]},
                "volumes": [{"id": v.id, "from": before[v.id], "to": v.path} for v in moved],
                **{k: {"from": previous.get(k), "to": domain.get(k)} for k in LOCATOR_KEYS if k in domain},
            }
        )
    return relinked, not_relinked


def _moved_volumes(vm: VirtualMachine, domain: DiscoveredVM, pools: list[StoragePool]) -> list[VolumeRef]:
    """The VM's volumes whose image is no disk of ``domain`` any more, each on the disk now on
    the device it was on (as the VM's recorded disks say); InvalidArgument if one has none."""
    disks = [d for d in domain["disks"] if d["device"] == "disk" and d["path"]]
    by_target = {d["target"]: d for d in disks}
    was_on = {d["path"]: d["target"] for d in vm.details.get("disks") or () if d.get("path")}
    # Images still in place stay with their volumes; each image serves one volume only.
    taken = {v.path for v in vm.live_volumes} & {d["path"] for d in disks}
    moved = []
    for volume in vm.live_volumes:
        if volume.path in taken:
            continue
        target = was_on.get(volume.path)
        disk = by_target.get(target) if target else None
        # Never None: ``disks`` keeps only disks with an image.
        path = disk["path"] if disk else None
        if disk is None or path is None or path in taken:
            shown = ", ".join(f"{d['target']}={d['path']}" for d in disks) or "none"
            if target is None:
                why = "was on a device not recorded for it"
            elif disk is None:
                why = f"was on {target}, which domain {domain['name']} has no disk for"
            else:
                why = f"was on {target}, whose image {disk['path']} is another volume's"
            raise InvalidArgument(f"volume {volume.name} ({volume.path}) {why} (domain's disks: {shown})")
        taken.add(path)
        moved.append(
            replace(
                volume_ref(volume),
                path=path,
                format=disk["format"] or volume.format,
                size=disk["size_bytes"] or volume.size,
                pool_id=_pool_of(disk, pools, domain["name"]).id,
            )
        )
    return moved


def _import(core: Core, session: Session, job: Job, params: IngestParams, vm: DiscoveredVM) -> dict[str, Any]:
    host = session.get(Host, job.subject_id)
    assert host is not None
    try:
        _refuse_known(session, host, vm["uuid"])
        volumes = _volumes(session, host, vm)
    except (Conflict, InvalidArgument) as exc:
        # Not worth a retry: the host or the inventory must change first.
        raise ProviderError(exc.message, retryable=False) from exc
    scope = _acting(core, session, job)
    owner = session.get(Account, params.account_id)
    assert owner is not None
    row = inventory.register_vm(
        scope,
        name=params.name or vm["name"],
        account=owner.name,
        zone=host.zone_id,
        host=host.id,
        volumes=volumes,
        vm_id=vm["uuid"],
        state=_state_of(vm).value,
        details=vm_details(vm, vm["uuid"]),
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
    if "datastore" in disk:
        return _datastore_pool(disk, pools, vm_name)
    if not disk["path"]:
        raise InvalidArgument(f"disk {disk['target']} of {vm_name} is not a file or device path")
    path = validate.absolute_path(disk["path"], f"disk {disk['target']} of {vm_name}")
    holding = [p for p in pools if p.path and validate.is_under(path, p.path)]
    if not holding:
        known = ", ".join(f"{p.name}={p.path}" for p in pools if p.path) or "none"
        raise InvalidArgument(
            f"disk {disk['target']} of {vm_name} ({disk['path']}) is on no storage pool of the host's "
            f"zone (pools: {known}); register the pool that holds it"
        )
    return max(holding, key=lambda p: len(p.path))


def _datastore_pool(disk: DiscoveredDisk, pools: list[StoragePool], vm_name: str) -> StoragePool:
    """The pool of a disk on a vSphere datastore: the zone's pool named as the datastore, else
    the one whose path is the datastore's URL path (``ds:///vmfs/volumes/<id>/`` is
    ``/vmfs/volumes/<id>``)."""
    name = disk.get("datastore")
    url = disk.get("datastore_url") or ""
    url_path = url.removeprefix("ds://").rstrip("/") if url.startswith(("ds:///", "/")) else ""
    pool = next((p for p in pools if p.name == name), None) or next(
        (p for p in pools if url_path and p.path == url_path), None
    )
    if pool is not None:
        return pool
    where = f"{name}" + (f" ({url})" if url else "")
    raise InvalidArgument(
        f"disk {disk['target']} of {vm_name} is on datastore {where}, which no storage pool of the host's "
        f"zone stands for: register a pool named {name!r}"
        + (f" or with path {url_path}" if url_path else ""),
        field="datastore",
    )


def _size(disk: DiscoveredDisk, vm_name: str) -> int:
    if not disk["size_bytes"]:
        raise InvalidArgument(f"the size of disk {disk['target']} of {vm_name} is unknown to its host")
    return disk["size_bytes"]


def _on_failure(_session: Session, _job: Job, _message: str, _final: bool) -> None:
    """Ingestion changes nothing until its last step, so a failure leaves nothing to undo."""


INGEST_HANDLER = JobHandler(run=_run, on_failure=_on_failure)
