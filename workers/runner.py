"""The Celery runner: a committed job becomes one message on its queue."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from celery import Celery
from kombu.exceptions import ChannelError
from kombu.exceptions import OperationalError as BrokerUnreachable
from sqlalchemy import update

from orchestrator.domain.models import Job, JobKind, JobState, utcnow
from orchestrator.engine.core import Core
from orchestrator.engine.local_runners import InlineRunner
from orchestrator.engine.runner import Queued, Runner
from orchestrator.infra.config import Settings
from workers.app import HARD_LIMIT_GRACE, TASK_NAME, TIME_LIMITS, make_app

log = logging.getLogger(__name__)


class _DeclaredQueue(Protocol):
    @property
    def message_count(self) -> int: ...


class _QueueChannel(Protocol):
    """A channel as every kombu transport makes it: kombu's ``StdChannel``, the type its
    connection gives, declares no ``queue_declare`` (nor do its stubs)."""

    def queue_declare(self, *, queue: str, passive: bool) -> _DeclaredQueue: ...


class CeleryRunner:
    def __init__(self, app: Celery) -> None:
        self.app = app
        self.core: Core | None = None

    def bind(self, core: Core) -> None:
        self.core = core

    def submit(self, jobs: Sequence[Queued]) -> None:
        """Publish committed jobs. A broker that cannot be reached loses nothing: the rows are
        queued, and the dispatcher's reconciler sends them once it answers again, so the
        caller gets its job back instead of an error."""
        if not jobs:
            return
        try:
            with self.app.producer_or_acquire() as producer:
                for job_id, queue, kind in jobs:
                    self._send(producer, job_id, queue, kind)
        except (BrokerUnreachable, OSError) as exc:
            log.warning(
                "broker unreachable (%s): %d queued job(s) wait for the dispatcher to send them",
                exc,
                len(jobs),
            )

    def submit_when_due(self, job_id: str, *, only_if_waiting: bool = False) -> None:
        """After a retry or a deferral: a message that waits (ETA) until the job is due. The
        job is marked as sent for that time, so the reconciler does not send a second one.
        ``only_if_waiting``: only for a job still queued and not due yet."""
        assert self.core is not None
        stmt = update(Job).where(Job.id == job_id, Job.state == JobState.QUEUED)
        if only_if_waiting:
            stmt = stmt.where(Job.not_before > utcnow())
        core = self.core

        def mark_sent() -> Any:
            with core.db.session() as session:
                return session.execute(
                    stmt.values(dispatched_at=Job.not_before).returning(Job.queue, Job.kind, Job.not_before)
                ).first()

        row = core.durably(mark_sent)
        if row is not None:
            with self.app.producer_or_acquire() as producer:
                self._send(producer, job_id, row.queue, row.kind, eta=row.not_before)

    def _send(
        self, producer: Any, job_id: str, queue: str, kind: JobKind, eta: datetime | None = None
    ) -> None:
        limit = TIME_LIMITS.get(kind)
        self.app.send_task(
            TASK_NAME,
            args=(job_id,),
            queue=queue,
            producer=producer,
            eta=eta,
            soft_time_limit=int(limit.total_seconds()) if limit else None,
            time_limit=int((limit + HARD_LIMIT_GRACE).total_seconds()) if limit else None,
        )

    def holding(self, queues: set[str]) -> set[str]:
        held = set()
        with self.app.connection_for_read() as conn:
            channel = cast(_QueueChannel, conn.default_channel)
            for queue in queues:
                try:
                    if channel.queue_declare(queue=queue, passive=True).message_count:
                        held.add(queue)
                except ChannelError:
                    # The queue itself is gone (a flushed Redis): it holds nothing.
                    channel = cast(_QueueChannel, conn.channel())
        return held


def celery_runner(settings: Settings) -> CeleryRunner:
    return CeleryRunner(make_app(settings))


def runner_for(settings: Settings) -> Runner:
    """Where the jobs of a CLI call or an API process go: the Celery queues when a broker is
    configured (distributed mode), else run in the caller's thread (embedded default)."""
    return celery_runner(settings) if settings.broker_url else InlineRunner()
