"""The one task: run the job whose id the message carries."""

from __future__ import annotations

import os
import socket

from celery import Celery
from celery.signals import worker_process_init

from orchestrator.bootstrap import build_core
from orchestrator.engine.core import Core
from orchestrator.engine.execution import Outcome, execute
from orchestrator.infra.config import Settings
from workers.app import TASK_NAME
from workers.runner import CeleryRunner

_local: tuple[Core, CeleryRunner] | None = None


def worker_core(app: Celery) -> tuple[Core, CeleryRunner]:
    """This process's core and its runner; made after the fork so no database connection is
    shared."""
    global _local
    if _local is None:
        runner = CeleryRunner(app)
        _local = (build_core(Settings.from_env(), runner=runner), runner)
    return _local


@worker_process_init.connect
def _forget_parent_core(**_kwargs: object) -> None:
    global _local
    _local = None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def register(app: Celery) -> Celery:
    """Make ``app`` a worker's app: it runs jobs."""

    @app.task(name=TASK_NAME, ignore_result=True)
    def run_job(job_id: str) -> str:
        core, runner = worker_core(app)
        outcome = execute(core, job_id, worker_id())
        if outcome in (Outcome.RETRY, Outcome.DEFERRED, Outcome.SKIPPED):
            # Offer it again when due without waiting for the dispatcher's next round (a
            # skipped message may have come early: a timer fired before the job was due).
            runner.submit_when_due(job_id, only_if_waiting=outcome is Outcome.SKIPPED)
        return outcome.value

    return app
