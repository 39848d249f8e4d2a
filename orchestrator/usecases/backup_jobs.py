"""What a worker does for backup and delete jobs: call the provider outside any
transaction, then record the result on the restore point in the transaction that ends the
job. Apart from ``backups`` (the use cases that ask for these jobs) because a landed backup
prunes, and pruning deletes through ``backups``."""

from __future__ import annotations

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
from orchestrator.usecases import pruning
from orchestrator.usecases.backups import IN_FLIGHT, WITH_REF, newest_usable
from orchestrator.usecases.refs import point_ref, vm_ref
from providers.base import BackupRequest, Capability


def _run_backup(core: Core, job: Job, progress: ProgressFn) -> Finish:
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
        )
        parent_id = parent.id if parent else None
    result = driver.take_backup(request, progress)

    def finish(session: Session) -> dict[str, Any]:
        done = session.get(Backup, job.subject_id)
        assert done is not None
        done.external_id = result.external_id
        # The type for restore: a point with no parent of ours needs nothing older, so it is
        # a full (also where the provider fell back to one, its parent being unreadable).
        incremental = parent_id is not None and BackupType(result.backup_type) is BackupType.INCREMENTAL
        done.parent_id = parent_id if incremental else None
        done.backup_type = BackupType.INCREMENTAL if incremental else BackupType.FULL
        done.size = result.size
        done.protected_size = result.protected_size
        done.status = BackupStatus.BACKED_UP
        done.completed_at = utcnow()
        return _backup_result(done)

    return finish


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
    with core.db.session() as session:
        points = [session.get(Backup, i) for i in ids]
        refs = [(p.id, point_ref(p), core.drivers.for_row(p.provider)) for p in points if p is not None]
    for done, (_pid, ref, driver) in enumerate(refs, start=1):
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


BACKUP_HANDLER = JobHandler(run=_run_backup, on_failure=_fail_backup, after=_after_backup)
DELETE_HANDLER = JobHandler(run=_run_delete, on_failure=_fail_delete)
