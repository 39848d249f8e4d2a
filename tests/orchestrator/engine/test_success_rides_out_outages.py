"""A database connection lost while a job's success is being recorded delays the record,
never fails the attempt: the backup it did must not be done a second time.

The connection is really lost (its PostgreSQL backend is terminated) in the follow-up step
that runs behind a savepoint in the success transaction. That step's failures are
swallowed so they do not undo the job, so the loss surfaced only at the commit, as
SQLAlchemy's ``PendingRollbackError``, which the worker did not take for a database
outage: the attempt failed and the backup was taken again by attempt 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from orchestrator.domain.models import Backup, BackupStatus, Job, JobKind, JobState
from orchestrator.engine.core import Core, Handlers, JobHandler, Scope
from orchestrator.engine.execution import Outcome, execute
from orchestrator.infra.db import persist
from orchestrator.usecases.handlers import job_handlers
from providers.dummy import DummyProvider
from tests.conftest import World, postgres_schema
from tests.orchestrator.engine.test_job_lifecycle import Held, backup_job, row


@pytest.fixture
def database_url(postgres_ready: None) -> Iterator[str]:
    """PostgreSQL only: the test ends a connection from the server's side."""
    with postgres_schema() as url:
        yield url


def test_a_connection_lost_in_the_follow_up_delays_the_success(world: World, settings) -> None:
    real = job_handlers()[JobKind.BACKUP]
    follow_ups: list[str] = []

    def after(scope: Scope, job: Job) -> None:
        follow_ups.append(job.id)
        if len(follow_ups) == 1:
            with pytest.raises(OperationalError):
                scope.session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        assert real.after is not None
        real.after(scope, job)

    handler = JobHandler(real.run, real.on_failure, after=after, abandon=real.abandon)
    core = Core(settings, world.core.db, Held(), Handlers({JobKind.BACKUP: handler}))
    job_id = backup_job(core, world, world.alice_vm)

    outcome = execute(core, job_id, "w1")

    assert outcome is Outcome.SUCCEEDED
    done = row(core, job_id)
    assert (done.state, done.attempts, done.error) == (JobState.SUCCEEDED, 1, None)
    assert len(follow_ups) == 2  # the success was recorded again, follow-up and all
    with core.scope(world.admin) as s:
        point = s.session.get(Backup, done.subject_id)
        assert point is not None
        assert point.status is BackupStatus.BACKED_UP
        driver = s.driver(point.provider)
        assert isinstance(driver, DummyProvider)
        assert driver.writers(point.id) == [1]  # the backup was taken once


def test_a_step_that_swallowed_a_lost_connection_is_run_again(world: World) -> None:
    db = world.core.db
    runs: list[int] = []

    def step() -> int:
        with db.session() as session:
            runs.append(1)
            if len(runs) == 1:
                # A caller that carries on, as the success step does when a follow-up fails.
                with suppress(OperationalError):
                    session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
            return int(session.scalar(text("SELECT 1")) or 0)

    assert persist(step, for_seconds=10) == 1
    assert len(runs) == 2
