"""Runs one job: claim the row, call its handler, record the outcome.

A handler does the slow work (the provider call) outside any transaction and returns a
``finish`` step; the engine runs that step in the same transaction that marks the job
succeeded, so a restore point is never ``BackedUp`` while its job looks unfinished, and a
crash between the two leaves the job to be re-run, where the handler sees the work done.

The claim is where the host and pool concurrency limits hold, for any number of workers:
one UPDATE takes the job only while fewer than the limit run on its host and pool (on
PostgreSQL behind an advisory lock per host and pool, since READ COMMITTED would let two
claims count the same free slot). While a job runs, its worker renews the lease; a worker
that dies stops renewing, and the reconciler hands the job to another.

Each claim is fenced by its attempt number: every later write of the worker (lease,
progress, outcome) names the attempt it belongs to, so a worker that was presumed dead
(paused, cut off) and wakes up after the job went to another finds its writes refused,
stops at its next progress report and asks the handler to remove what it wrote. The
attempt also reaches the provider, whose back end can refuse a stale writer itself.
Every write is retried while the database cannot be reached (``Core.durably``): a
database restart delays a job, never aborts it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    SQLColumnExpression,
    bindparam,
    func,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased
from sqlalchemy.sql.dml import ReturningUpdate

from orchestrator.domain.actor import acting_as
from orchestrator.domain.errors import DomainError, ProviderError
from orchestrator.domain.models import Host, Job, JobKind, JobState, StoragePool, utcnow
from orchestrator.engine import joblog
from orchestrator.engine.core import Core, Finish, JobHandler
from orchestrator.infra import telemetry
from orchestrator.infra.db import is_unreachable

log = logging.getLogger(__name__)

# Kinds whose progress counts bytes (the others count items).
MOVES_DATA = (JobKind.BACKUP, JobKind.RESTORE_VM, JobKind.RESTORE_VOLUME)


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Not run now: a host or pool is at its limit; offered again shortly.
    DEFERRED = "deferred"
    # Not ours to run: done, taken by another worker, cancelled, or not due yet.
    SKIPPED = "skipped"


class Cancelled(Exception):
    """The job's owner asked to stop it."""


class LeaseLost(Exception):
    """The reconciler gave the job to another worker (this one was presumed dead): the
    attempt must stop and write nothing more."""


class Lease:
    """Renews the job's lease while it runs and notices a cancel request or a lost lease.

    The renewal runs on its own thread so a provider call that reports no progress for
    minutes still keeps its job."""

    def __init__(self, core: Core, job_id: str, worker_id: str, attempt: int) -> None:
        self.core = core
        self.job_id = job_id
        self.worker_id = worker_id
        self.attempt = attempt
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job_id[:8]}", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost(f"job {self.job_id} was handed to another worker")
        if self.cancelled.is_set():
            raise Cancelled(f"job {self.job_id} was cancelled")

    def _beat(self) -> None:
        every = self.core.settings.lease_seconds / 3
        failed = 0
        while not self._stop.wait(every):
            try:
                self.renew()
            except Exception as exc:
                # The database may be restarting: the lease has two more beats of slack.
                failed += 1
                log.warning("could not renew the lease of job %s: %s", self.job_id, exc)
                continue
            if failed:
                log.info("renewed the lease of job %s after %d failed tries", self.job_id, failed)
                failed = 0

    def renew(self) -> None:
        until = utcnow() + timedelta(seconds=self.core.settings.lease_seconds)
        self._update(lease_expires_at=until)

    def store_progress(self, done: int, total: int) -> None:
        self.core.durably(lambda: self._update(progress_done=done, progress_total=total))
        self.check()

    def _update(self, **values: Any) -> None:
        """Write on the job row only while this attempt holds it; notes a lost lease or a
        cancel request."""
        with self.core.db.session() as session:
            row = session.execute(
                update(Job)
                .where(*held_by(self.job_id, self.worker_id, self.attempt))
                .values(**values)
                .returning(Job.cancel_requested_at)
            ).first()
        if row is None:
            if not self.lost.is_set():
                log.info("job %s: attempt %d no longer holds the job", self.job_id, self.attempt)
            self.lost.set()
        elif row.cancel_requested_at is not None:
            self.cancelled.set()


def held_by(job_id: str, worker_id: str, attempt: int) -> tuple[ColumnElement[bool], ...]:
    """The job is running under this worker's claim of this attempt (the fencing token)."""
    return (
        Job.id == job_id,
        Job.state == JobState.RUNNING,
        Job.leased_by == worker_id,
        Job.attempts == attempt,
    )


class ProgressWriter:
    """Stores bytes done/total on the job row, at most a few times per second; the place
    where a running job learns it was cancelled or lost its lease."""

    interval = 0.5

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.total = 0
        # Reports within the interval of the last write are skipped, but never the last one.
        self._last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        self.lease.check()
        self.total = total
        now = time.monotonic()
        # The last report is always written: a driver reports it just before it commits,
        # so a worker that lost its lease learns it there at the latest.
        if now - self._last < self.interval and done < total:
            return
        self._last = now
        self.lease.store_progress(done, total)


_OTHER = aliased(Job, name="other_jobs")


def _running_on(column: str, ident: str | SQLColumnExpression[str | None]) -> Select[int]:
    return select(func.count()).where(_OTHER.state == JobState.RUNNING, getattr(_OTHER, column) == ident)


def _has_slot(column: str, model: type[Host] | type[StoragePool]) -> ColumnElement[bool]:
    """The job's host (or pool) runs fewer jobs than its limit, or the job has none."""
    own: InstrumentedAttribute[str | None] = getattr(Job, column)
    limit = select(model.max_concurrent_backups).where(model.id == own).scalar_subquery()
    return or_(own.is_(None), _running_on(column, own).scalar_subquery() < func.coalesce(limit, 0))


_SLOTS: tuple[tuple[str, type[Host] | type[StoragePool], str], ...] = (
    ("host_id", Host, "host"),
    ("pool_id", StoragePool, "storage pool"),
)


def _lock_slots_statement() -> Select[Any]:
    """The advisory locks of a job's host and pool, in one round trip. Keys are hashed by
    PostgreSQL from the job row itself, and taken in key order so two claims never wait for
    each other in a cycle (the subquery's ORDER BY fixes the call order)."""
    table = Job.__table__.c
    keys = (
        select(func.hashtextextended(literal(f"backup-orchestrator:{column}:") + table[column], 0)).where(
            table.id == bindparam("lock_job_id"), table[column].is_not(None)
        )
        for column, _, _ in _SLOTS
    )
    found = union_all(*keys).subquery("keys")
    ordered = select(found.c[0].label("key")).order_by("key").subquery("ordered")
    return select(func.pg_advisory_xact_lock(ordered.c.key))


def _claim_statement() -> ReturningUpdate[Job]:
    """One UPDATE that takes a due queued job only while its host and pool have a free slot."""
    now: BindParameter[datetime] = bindparam("claim_now")
    return (
        update(Job)
        .where(Job.id == bindparam("claim_job_id"), Job.state == JobState.QUEUED, Job.not_before <= now)
        .where(*(_has_slot(column, model) for column, model, _ in _SLOTS))
        .values(
            state=JobState.RUNNING,
            attempts=Job.attempts + 1,
            leased_by=bindparam("claim_worker"),
            claim_token=bindparam("claim_token"),
            lease_expires_at=bindparam("claim_until"),
            started_at=now,
            error=None,
        )
        .returning(Job)
    )


# Built once: a claim runs for every job on every worker, and building these statements
# cost more than running them.
_LOCK_SLOTS = _lock_slots_statement()
_CLAIM = _claim_statement()


@dataclass(frozen=True)
class Deferred:
    job: Job
    reason: str


def claim(core: Core, job_id: str, worker_id: str, token: str | None = None) -> Job | Deferred | None:
    """Move a due queued job to running under this worker's lease. ``Deferred`` when its host
    or pool is at its limit (the job is offered again shortly); None if it is not ours to run.

    One UPDATE claims the job only while its host and pool have a free slot. On PostgreSQL
    claims of the same host or pool queue behind an advisory lock first: under READ
    COMMITTED two concurrent UPDATEs would otherwise count the same free slot.

    Safe to repeat with the same ``token`` (one per claim; a fresh one when None): a claim
    whose commit went through although its answer was lost is found again and returned."""
    token = token or uuid.uuid4().hex
    with core.db.session() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(_LOCK_SLOTS, {"lock_job_id": job_id})
        # After the locks: a start time never precedes the end of the job whose slot it took.
        now = utcnow()
        claimed = session.scalars(
            _CLAIM,
            {
                "claim_job_id": job_id,
                "claim_now": now,
                "claim_worker": worker_id,
                "claim_until": now + timedelta(seconds=core.settings.lease_seconds),
                "claim_token": token,
            },
        ).first()
        if claimed is not None:
            joblog.add(session, claimed.id, f"attempt {claimed.attempts} started on {worker_id}")
            return claimed
        job = session.get(Job, job_id)
        if job is not None and job.state is JobState.RUNNING and job.claim_token == token:
            log.info("job %s: attempt %d was claimed by a try whose answer was lost", job_id, job.attempts)
            # Its lease ran on while the answer was awaited; the beat starts only now.
            job.lease_expires_at = now + timedelta(seconds=core.settings.lease_seconds)
            return job
        if job is None or job.state is not JobState.QUEUED or job.not_before > now:
            return None  # done, taken, cancelled, or rescheduled meanwhile
        # Still queued and due, so a limit refused it (a slot may have freed since).
        job.not_before = now + timedelta(seconds=core.settings.defer_seconds * random.uniform(0.5, 1.5))
        return Deferred(job, _full(session, job) or "its host or pool was at its limit a moment ago")


def _full(session: Session, job: Job) -> str | None:
    for column, model, what in _SLOTS:
        ident = getattr(job, column)
        row = session.get(model, ident) if ident else None
        if (
            isinstance(row, (Host, StoragePool))
            and (session.scalar(_running_on(column, ident)) or 0) >= row.max_concurrent_backups
        ):
            return f"{what} {row.name} runs {row.max_concurrent_backups} job(s) already, its limit"
    return None


def _still_ours(session: Session, job_id: str, worker_id: str, attempt: int) -> Job | None:
    return session.scalars(select(Job).where(*held_by(job_id, worker_id, attempt)).with_for_update()).first()


def _succeeded_already(session: Session, job_id: str, worker_id: str, attempt: int) -> bool:
    """This attempt's success is on the row already: its commit went through but the answer
    was lost, and the write is being repeated (only the attempt's holder records success)."""
    job = session.get(Job, job_id)
    return job is not None and (job.state, job.attempts, job.leased_by) == (
        JobState.SUCCEEDED,
        attempt,
        worker_id,
    )


def execute(core: Core, job_id: str, worker_id: str = "inline") -> Outcome:
    """Run the job if it is due and ours to run; how the attempt ended."""
    started = time.monotonic()
    token = uuid.uuid4().hex  # the same for every try of this claim
    claimed = core.durably(lambda: claim(core, job_id, worker_id, token))
    if claimed is None:
        return Outcome.SKIPPED
    if isinstance(claimed, Deferred):
        log.info("job %s deferred: %s", job_id, claimed.reason)
        _observe(claimed.job, Outcome.DEFERRED, time.monotonic() - started, 0)
        return Outcome.DEFERRED
    job = claimed
    handler = core.handlers[job.kind]
    with Lease(core, job.id, worker_id, job.attempts) as lease:
        progress = ProgressWriter(lease)
        outcome = _attempt(core, job, worker_id, handler, progress)
    if outcome is Outcome.SKIPPED:
        _abandon(core, job, worker_id, handler)
    _observe(job, outcome, time.monotonic() - started, progress.total)
    return outcome


def _attempt(core: Core, job: Job, worker_id: str, handler: JobHandler, progress: ProgressWriter) -> Outcome:
    """How the claimed attempt ended; SKIPPED when it lost its lease on the way."""
    try:
        finish = handler.run(core, job, progress)
        if progress.lease.lost.is_set():
            return Outcome.SKIPPED
        return core.durably(lambda: _record_success(core, job, worker_id, handler, finish, progress.total))
    except LeaseLost:
        return Outcome.SKIPPED
    except Cancelled:
        return core.durably(lambda: _record_end(core, job, worker_id, handler, "cancelled", cancelled=True))
    except Exception as exc:
        if isinstance(exc, DomainError):
            message, retryable = exc.message, isinstance(exc, ProviderError) and exc.retryable
        else:
            log.exception("job %s (%s) failed unexpectedly", job.id, job.kind.value)
            message, retryable = f"internal error: {type(exc).__name__}: {exc}", True
        return core.durably(lambda: _record_end(core, job, worker_id, handler, message, retryable=retryable))


def _abandon(core: Core, job: Job, worker_id: str, handler: JobHandler) -> None:
    """The attempt lost its lease (the job was handed to another worker): remove what it
    wrote at the back end, so the job's one result is the current attempt's."""
    log.warning("job %s attempt %d was handed to another worker while this one ran it", job.id, job.attempts)
    note = f"attempt {job.attempts} on {worker_id} lost its lease and stopped"
    try:
        if handler.abandon is not None:
            handler.abandon(core, job)
            note += "; what it wrote was removed"
    except Exception as exc:
        log.exception("job %s: attempt %d could not remove what it wrote", job.id, job.attempts)
        note += f"; what it wrote could not be removed ({exc}), a reconcile will count it"
    core.durably(lambda: _log(core, job.id, note, "warning"))


def _log(core: Core, job_id: str, message: str, level: str) -> None:
    with core.db.session() as session:
        joblog.add(session, job_id, message, level)


def _record_success(
    core: Core, claimed: Job, worker_id: str, handler: JobHandler, finish: Finish, total: int = 0
) -> Outcome:
    with core.scope(acting_as(claimed.account_id)) as scope:
        session = scope.session
        job = _still_ours(session, claimed.id, worker_id, claimed.attempts)
        if job is None:
            if _succeeded_already(session, claimed.id, worker_id, claimed.attempts):
                return Outcome.SUCCEEDED
            return Outcome.SKIPPED
        job.result = finish(session)
        job.state = JobState.SUCCEEDED
        job.finished_at = utcnow()
        job.lease_expires_at = None
        job.progress_total = max(job.progress_total, total)
        job.progress_done = job.progress_total
        note = " (a cancel request came after the work was done)" if job.cancel_requested_at else ""
        joblog.add(session, job.id, f"attempt {job.attempts} succeeded{note}")
        if handler.after is not None:
            try:
                with scope.savepoint():
                    handler.after(scope, job)
            except Exception as exc:
                if is_unreachable(exc):
                    # The connection went with the follow-up, and this transaction with it:
                    # the whole success is recorded again once the database answers.
                    raise
                log.exception("follow-up of job %s failed", job.id)
        return Outcome.SUCCEEDED


def _record_end(
    core: Core,
    claimed: Job,
    worker_id: str,
    handler: JobHandler,
    message: str,
    *,
    retryable: bool = False,
    cancelled: bool = False,
) -> Outcome:
    with core.db.session() as session:
        job = _still_ours(session, claimed.id, worker_id, claimed.attempts)
        if job is None:
            return Outcome.SKIPPED
        job.lease_expires_at = None
        if cancelled:
            job.state = JobState.CANCELLED
            job.finished_at = utcnow()
            job.error = "cancelled while running"
            handler.on_failure(session, job, job.error, True)
            joblog.add(session, job.id, f"attempt {job.attempts} stopped: cancelled", level="warning")
            return Outcome.CANCELLED
        job.error = message
        if retryable and job.attempts < job.max_attempts:
            delay = core.settings.retry_base_seconds * 2 ** (job.attempts - 1)
            job.state = JobState.QUEUED
            job.not_before = utcnow() + timedelta(seconds=delay)
            handler.on_failure(session, job, message, False)
            joblog.add(
                session, job.id, f"attempt {job.attempts} failed: {message}; retry in {delay:.0f}s", "warning"
            )
            return Outcome.RETRY
        job.state = JobState.FAILED
        job.finished_at = utcnow()
        handler.on_failure(session, job, message, True)
        joblog.add(session, job.id, f"attempt {job.attempts} failed: {message}; giving up", level="error")
        return Outcome.FAILED


def _observe(job: Job, outcome: Outcome, seconds: float, total: int) -> None:
    labels = (job.kind.value, job.queue, outcome.value)
    telemetry.JOB_ATTEMPTS.labels(*labels).inc()
    telemetry.JOB_DURATION.labels(*labels).observe(seconds)
    if outcome is Outcome.SUCCEEDED and job.kind in MOVES_DATA and total:
        telemetry.MOVED_BYTES.labels(job.pool_id or "", job.kind.value).inc(total)
    if job.deadline is not None and outcome in (Outcome.SUCCEEDED, Outcome.FAILED):
        telemetry.JOB_LATENESS.labels(job.kind.value).observe(
            max(0.0, (utcnow() - job.deadline).total_seconds())
        )
