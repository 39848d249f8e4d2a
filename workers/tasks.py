"""The one task: run the job whose id the message carries."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from celery import Celery
from celery.signals import worker_process_init

from orchestrator.domain.models import JobKind
from orchestrator.engine.core import Core
from orchestrator.engine.execution import Outcome, execute
from orchestrator.infra.config import Settings
from workers.app import TASK_NAME

if TYPE_CHECKING:
    from workers.runner import CeleryRunner

# How long one attempt of a job may run before the worker stops it (soft limit; the hard
# limit kills the process five minutes later and the reconciler takes over).
TIME_LIMITS = {
    JobKind.BACKUP: timedelta(hours=12),
    JobKind.RESTORE_VM: timedelta(hours=12),
    JobKind.RESTORE_VOLUME: timedelta(hours=12),
    JobKind.VERIFY: timedelta(hours=12),
    JobKind.DELETE_BACKUP: timedelta(hours=1),
    JobKind.PRUNE: timedelta(hours=2),
    JobKind.INGEST: timedelta(hours=1),
}
HARD_LIMIT_GRACE = timedelta(minutes=5)

_core: Core | None = None


def worker_core(app: Celery) -> Core:
    """This process's core; made after the fork so no database connection is shared."""
    global _core
    if _core is None:
        from workers.runner import CeleryRunner

        _core = Core(Settings.from_env(), runner=CeleryRunner(app))
    return _core


@worker_process_init.connect
def _forget_parent_core(**_kwargs: object) -> None:
    global _core
    _core = None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def register(app: Celery) -> None:
    @app.task(name=TASK_NAME, ignore_result=True)
    def run_job(job_id: str) -> str:
        core = worker_core(app)
        outcome = execute(core, job_id, worker_id())
        if outcome in (Outcome.RETRY, Outcome.DEFERRED, Outcome.SKIPPED):
            # Offer it again when due without waiting for the dispatcher's next round (a
            # skipped message may have come early: a timer fired before the job was due).
            runner = cast("CeleryRunner", core.runner)
            runner.submit_when_due(job_id, only_if_waiting=outcome is Outcome.SKIPPED)
        return outcome.value
