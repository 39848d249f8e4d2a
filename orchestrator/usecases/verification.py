"""Restore drills without a hypervisor: a restore point re-read at its back end and checked.

A point found damaged becomes ``Error``, its error saying what is damaged, so it is no
longer offered for restores; a back end that cannot be reached fails (or retries) the job
and leaves the point as it was. A verify changes nothing at the back end.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from orchestrator.domain.errors import Conflict, ProviderError, Unsupported
from orchestrator.domain.models import USABLE_STATUSES, Backup, BackupStatus, Job, JobKind
from orchestrator.engine.core import Core, Finish, JobHandler, ProgressFn, Scope
from orchestrator.usecases import jobs, lookup
from orchestrator.usecases.refs import point_ref
from providers.base import Capability, ProviderDriver, RestorePointRef


def verify_backup(scope: Scope, backup_id: str) -> Job:
    """Queue a verify of one restore point (its owner or an admin)."""
    point = lookup.backup(scope, backup_id)
    if point.status not in USABLE_STATUSES:
        raise Conflict(
            f"restore point {point.id} is {point.status.value}; only BackedUp points can be verified"
        )
    if not scope.driver(point.provider).supports(Capability.VERIFY):
        raise Unsupported(f"provider {point.provider.name!r} cannot verify restore points")
    return jobs.on_restore_point(scope, JobKind.VERIFY, point, action="backup.verify")


def _to_verify(core: Core, job: Job) -> tuple[ProviderDriver, RestorePointRef]:
    with core.db.session() as session:
        point = session.get(Backup, job.subject_id)
        if point is None or point.status not in USABLE_STATUSES:
            raise ProviderError(f"restore point {job.subject_id} is no longer verifiable", retryable=False)
        return core.drivers.for_row(point.provider), point_ref(point)


def _run_verify(core: Core, job: Job, progress: ProgressFn) -> Finish:
    # Read in a step repeated while the database is out, like every write of a worker.
    driver, ref = core.durably(lambda: _to_verify(core, job))
    try:
        driver.verify(ref)
        damage = None
    except ProviderError as exc:
        # A retryable error says the back end could not be read (a hung mount, a
        # timeout), not that the point is bad.
        if exc.retryable:
            raise
        damage = exc.message

    def finish(session: Session) -> dict[str, Any]:
        checked = session.get(Backup, job.subject_id)
        if damage is not None and checked is not None and checked.status in USABLE_STATUSES:
            checked.status = BackupStatus.ERROR
            checked.error = f"verify found it damaged: {damage}"
        return {"backup_id": job.subject_id, "intact": damage is None, "damage": damage}

    return finish


def _nothing_to_undo(_session: Session, _job: Job, _message: str, _final: bool) -> None:
    """A verify that could not finish changed nothing."""


VERIFY_HANDLER = JobHandler(run=_run_verify, on_failure=_nothing_to_undo)
