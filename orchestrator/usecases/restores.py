"""Restores: a whole VM in place (recreated from the restore point if it was destroyed),
or one volume attached to a VM of the same zone.

A ``PartiallyFailed`` restore point lacks some volumes: restoring it as a whole VM is
refused (Conflict, naming them); each volume it kept restores on its own. Its status stays
``PartiallyFailed`` while one is read (``Restoring`` would make it look whole).

An in-place restore overwrites the VM's disks, so the VM must be at rest: stopped, or
stopped first by a provider that can (``stop``, the ``stop_vm`` capability). Nothing is
written under a running guest."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.domain import validate
from orchestrator.domain.errors import Conflict, InvalidArgument, NotFound, ProviderError
from orchestrator.domain.jobparams import RestoreVm, RestoreVolume
from orchestrator.domain.models import (
    USABLE_STATUSES,
    Backup,
    BackupStatus,
    Job,
    JobKind,
    JobState,
    StoragePool,
    VirtualMachine,
    VMState,
    Volume,
    VolumeType,
    new_id,
)
from orchestrator.engine import routing
from orchestrator.engine.core import Core, Finish, JobHandler, ProgressFn, Scope
from orchestrator.usecases import backup_providers, jobs, lookup
from orchestrator.usecases.inventory import find_host, place_volume, relink
from orchestrator.usecases.refs import on_its_host, point_ref, vm_ref
from providers.base import Capability, FailedVolume, ProviderDriver, RestorePointRef, VMRef, VolumeRef
from providers.hypervisor import copied_details


def _usable_point(scope: Scope, backup_id: str, *, partial: bool = False) -> Backup:
    """The point, if it can be restored (its volumes one by one too if ``partial``)."""
    point = lookup.backup(scope, backup_id)
    if point.status is BackupStatus.PARTIALLY_FAILED:
        if not partial:
            lacks = ", ".join(FailedVolume(**v).label for v in point.failed_volumes)
            raise Conflict(
                f"restore point {point.id} is PartiallyFailed: it lacks {lacks}, so it cannot be restored "
                "as a whole virtual machine; restore the volumes it kept one by one"
            )
    elif point.status not in USABLE_STATUSES:
        raise Conflict(
            f"restore point {point.id} is {point.status.value}; only BackedUp points can be restored"
        )
    backup_providers.usable(scope, point.provider)
    return point


def restore_vm(scope: Scope, backup_id: str, *, stop: bool = False) -> Job:
    """Write every volume of the restore point back to its VM. A destroyed VM is recreated
    from the metadata the restore point keeps, with the same id and volumes. A VM the
    inventory says is running is refused, unless ``stop`` and its provider can stop it."""
    point = _usable_point(scope, backup_id)
    vm = scope.session.get(VirtualMachine, point.vm_id)
    if vm is not None and vm.removed_at is None:
        vm = lookup.vm(scope, vm.id)
        if vm.zone_id != point.zone_id:
            raise InvalidArgument(f"virtual machine {vm.name} moved to another zone than its restore point")
        _require_at_rest(vm, scope.driver(point.provider), stop=stop)
    host_id = vm.host_id if vm is not None and vm.removed_at is None else point.vm_metadata.get("host_id")
    # One restore at a time writes a VM's disks, whichever of its points it comes from.
    exclusive = jobs.Exclusive(
        f"restore_vm:{point.vm_id}", f"a restore of virtual machine {point.vm_name} is already in progress"
    )
    return _restore_vm_job(
        scope, point, host_id, RestoreVm(vm_id=point.vm_id, stop=stop), "backup.restore", exclusive
    )


def _require_at_rest(vm: VirtualMachine, driver: ProviderDriver, *, stop: bool) -> None:
    """Conflict when ``vm`` is not stopped and nobody asked to stop it; Unsupported when
    asked, but its provider cannot stop it."""
    if vm.state is VMState.STOPPED:
        return
    if not stop:
        raise Conflict(
            f"virtual machine {vm.name} is {vm.state.value}: an in-place restore would overwrite the "
            "disks under it; stop it first, or have the restore stop it (--stop, or stop=true over the APIs)",
            field="stop",
        )
    driver.require(
        Capability.STOP_VM,
        f"stop virtual machine {vm.name} ({vm.state.value}) before restoring it in place; stop it first",
    )


def _restore_vm_job(
    scope: Scope,
    point: Backup,
    host_id: str | None,
    params: RestoreVm,
    action: str,
    exclusive: jobs.Exclusive | None = None,
) -> Job:
    """Restores write on the host that will run the VM: its queue, or the default one."""
    return jobs.on_restore_point(
        scope,
        JobKind.RESTORE_VM,
        point,
        action=action,
        placement=routing.restore_placement(host_id),
        params=params,
        exclusive=exclusive,
        vm=params.vm_id,
    )


def restore_to_new_vm(scope: Scope, backup_id: str, name: str, host: str | None = None) -> Job:
    """Create a new VM (new id, new volume ids and paths beside the originals) from a restore
    point, owned by the point's account, in its zone; the original VM is left alone."""
    point = _usable_point(scope, backup_id)
    scope.driver(point.provider).require(Capability.RESTORE_TO_NEW_VM, "restore to a new virtual machine")
    meta = VMRef.from_dict(point.vm_metadata)
    host_id = find_host(scope, host, point.zone_id).id if host else meta.host_id
    vm_id = new_id()
    target_name = validate.name(name)
    target = VMRef(
        id=vm_id,
        name=target_name,
        zone_id=meta.zone_id,
        host_id=host_id,
        volumes=tuple(
            replace(
                v, id=new_id(), path=str(PurePosixPath(v.path).with_name(f"{vm_id}-{v.device_id}.{v.format}"))
            )
            for v in meta.volumes
        ),
        details=copied_details(meta.details, target_name),
    )
    return _restore_vm_job(
        scope, point, host_id, RestoreVm(vm_id=vm_id, target=target.to_dict()), "backup.restore_new_vm"
    )


def restore_volume(scope: Scope, backup_id: str, volume_id: str, vm_id: str) -> Job:
    """Restore one volume of the restore point as a new data disk attached to ``vm_id``."""
    point = _usable_point(scope, backup_id, partial=True)
    scope.driver(point.provider).require(Capability.RESTORE_VOLUME, "restore a single volume")
    if VMRef.from_dict(point.vm_metadata).volume(volume_id) is None:
        raise NotFound(f"volume {volume_id} is not in restore point {point.id}")
    failed = next((v for v in point.failed_volumes if v["id"] == volume_id), None)
    if failed is not None:
        raise Conflict(
            f"volume {volume_id} failed in restore point {point.id} and was not kept: {failed['error']}"
        )
    target = lookup.vm(scope, vm_id)
    if target.zone_id != point.zone_id:
        raise InvalidArgument(
            f"virtual machine {target.name} is in another zone than restore point {point.id}; "
            "a volume can only be restored within its zone",
            field="virtualmachineid",
        )
    return jobs.on_restore_point(
        scope,
        JobKind.RESTORE_VOLUME,
        point,
        action="backup.restore_volume",
        account_id=target.account_id,
        placement=routing.placement(JobKind.RESTORE_VOLUME, target),
        params=RestoreVolume(volume_id=volume_id, vm_id=target.id),
        volume=volume_id,
        vm=target.id,
    )


# -- job handlers ----------------------------------------------------------------------------


def _begin(session: Session, job: Job) -> Backup:
    point = session.get(Backup, job.subject_id)
    if (
        point is not None
        and point.status is BackupStatus.PARTIALLY_FAILED
        and job.kind is JobKind.RESTORE_VOLUME
    ):
        return point
    if point is None or point.status not in USABLE_STATUSES:
        raise ProviderError(f"restore point {job.subject_id} is no longer restorable", retryable=False)
    point.status = BackupStatus.RESTORING
    return point


def _end(session: Session, job: Job) -> None:
    # The point's row lock orders the ends of restores of the same point: the last one to
    # end sees the others' ends committed and gives the point back.
    point = session.get(Backup, job.subject_id, with_for_update=True)
    if point is None or point.status is not BackupStatus.RESTORING:
        return
    still_reading = session.scalar(
        select(func.count()).where(
            Job.subject_id == point.id,
            Job.kind.in_((JobKind.RESTORE_VM, JobKind.RESTORE_VOLUME)),
            Job.state == JobState.RUNNING,
            Job.id != job.id,
        )
    )
    if not still_reading:
        point.status = BackupStatus.BACKED_UP


@dataclass(frozen=True)
class _VmRestore:
    """What a whole-VM restore asks of its provider, read before the provider is called."""

    point: RestorePointRef
    target: VMRef
    recreate: bool
    driver: ProviderDriver


def _plan_restore_vm(core: Core, job: Job) -> _VmRestore:
    with core.db.session() as session:
        point = _begin(session, job)
        ref = point_ref(point)
        vm = session.get(VirtualMachine, point.vm_id)
        params = RestoreVm.of(job)
        recreate = params.target is not None or vm is None or vm.removed_at is not None
        driver = core.drivers.for_row(point.provider)
        if vm is not None and not recreate:
            # The VM may have been started since the restore was asked for.
            _require_at_rest(vm, driver, stop=params.stop)
        if params.target is not None:
            target = on_its_host(session, VMRef.from_dict(params.target))
        elif vm is None or vm.removed_at is not None:
            target = on_its_host(session, ref.vm)
        else:
            target = vm_ref(vm)
        return _VmRestore(ref, target, recreate, driver)


def _run_restore_vm(core: Core, job: Job, progress: ProgressFn) -> Finish:
    # Read (and the point marked Restoring) in a step repeated while the database is out.
    plan = core.durably(lambda: _plan_restore_vm(core, job))
    ref, target, recreate = plan.point, plan.target, plan.recreate
    restored = plan.driver.restore_vm(ref, target, progress)

    def finish(session: Session) -> dict[str, Any]:
        _end(session, job)
        if recreate:
            _recreate_vm(session, job.subject_id, restored or target)
        elif restored is not None:
            # The back end replaced the VM's instance (some restore into a new one): follow it.
            relink(session, restored)
        return {
            "vm_id": target.id,
            "recreated": recreate,
            "relinked": restored is not None,
            "backup_id": ref.id,
        }

    return finish


def _recreate_vm(session: Session, backup_id: str, meta: VMRef) -> None:
    """Bring back a destroyed VM (or one never known here) as the restore point describes it."""
    point = session.get(Backup, backup_id)
    assert point is not None
    vm = session.get(VirtualMachine, meta.id)
    if vm is None:
        vm = VirtualMachine(id=meta.id, name=meta.name, account_id=point.account_id, zone_id=meta.zone_id)
        session.add(vm)
    vm.removed_at = None
    vm.state = VMState.STOPPED
    vm.details = dict(meta.details)
    vm.host_id = meta.host_id
    offering = point.offering
    if (
        vm.id == point.vm_id
        and vm.backup_offering_id is None
        and offering.removed_at is None
        and offering.zone_id == vm.zone_id
    ):
        # The VM comes back under the offering its restore point was taken with (a copy
        # under a new id is the user's to assign).
        vm.backup_offering_id = offering.id
    session.flush()
    for ref in meta.volumes:
        volume = session.get(Volume, ref.id)
        if volume is None:
            volume = Volume(id=ref.id, vm_id=vm.id)
            session.add(volume)
        volume.removed_at = None
        volume.vm_id = vm.id
        volume.name, volume.type, volume.device_id = ref.name, VolumeType(ref.type), ref.device_id
        place_volume(volume, ref)


@dataclass(frozen=True)
class _VolumeRestore:
    """What a volume restore asks of its provider, read before the provider is called."""

    point: RestorePointRef
    volume: VolumeRef
    target: VMRef
    driver: ProviderDriver


def _plan_restore_volume(core: Core, job: Job) -> _VolumeRestore:
    with core.db.session() as session:
        point = _begin(session, job)
        ref = point_ref(point)
        params = RestoreVolume.of(job)
        volume = ref.vm.volume(params.volume_id)
        target = session.get(VirtualMachine, params.vm_id)
        if volume is None or target is None or target.removed_at is not None:
            raise ProviderError("the volume or the target virtual machine is gone", retryable=False)
        return _VolumeRestore(ref, volume, vm_ref(target), core.drivers.for_row(point.provider))


def _run_restore_volume(core: Core, job: Job, progress: ProgressFn) -> Finish:
    plan = core.durably(lambda: _plan_restore_volume(core, job))
    ref, volume, target_ref = plan.point, plan.volume, plan.target
    restored = plan.driver.restore_volume(ref, volume, target_ref, progress)

    def finish(session: Session) -> dict[str, Any]:
        _end(session, job)
        pool_id = restored.pool_id if session.get(StoragePool, restored.pool_id) else volume.pool_id
        used = {v.device_id for v in session.scalars(select(Volume).where(Volume.vm_id == target_ref.id))}
        row = Volume(
            id=restored.id,
            vm_id=target_ref.id,
            pool_id=pool_id,
            type=VolumeType.DATADISK,
            device_id=restored.device_id if restored.device_id not in used else max(used, default=0) + 1,
            size=restored.size,
            path=restored.path,
            format=restored.format,
            name=restored.name,
        )
        session.add(row)
        return {"volume_id": row.id, "vm_id": target_ref.id, "path": row.path, "backup_id": ref.id}

    return finish


def _fail_restore(session: Session, job: Job, message: str, final: bool) -> None:
    _end(session, job)


RESTORE_VM_HANDLER = JobHandler(run=_run_restore_vm, on_failure=_fail_restore)
RESTORE_VOLUME_HANDLER = JobHandler(run=_run_restore_volume, on_failure=_fail_restore)
