"""What every command shares: settings, the core, and who is acting."""

from __future__ import annotations

import threading
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
from orchestrator.engine.local_runners import InlineRunner
from orchestrator.engine.runner import Queued
from orchestrator.infra.config import Settings
from orchestrator.usecases import accounts, jobs
from workers.runner import runner_for

FINAL_STATES = {state.value for state in FINAL_JOB_STATES}
# How often a command that waits for a job reads it again (about as often as a running job
# stores its progress).
POLL_SECONDS = 0.5


class App:
    def __init__(self, as_account: str | None) -> None:
        self.as_account = as_account

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env()

    @cached_property
    def core(self) -> Core:
        return build_core(self.settings, runner=runner_for(self.settings))

    def close(self) -> None:
        """Release the database connections, should a command have opened any: a process
        that runs many commands (a test, a script importing the CLI) would keep them all."""
        if "core" in self.__dict__:
            self.core.db.dispose()

    @cached_property
    def actor(self) -> Actor:
        validate.unicode_strings(self.as_account, "as")
        return accounts.admin_actor(self.core, self.as_account)

    @contextmanager
    def scope(self) -> Iterator[Scope]:
        with self.core.scope(self.actor) as scope:
            yield scope

    @property
    def runs_jobs_here(self) -> bool:
        """The embedded default: a job runs in this process, in the thread that delivers it."""
        return isinstance(self.core.runner, InlineRunner)

    def create_job(self, make_job: Callable[[Scope], Job]) -> tuple[str, list[Queued]]:
        """Create a job and commit it; the jobs to deliver, left to the caller."""
        with self.scope() as scope:
            job_id = make_job(scope).id
            return job_id, scope.take_pending()

    def show_job(self, job_id: str) -> dict[str, Any]:
        with self.scope() as scope:
            return views.job(jobs.show(scope, job_id))

    def run_job(
        self,
        make_job: Callable[[Scope], Job],
        wait: float = 0.0,
        watch: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Create a job, deliver it, and return the job as it stands afterwards: ended, where
        it runs in this process, else after up to ``wait`` seconds for a worker elsewhere to
        end it. ``watch`` sees the job at every poll until then.

        Delivery runs on a thread of its own, so that this one can poll the job's row while
        the inline runner works on it."""
        job_id, pending = self.create_job(make_job)
        # A daemon: an interrupted command leaves the job to its lease, as it always did.
        delivery = threading.Thread(
            target=self.core.runner.submit, args=(pending,), name="delivery", daemon=True
        )
        delivery.start()
        deadline = time.monotonic() + wait
        while True:
            delivering = delivery.is_alive()
            job = self.show_job(job_id)
            if (
                job["state"] in FINAL_STATES
                or (self.runs_jobs_here and not delivering)
                or (not self.runs_jobs_here and time.monotonic() >= deadline)
            ):
                delivery.join()
                return job
            if watch is not None:
                watch(job)
            time.sleep(POLL_SECONDS)


pass_app = click.make_pass_decorator(App)
