"""The one place the core is assembled: settings → database → runner → job handlers → core.

The command line, the HTTP app and the Celery worker all build their core here; each
entry point only chooses the runner (inline, threads, or Celery queues).
"""

from __future__ import annotations

from orchestrator.engine.core import Core
from orchestrator.engine.local_runners import InlineRunner
from orchestrator.engine.runner import Runner
from orchestrator.infra.config import Settings
from orchestrator.infra.db import Database
from orchestrator.usecases.handlers import job_handlers


def build_core(settings: Settings, *, db: Database | None = None, runner: Runner | None = None) -> Core:
    """A core over ``settings``' database (or ``db``, shared with another core); without a
    runner, jobs run in the caller's thread when their transaction commits."""
    return Core(
        settings,
        db or Database.from_settings(settings),
        runner or InlineRunner(),
        job_handlers(),
    )
