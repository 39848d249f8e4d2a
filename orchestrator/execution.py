"""Runs one job: claim the row, call its handler, record the outcome.

A handler does the slow work (the provider call) outside any transaction and returns a
``finish`` step; the engine runs that step in the same transaction that marks the job
succeeded, so a restore point is never ``BackedUp`` while its job looks unfinished, and a
crash between the two leaves the job to be re-run, where the handler sees the work done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from orchestrator.core import Core
from orchestrator.errors import DomainError, ProviderError
from orchestrator.models import Job, JobKind, JobState, utcnow

log = logging.getLogger(__name__)

Finish = Callable[[Session], dict[str, Any]]
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class JobHandler:
    # Does the work; returns the step that records success.
    run: Callable[[Core, Job, ProgressFn], Finish]
    # Records on the job's subject that this attempt failed; ``final`` when no retry follows.
    on_failure: Callable[[Session, Job, str, bool], None]
    # Follow-up work once success is committed (e.g. pruning); its failure does not undo the job.
    after: Callable[[Core, Job], None] | None = None


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"


def handler_for(kind: JobKind) -> JobHandler:
    # Imported here: the use case modules import this one for JobHandler.
    from orchestrator import backups, restores

    handlers = {
        JobKind.BACKUP: backups.BACKUP_HANDLER,
        JobKind.DELETE_BACKUP: backups.DELETE_HANDLER,
        JobKind.RESTORE_VM: restores.RESTORE_VM_HANDLER,
        JobKind.RESTORE_VOLUME: restores.RESTORE_VOLUME_HANDLER,
    }
    try:
        return handlers[kind]
    except KeyError:
        raise NotImplementedError(f"no handler for {kind.value} jobs in this version") from None


class ProgressWriter:
    """Stores bytes done/total on the job row, at most a few times per second."""

    interval = 0.5

    def __init__(self, core: Core, job_id: str) -> None:
        self.core = core
        self.job_id = job_id
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < self.interval:
            return
        self._last = now
        with self.core.db.session() as session:
            session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.state == JobState.RUNNING)
                .values(progress_done=done, progress_total=total)
            )


def claim(core: Core, job_id: str, worker_id: str) -> Job | None:
    """Move a due queued job to running under this worker's lease; None if someone else has it."""
    now = utcnow()
    with core.db.session() as session:
        claimed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.QUEUED, Job.not_before <= now)
            .values(
                state=JobState.RUNNING,
                attempts=Job.attempts + 1,
                leased_by=worker_id,
                lease_expires_at=now + timedelta(seconds=core.settings.lease_seconds),
                started_at=now,
                error=None,
            )
        ).rowcount
        return session.get(Job, job_id) if claimed else None


def _still_ours(session: Session, job_id: str, worker_id: str) -> Job | None:
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.state is not JobState.RUNNING or job.leased_by != worker_id:
        return None
    return job


def execute(core: Core, job_id: str, worker_id: str = "inline") -> Outcome:
    job = claim(core, job_id, worker_id)
    if job is None:
        return Outcome.SKIPPED
    handler = handler_for(job.kind)
    try:
        finish = handler.run(core, job, ProgressWriter(core, job.id))
        with core.db.session() as session:
            current = _still_ours(session, job_id, worker_id)
            if current is None:
                return Outcome.SKIPPED
            current.result = finish(session)
            current.state = JobState.SUCCEEDED
            current.finished_at = utcnow()
            current.lease_expires_at = None
            current.progress_done = max(current.progress_done, current.progress_total)
        if handler.after is not None:
            try:
                handler.after(core, job)
            except Exception:
                log.exception("follow-up of job %s failed", job_id)
        return Outcome.SUCCEEDED
    except Exception as exc:
        if isinstance(exc, DomainError):
            message, retryable = exc.message, isinstance(exc, ProviderError) and exc.retryable
        else:
            log.exception("job %s (%s) failed unexpectedly", job_id, job.kind.value)
            message, retryable = f"internal error: {type(exc).__name__}: {exc}", True
        return _record_failure(core, job_id, worker_id, handler, message, retryable)


def _record_failure(
    core: Core, job_id: str, worker_id: str, handler: JobHandler, message: str, retryable: bool
) -> Outcome:
    with core.db.session() as session:
        job = _still_ours(session, job_id, worker_id)
        if job is None:
            return Outcome.SKIPPED
        job.error = message
        job.lease_expires_at = None
        if retryable and job.attempts < job.max_attempts:
            delay = core.settings.retry_base_seconds * 2 ** (job.attempts - 1)
            job.state = JobState.QUEUED
            job.not_before = utcnow() + timedelta(seconds=delay)
            handler.on_failure(session, job, message, False)
            return Outcome.RETRY
        job.state = JobState.FAILED
        job.finished_at = utcnow()
        handler.on_failure(session, job, message, True)
        return Outcome.FAILED
