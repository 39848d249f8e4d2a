"""How jobs get executed. The in-process runners here need no service at all; the
Celery runner in ``workers/`` implements the same interface for distributed sites."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, NamedTuple, Protocol

from orchestrator.domain.models import Job, JobKind, utcnow

if TYPE_CHECKING:
    from orchestrator.engine.core import Core

log = logging.getLogger(__name__)


class Queued(NamedTuple):
    """A committed, queued job as a runner needs it: which, where to send it, what it is
    (known where the job was made, so delivering it reads nothing back)."""

    id: str
    queue: str
    kind: JobKind

    @classmethod
    def of(cls, job: Job) -> Queued:
        return cls(job.id, job.queue, job.kind)


class Runner(Protocol):
    def bind(self, core: Core) -> None:
        """Called once by the core that owns this runner."""

    def submit(self, jobs: Sequence[Queued]) -> None:
        """Deliver committed, queued jobs for execution (at least once)."""

    def holding(self, queues: set[str]) -> set[str]:
        """Those of ``queues`` that still hold messages not yet taken by a worker (the
        reconciler re-sends jobs of queues that hold none)."""


class InlineRunner:
    """Runs each job in the caller's thread before ``submit`` returns.

    A retry (or a start held back by a full host or pool) due within ``max_wait`` seconds
    is waited for and run; a later one stays queued for the next delivery round
    (``backupctl tick``, or the server's dispatcher).
    """

    def __init__(self, max_wait: float = 5.0) -> None:
        self.max_wait = max_wait
        self.core: Core | None = None

    def bind(self, core: Core) -> None:
        self.core = core

    def submit(self, jobs: Sequence[Queued]) -> None:
        from orchestrator.engine.execution import Outcome, execute

        assert self.core is not None
        for job_id, _, _ in jobs:
            while execute(self.core, job_id) in (Outcome.RETRY, Outcome.DEFERRED):
                with self.core.db.session() as session:
                    job = session.get(Job, job_id)
                    wait = (job.not_before - utcnow()).total_seconds() if job else self.max_wait + 1
                if wait > self.max_wait:
                    break
                time.sleep(max(wait, 0))

    def holding(self, queues: set[str]) -> set[str]:
        return set()  # nothing waits: submit runs everything before it returns


class ThreadRunner:
    """Runs jobs on a pool of threads in this process: the embedded server's worker."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self.core: Core | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._waiting = 0
        self._lock = threading.Lock()

    def bind(self, core: Core) -> None:
        self.core = core
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="job")

    def submit(self, jobs: Sequence[Queued]) -> None:
        assert self._pool is not None
        with self._lock:
            self._waiting += len(jobs)
        for job in jobs:
            self._pool.submit(self._run, job.id)

    def holding(self, queues: set[str]) -> set[str]:
        # One in-memory queue for all: while anything waits, a job may still be in it.
        with self._lock:
            return set(queues) if self._waiting else set()

    def _run(self, job_id: str) -> None:
        from orchestrator.engine.execution import execute

        assert self.core is not None
        with self._lock:
            self._waiting -= 1
        try:
            execute(
                self.core, job_id, f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"
            )
        except Exception:
            log.exception("job %s could not be run", job_id)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
