"""What every command shares: settings, the core, and who is acting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import click

from api import views
from orchestrator.bootstrap import build_core
from orchestrator.domain import validate
from orchestrator.domain.actor import Actor
from orchestrator.domain.models import FINAL_JOB_STATES, Job
from orchestrator.engine.core import Core, Scope
from orchestrator.infra.config import Settings
from orchestrator.usecases import accounts, jobs
from workers.runner import runner_for

FINAL_STATES = {state.value for state in FINAL_JOB_STATES}


class App:
    def __init__(self, as_account: str | None) -> None:
        self.as_account = as_account

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env()

    @cached_property
    def core(self) -> Core:
        return build_core(self.settings, runner=runner_for(self.settings))

    @cached_property
    def actor(self) -> Actor:
        validate.unicode_strings(self.as_account, "as")
        return accounts.admin_actor(self.core, self.as_account)

    @contextmanager
    def scope(self) -> Iterator[Scope]:
        with self.core.scope(self.actor) as scope:
            yield scope

    def run_job(self, make_job: Callable[[Scope], Job], wait: float = 0.0) -> dict[str, Any]:
        """Create a job, let the runner take it, and return the job as it stands afterwards
        (after up to ``wait`` seconds for a worker elsewhere to end it)."""
        with self.scope() as scope:
            job_id = make_job(scope).id
        deadline = time.monotonic() + wait
        while True:
            with self.scope() as scope:
                job = views.job(jobs.show(scope, job_id))
            if job["state"] in FINAL_STATES or time.monotonic() >= deadline:
                return job
            time.sleep(0.5)


pass_app = click.make_pass_decorator(App)
