"""Runners that execute jobs in this process: inline (the CLI's default, nothing to start)
and on a pool of threads (the embedded server's worker)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from orchestrator.domain.models import Job, utcnow
from orchestrator.engine.core import Core
from orchestrator.engine.execution import Outcome, execute
from orchestrator.engine.runner import Queued

log = logging.getLogger(__name__)


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
