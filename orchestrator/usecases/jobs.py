"""Jobs: created by use cases, listed and cancelled by their owners."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.domain.errors import Conflict
from orchestrator.domain.jobparams import JobParams
from orchestrator.domain.models import (
    ACTIVE_JOB_STATES,
    Backup,
    Host,
    Job,
    JobKind,
    JobLog,
    JobState,
    VirtualMachine,
    new_id,
    utcnow,
)
from orchestrator.domain.validate import parse_enum
from orchestrator.engine import joblog
from orchestrator.engine.core import Scope
from orchestrator.engine.routing import PROVIDER_WORK, Placement
from orchestrator.infra.paging import DEFAULT_PAGESIZE, Page, paginate
from orchestrator.usecases import audit, lookup

DEFAULT_MAX_ATTEMPTS = {JobKind.BACKUP: 3, JobKind.DELETE_BACKUP: 3, JobKind.VERIFY: 2}


@dataclass(frozen=True)
class Exclusive:
    """What at most one queued or running job may work on at a time (the database holds it
    with a partial unique index), and the words for a request that finds it taken."""

    key: str
    busy: str


def active_holder(session: Session, key: str) -> Job | None:
    """The queued or running job that holds ``key``, if any."""
    return session.scalar(select(Job).where(Job.exclusive_key == key, Job.state.in_(ACTIVE_JOB_STATES)))


def new_job(
    *,
    kind: JobKind,
    account_id: str,
    requested_by: str | None,
    subject_type: str,
    subject_id: str,
    placement: Placement,
    idempotency_key: str | None = None,
    params: JobParams | None = None,
    not_before: datetime | None = None,
    deadline: datetime | None = None,
    state: JobState = JobState.QUEUED,
    exclusive: Exclusive | None = None,
) -> Job:
    """The one place a job row is made (the caller adds it to its session). Without a key
    the job gets a fresh one: it cannot have been seen before."""
    job_id = new_id()
    return Job(
        id=job_id,
        kind=kind,
        state=state,
        account_id=account_id,
        requested_by=requested_by,
        subject_type=subject_type,
        subject_id=subject_id,
        queue=placement.queue,
        host_id=placement.host_id,
        pool_id=placement.pool_id,
        idempotency_key=idempotency_key or f"{kind.value}:{job_id}",
        exclusive_key=exclusive.key if exclusive else None,
        params=params.to_json() if params else {},
        not_before=not_before or utcnow(),
        deadline=deadline,
        max_attempts=DEFAULT_MAX_ATTEMPTS.get(kind, 1),
        # Handed to the runner as soon as the scope commits.
        dispatched_at=utcnow() if state is JobState.QUEUED else None,
    )


def create(
    scope: Scope,
    *,
    kind: JobKind,
    account_id: str,
    subject_type: str,
    subject_id: str,
    placement: Placement,
    idempotency_key: str | None = None,
    params: JobParams | None = None,
    exclusive: Exclusive | None = None,
) -> Job:
    """Create a queued job, asked for by the scope's actor; it reaches the runner when the
    scope commits. A key seen before returns the existing job instead of a second one; an
    ``exclusive`` that an active job holds is a Conflict naming that job, also when the two
    requests race (the loser's insert breaks a unique index and is undone alone)."""
    if idempotency_key is not None and (existing := find_by_key(scope, idempotency_key, account_id)):
        return existing
    job = new_job(
        kind=kind,
        account_id=account_id,
        requested_by=scope.actor.account_id,
        subject_type=subject_type,
        subject_id=subject_id,
        placement=placement,
        idempotency_key=idempotency_key,
        params=params,
        exclusive=exclusive,
    )
    _exclusively(scope, exclusive, lambda: scope.session.add(job))
    scope.enqueue(job)
    return job


def _exclusively(scope: Scope, exclusive: Exclusive | None, write: Callable[[], None]) -> None:
    """Make a job active with ``write``, unless another active job holds ``exclusive``: then
    a Conflict naming that job. Two requests racing past the check both write, and the
    unique index refuses the second's (undone alone, behind a savepoint) as if it came second."""
    if exclusive is not None and (holder := active_holder(scope.session, exclusive.key)):
        raise _busy(exclusive, holder)
    try:
        with scope.savepoint():
            write()
            scope.session.flush()
    except IntegrityError:
        if exclusive is not None and (holder := active_holder(scope.session, exclusive.key)):
            raise _busy(exclusive, holder) from None
        raise


def _busy(exclusive: Exclusive, holder: Job) -> Conflict:
    return Conflict(f"{exclusive.busy} (job {holder.id})")


def on_restore_point(
    scope: Scope,
    kind: JobKind,
    point: Backup,
    *,
    action: str,
    account_id: str | None = None,
    placement: Placement = PROVIDER_WORK,
    idempotency_key: str | None = None,
    params: JobParams | None = None,
    exclusive: Exclusive | None = None,
    **details: Any,
) -> Job:
    """A job on a restore point (back it up, verify, restore, delete), owned by the point's
    account unless ``account_id`` says otherwise, and audited as ``action``."""
    job = create(
        scope,
        kind=kind,
        account_id=account_id or point.account_id,
        subject_type="backup",
        subject_id=point.id,
        placement=placement,
        idempotency_key=idempotency_key,
        params=params,
        exclusive=exclusive,
    )
    audit.record(scope, action, "backup", point.id, job=job.id, **details)
    return job


def release(
    scope: Scope,
    job: Job,
    *,
    subject_type: str,
    subject_id: str,
    placement: Placement,
    exclusive: Exclusive | None = None,
) -> Job:
    """A planned job whose time has come: point it at its subject, route it where the VM
    is now, and queue it (a Conflict if an active job holds ``exclusive``)."""
    if job.state is not JobState.PLANNED:
        raise Conflict(f"job {job.id} is {job.state.value}, not planned")

    def queue() -> None:
        job.state = JobState.QUEUED
        job.subject_type = subject_type
        job.subject_id = subject_id
        job.queue, job.host_id, job.pool_id = placement.queue, placement.host_id, placement.pool_id
        job.not_before = job.dispatched_at = utcnow()
        job.exclusive_key = exclusive.key if exclusive else None

    _exclusively(scope, exclusive, queue)
    scope.enqueue(job)
    return job


def cancel_planned(scope: Scope, vm_ids: Collection[str] | Select[str], why: str) -> int:
    """Cancel the VMs' planned SLA backups, which lost their reason (the VM left its offering
    or was destroyed, the offering's SLA changed), so that the planner stops reserving
    capacity for them."""
    planned = scope.session.scalars(
        select(Job).where(Job.state == JobState.PLANNED, Job.subject_type == "vm", Job.subject_id.in_(vm_ids))
    ).all()
    for job in planned:
        job.state = JobState.CANCELLED
        job.finished_at = utcnow()
        job.error = f"cancelled: {why}"
        joblog.add(scope.session, job.id, job.error, "warning")
    return len(planned)


def find_by_key(scope: Scope, idempotency_key: str, account_id: str) -> Job | None:
    """The job already made under this key; a key is never shared across tenants."""
    existing = scope.session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
    if existing is not None and existing.account_id != account_id:
        raise Conflict(f"idempotency key {idempotency_key!r} is already used", field="idempotency_key")
    return existing


def list_jobs(
    scope: Scope,
    *,
    state: str | None = None,
    kind: str | None = None,
    subject_id: str | None = None,
    page: int = 1,
    pagesize: int = DEFAULT_PAGESIZE,
) -> Page[Job]:
    stmt = select(Job).order_by(Job.created_at.desc(), Job.id)
    if not scope.actor.is_admin:
        stmt = stmt.where(Job.account_id == scope.actor.account_id)
    if state:
        stmt = stmt.where(Job.state == parse_enum(JobState, state, "state"))
    if kind:
        stmt = stmt.where(Job.kind == parse_enum(JobKind, kind, "kind"))
    if subject_id:
        # A VM's own backups have its restore points as their subjects: they belong to it too.
        its_points = select(Backup.id).where(Backup.vm_id == subject_id)
        stmt = stmt.where(
            or_(
                Job.subject_id == subject_id,
                and_(Job.subject_type == "backup", Job.subject_id.in_(its_points)),
            )
        )
    return paginate(scope.session, stmt, page, pagesize)


def show(scope: Scope, job_id: str) -> Job:
    return lookup.job(scope, job_id)


# Per kind of subject, the name people know it by: a restore point's is its VM's.
_SUBJECT_NAMES: dict[str, Any] = {
    "backup": (Backup.id, Backup.vm_name),
    "vm": (VirtualMachine.id, VirtualMachine.name),
    "host": (Host.id, Host.name),
}


def target_names(scope: Scope, listed: Sequence[Job]) -> dict[str, str]:
    """What the jobs work on, by subject id: the name of the VM (a restore point's VM) or
    host, one query per kind of subject."""
    names: dict[str, str] = {}
    for subject_type, (ident, name) in _SUBJECT_NAMES.items():
        ids = {j.subject_id for j in listed if j.subject_type == subject_type}
        if ids:
            found = scope.session.execute(select(ident, name).where(ident.in_(ids)))
            names.update((subject_id, shown) for subject_id, shown in found)
    return names


def cancel(scope: Scope, job_id: str) -> Job:
    """Cancel a job. A planned or queued one stops now; a running one at its next progress
    report or lease renewal (a job whose work completes first still succeeds)."""
    job = lookup.job(scope, job_id)
    if job.state is JobState.RUNNING:
        if job.cancel_requested_at is None:
            job.cancel_requested_at = utcnow()
            joblog.add(scope.session, job.id, f"cancel requested by {scope.actor.name}", "warning")
            audit.record(scope, "job.cancel", "job", job.id, running=True)
        return job
    if job.state not in (JobState.PLANNED, JobState.QUEUED):
        raise Conflict(f"job {job.id} is {job.state.value}; it can no longer be cancelled")
    job.state = JobState.CANCELLED
    job.finished_at = utcnow()
    job.error = f"cancelled by {scope.actor.name}"
    scope.core.handlers[job.kind].on_failure(scope.session, job, job.error, True)
    joblog.add(scope.session, job.id, job.error, "warning")
    audit.record(scope, "job.cancel", "job", job.id)
    return job


def logs(scope: Scope, job_id: str) -> list[JobLog]:
    """What happened to the job, oldest first."""
    return joblog.entries(scope.session, lookup.job(scope, job_id).id)
