"""What a worker does for backup and delete jobs: call the provider outside any
transaction, then record the result on the restore point in the transaction that ends the
job. Apart from ``backups`` (the use cases that ask for these jobs) because a landed backup
prunes, and pruning deletes through ``backups``.

A backup whose provider kept only some volumes (``BackupResult.failed_volumes``) is recorded
``PartiallyFailed`` with the failed volumes named, and its job then fails for good, naming
them too: the VM has no new good restore point, and a retry could only answer the same."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from orchestrator.domain.errors import ProviderError
from orchestrator.domain.jobparams import DeleteBackups
from orchestrator.domain.models import (
    USABLE_STATUSES,
    Backup,
    BackupStatus,
    BackupType,
    Job,
    VirtualMachine,
    utcnow,
)
from orchestrator.engine.core import Core, Finish, JobHandler, ProgressFn, Scope
from orchestrator.engine.execution import held_by
from orchestrator.usecases import pruning
from orchestrator.usecases.backups import IN_FLIGHT, WITH_REF, newest_usable
from orchestrator.usecases.refs import point_ref, vm_ref
from providers.base import BackupRequest, BackupResult, Capability, ProviderDriver, RestorePointRef


@dataclass(frozen=True)
class _Planned:
    driver: ProviderDriver
    request: BackupRequest
    parent_id: str | None


def _run_backup(core: Core, job: Job, progress: ProgressFn) -> Finish:
    planned = core.durably(lambda: _plan_backup(core, job))
    if not isinstance(planned, _Planned):
        return planned  # recorded already
    result = planned.driver.take_backup(planned.request, progress)
    # An earlier attempt given up for dead (its worker killed mid-backup) may have committed
    # a copy nobody records; now that this attempt is the restore point's newest writer, no
    # earlier one can commit again. The port keeps what a later attempt wrote or took over.
    for earlier in range(1, job.attempts):
        planned.driver.abandon_backup(job.subject_id, earlier)
    parent_id = planned.parent_id
    if result.failed_volumes:
        message = _partial_message(job.subject_id, result)

        def record_partial() -> None:
            with core.db.session() as session:
                # Fenced like a success: an attempt whose job went to a newer one records
                # nothing, or it could overwrite what that attempt recorded.
                ours = select(Job.id).where(*held_by(job.id, job.leased_by or "", job.attempts))
                if session.scalar(ours.with_for_update()) is not None:
                    _record(session, job, result, parent_id, BackupStatus.PARTIALLY_FAILED, message)

        core.durably(record_partial)
        raise ProviderError(message, retryable=False)

    def finish(session: Session) -> dict[str, Any]:
        return _backup_result(_record(session, job, result, parent_id, BackupStatus.BACKED_UP))

    return finish


def _plan_backup(core: Core, job: Job) -> _Planned | Finish:
    """The request to the provider (the restore point marked as backing up), or the step
    that records a restore point already backed up."""
    with core.db.session() as session:
        # Everything the request needs in three queries: this runs once per job on every worker.
        point = session.get(
            Backup, job.subject_id, options=[joinedload(Backup.offering), joinedload(Backup.provider)]
        )
        if point is None:
            raise ProviderError(f"restore point {job.subject_id} no longer exists", retryable=False)
        if point.status is BackupStatus.BACKED_UP:
            # A re-delivered job whose work was already recorded: nothing to do twice.
            return lambda _s: _backup_result(point)
        if point.status is BackupStatus.PARTIALLY_FAILED:
            raise ProviderError(point.error or "partially failed", retryable=False)
        vm = session.get(VirtualMachine, point.vm_id, options=WITH_REF)
        if vm is None or vm.removed_at is not None:
            raise ProviderError(f"virtual machine {point.vm_name} was destroyed", retryable=False)
        driver = core.drivers.for_row(point.provider)
        # An incremental builds on the parent chosen when it was queued; one deleted since is
        # replaced by the newest restorable point. A full stays a full.
        parent = point.parent
        if parent is not None and parent.status not in USABLE_STATUSES:
            parent = newest_usable(session, vm.id, point.offering_id, excluding=point.id)
        ref = vm_ref(vm)
        point.vm_metadata = ref.to_dict()
        point.status = BackupStatus.BACKING_UP
        point.error = None
        request = BackupRequest(
            restore_point_id=point.id,
            vm=ref,
            offering_external_id=point.offering.external_id,
            parent=point_ref(parent) if parent else None,
            quiesce=driver.supports(Capability.QUIESCE),
            attempt=job.attempts,
        )
        return _Planned(driver, request, parent.id if parent else None)


def _abandon_backup(core: Core, job: Job) -> None:
    """Ask the back end to remove what this attempt wrote: it lost the job to another."""

    def provider() -> ProviderDriver | None:
        with core.db.session() as session:
            point = session.get(Backup, job.subject_id, options=[joinedload(Backup.provider)])
            return core.drivers.for_row(point.provider) if point is not None else None

    driver = core.durably(provider)
    if driver is not None:
        driver.abandon_backup(job.subject_id, job.attempts)


def _record(
    session: Session,
    job: Job,
    result: BackupResult,
    parent_id: str | None,
    status: BackupStatus,
    error: str | None = None,
) -> Backup:
    done = session.get(Backup, job.subject_id)
    assert done is not None
    done.external_id = result.external_id
    # The type for restore: a point with no parent of ours needs nothing older, so it is a
    # full (also where the provider fell back to one, its parent being unreadable).
    incremental = parent_id is not None and BackupType(result.backup_type) is BackupType.INCREMENTAL
    done.parent_id = parent_id if incremental else None
    done.backup_type = BackupType.INCREMENTAL if incremental else BackupType.FULL
    done.size = result.size
    done.protected_size = result.protected_size
    done.failed_volumes = [asdict(v) for v in result.failed_volumes]
    done.status = status
    done.error = error
    done.completed_at = utcnow()
    return done


def _partial_message(point_id: str, result: BackupResult) -> str:
    failed = "; ".join(f"volume {v.label}: {v.error}" for v in result.failed_volumes)
    return (
        f"partially failed: {failed}. The other volumes are kept in restore point "
        f"{point_id} (PartiallyFailed: restorable volume by volume, not as a whole VM)"
    )


def _backup_result(point: Backup) -> dict[str, Any]:
    return {
        "backup_id": point.id,
        "external_id": point.external_id,
        "type": point.backup_type.value,
        "logical_size": point.protected_size,
        "stored_size": point.size,
    }


def _fail_backup(session: Session, job: Job, message: str, final: bool) -> None:
    point = session.get(Backup, job.subject_id)
    if point is not None and point.status in IN_FLIGHT:
        point.status = BackupStatus.FAILED if final else BackupStatus.QUEUED
        point.error = message


def _after_backup(scope: Scope, job: Job) -> None:
    """A restore point landed: apply its schedule's max_backups, or its offering's retention."""
    pruning.after_backup(scope, job.subject_id)


def _run_delete(core: Core, job: Job, progress: ProgressFn) -> Finish:
    params = DeleteBackups.of(job)
    ids = params.ids

    def targets() -> list[tuple[RestorePointRef, ProviderDriver]]:
        with core.db.session() as session:
            points = [session.get(Backup, i) for i in ids]
            return [(point_ref(p), core.drivers.for_row(p.provider)) for p in points if p is not None]

    refs = core.durably(targets)
    for done, (ref, driver) in enumerate(refs, start=1):
        driver.delete_backup(ref, forced=params.forced)
        progress(done, len(refs))

    def finish(session: Session) -> dict[str, Any]:
        for point_id in ids:
            point = session.get(Backup, point_id)
            if point is None:
                continue
            for child in session.scalars(select(Backup).where(Backup.parent_id == point.id)):
                child.parent_id = point.parent_id
                if child.parent_id is None:
                    # The new root of its chain: a provider that deletes one point in the
                    # middle of a chain keeps the newer ones whole, so it restores alone.
                    child.backup_type = BackupType.FULL
            point.status = BackupStatus.EXPUNGED
        return {"deleted": ids}

    return finish


def _fail_delete(session: Session, job: Job, message: str, final: bool) -> None:
    for point_id in DeleteBackups.of(job).ids:
        point = session.get(Backup, point_id)
        if point is not None:
            point.error = f"delete failed: {message}"


BACKUP_HANDLER = JobHandler(
    run=_run_backup, on_failure=_fail_backup, after=_after_backup, abandon=_abandon_backup
)
DELETE_HANDLER = JobHandler(run=_run_delete, on_failure=_fail_delete)
