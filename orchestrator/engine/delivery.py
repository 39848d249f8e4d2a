"""Getting queued jobs to a worker, and again when something was lost on the way.

The jobs table is the truth; a message is only a nudge. Each round:

- a running job whose lease expired (its worker died or hung) goes back to ``queued``,
  or to ``failed`` when its attempts are spent;
- a queued job that is due is handed to the runner if it was never handed over since it
  became due (new, retried, deferred by a full host or pool), if the runner's queue is
  empty although the job was sent more than a grace period ago (the broker lost it, e.g.
  Redis was flushed), or if it was sent longer ago than ``redeliver_seconds`` whatever
  the broker says.

Re-sending is safe: a worker claims a job with one atomic UPDATE, so a second message
for the same job finds it taken and does nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, select, update

from orchestrator.domain.models import Job, JobState, utcnow
from orchestrator.engine import joblog
from orchestrator.engine.core import Core
from orchestrator.engine.runner import Queued
from orchestrator.infra import telemetry

log = logging.getLogger(__name__)

BATCH = 1000


@dataclass
class Delivery:
    sent: int = 0
    redelivered: dict[str, int] = field(default_factory=dict)
    lease_expired: int = 0


def reclaim_expired(core: Core) -> int:
    """Jobs whose worker stopped renewing the lease go back to the queue (or fail)."""
    now = utcnow()
    with core.db.session() as session:
        stmt = (
            select(Job)
            .where(Job.state == JobState.RUNNING, Job.lease_expires_at < now)
            .order_by(Job.lease_expires_at)
            .limit(BATCH)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        expired = list(session.scalars(stmt))
        for job in expired:
            message = f"worker {job.leased_by} stopped renewing its lease (presumed dead)"
            final = job.attempts >= job.max_attempts or job.cancel_requested_at is not None
            late = (now - job.lease_expires_at).total_seconds() if job.lease_expires_at else 0.0
            log.warning(
                "job %s attempt %d: %s, its lease expired %.1fs ago; %s",
                job.id,
                job.attempts,
                message,
                late,
                "giving up" if final else "queued again",
            )
            job.leased_by = None
            job.lease_expires_at = None
            job.error = message
            if final:
                job.state = JobState.CANCELLED if job.cancel_requested_at else JobState.FAILED
                job.finished_at = now
                joblog.add(session, job.id, f"attempt {job.attempts}: {message}; giving up", "error")
            else:
                job.state = JobState.QUEUED
                job.not_before = now
                joblog.add(session, job.id, f"attempt {job.attempts}: {message}; queued again", "warning")
            core.handlers[job.kind].on_failure(session, job, message, final)
    if expired:
        telemetry.JOBS_REDELIVERED.labels("lease_expired").inc(len(expired))
        log.warning("%d job(s) lost their worker and were queued again or failed", len(expired))
    return len(expired)


def deliver_due(core: Core, *, reclaim: bool = True) -> Delivery:
    """One round: reclaim expired leases (unless told not to yet), then hand the runner what
    needs (re)sending."""
    result = Delivery(lease_expired=reclaim_expired(core) if reclaim else 0)
    settings = core.settings
    now = utcnow()
    with core.db.session() as session:
        rows = session.execute(
            select(Job.id, Job.queue, Job.kind, Job.not_before, Job.dispatched_at)
            .where(Job.state == JobState.QUEUED, Job.not_before <= now)
            .where(
                or_(
                    Job.dispatched_at.is_(None),
                    Job.dispatched_at < Job.not_before,
                    Job.dispatched_at < now - timedelta(seconds=settings.lost_message_grace_seconds),
                )
            )
            .order_by(Job.not_before)
            .limit(BATCH)
        ).all()
        old = [r for r in rows if r.dispatched_at is not None and r.dispatched_at >= r.not_before]
        holding = core.runner.holding({r.queue for r in old}) if old else set()
        stale_before = now - timedelta(seconds=settings.redeliver_seconds)
        due: list[Queued] = []
        for row in rows:
            if row.dispatched_at is None or row.dispatched_at < row.not_before:
                again = None  # never sent, or due again after a retry or deferral
            elif row.queue not in holding:
                again = "message_lost"
            elif row.dispatched_at < stale_before:
                again = "stale"
            else:
                continue
            due.append(Queued(row.id, row.queue, row.kind))
            if again:
                result.redelivered[again] = result.redelivered.get(again, 0) + 1
                log.info(
                    "re-sending job %s (%s), sent at %s", row.id, again.replace("_", " "), row.dispatched_at
                )
        if due:
            session.execute(update(Job).where(Job.id.in_([j.id for j in due])).values(dispatched_at=now))
    for reason, n in result.redelivered.items():
        telemetry.JOBS_REDELIVERED.labels(reason).inc(n)
        log.warning("re-sending %d queued job(s): %s", n, reason.replace("_", " "))
    core.runner.submit(due)
    result.sent = len(due)
    return result
