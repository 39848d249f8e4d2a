"""A worker's writes ride out a database connection lost at the worst moment: a claim whose
commit went through but whose answer was lost, and a success whose connection is lost
around its follow-up step. Either delays the job; neither fails its attempt or leaves it
to a second one, which would take the backup again.

The claim's answer is lost by the test's TCP proxy (``lose_next_commit_answer``). Without a
token of its own, the claim's retry found the job running and took it for another
worker's: the job ran under nobody until its lease expired, and spent an attempt.

The success's connection is really lost (its PostgreSQL backend is terminated) around the
follow-up step, which runs behind a savepoint in the success transaction and whose failures
are caught so that they do not undo the job. The loss used to be caught there too, and
then surfaced as an error the worker did not take for a database outage (SQLAlchemy's
``PendingRollbackError`` at the commit, or ``InvalidRequestError`` on the closed
transaction): the attempt failed and attempt 2 took the backup again. The fault harness
saw this as ``ran_twice`` on ``db-down``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from orchestrator.bootstrap import build_core
from orchestrator.domain.models import Backup, BackupStatus, Job, JobKind, JobState
from orchestrator.engine.core import Core, Finish, Handlers, JobHandler, ProgressFn, Scope
from orchestrator.engine.execution import Outcome, execute
from orchestrator.infra.db import Database, persist
from orchestrator.usecases import jobs
from orchestrator.usecases.handlers import job_handlers
from providers.dummy import DummyProvider
from tests.conftest import World, postgres_schema
from tests.distributed.pgproxy import Proxy
from tests.orchestrator.engine.test_job_lifecycle import Held, backup_job, row


@pytest.fixture
def database_url(postgres_ready: None) -> Iterator[str]:
    """PostgreSQL only: the test ends a connection from the server's side."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
def other(database_url: str) -> Iterator[Engine]:
    """A connection of its own, to end another one from outside as a cut does."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def proxied(settings) -> Iterator[tuple[Proxy, Core]]:
    """A proxy to the test's database, and a core whose jobs stay queued that reaches the
    database through it."""
    with Proxy.before(settings.database_url) as (proxy, url):
        db = Database(url)
        try:
            yield proxy, build_core(replace(settings, database_url=url), db=db, runner=Held())
        finally:
            db.dispose()


def test_a_claim_whose_answer_was_lost_is_found_again(world: World, proxied: tuple[Proxy, Core]) -> None:
    proxy, core = proxied
    job_id = backup_job(core, world, world.alice_vm)
    proxy.lose_next_commit_answer()  # the claim's

    outcome = execute(core, job_id, "w1")

    assert proxy.answers_lost == 1
    assert outcome is Outcome.SUCCEEDED
    done = row(core, job_id)
    assert (done.state, done.attempts) == (JobState.SUCCEEDED, 1)
    with core.scope(world.admin) as s:
        log = [e.message for e in jobs.logs(s, job_id)]
    assert log == ["attempt 1 started on w1", "attempt 1 succeeded"]


def end_backend_of(session: Session, other: Engine) -> None:
    """End the session's connection at the server without the session noticing yet."""
    pid = session.scalar(text("SELECT pg_backend_pid()"))
    with other.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        deadline = time.monotonic() + 10
        gone = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
        while conn.execute(gone, {"pid": pid}).scalar() and time.monotonic() < deadline:
            time.sleep(0.02)


def backup_handler(
    lose_in_finish: Callable[[Session], None], lose_in_follow_up: Callable[[Session], None], log: list[str]
) -> JobHandler:
    """The real backup handler; each success's follow-up and finish step noted in ``log``,
    the first of each given a chance to lose the connection."""
    real = job_handlers()[JobKind.BACKUP]
    assert real.after is not None
    after = real.after

    def run(core: Core, job: Job, progress: ProgressFn) -> Finish:
        finish = real.run(core, job, progress)

        def finish_then_maybe_lose(session: Session) -> dict[str, Any]:
            log.append("finish")
            result = finish(session)
            if log.count("finish") == 1:
                lose_in_finish(session)
            return result

        return finish_then_maybe_lose

    def follow_up(scope: Scope, job: Job) -> None:
        log.append("follow-up")
        if log.count("follow-up") == 1:
            lose_in_follow_up(scope.session)
        after(scope, job)

    return JobHandler(run, real.on_failure, after=follow_up, abandon=real.abandon)


def _terminate_own(session: Session) -> None:
    with pytest.raises(OperationalError):
        session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))


def _nothing(_session: Session) -> None:
    pass


@pytest.mark.parametrize("where", ["in the follow-up", "before the follow-up's savepoint"])
def test_a_connection_lost_around_the_follow_up_delays_the_success(
    world: World, settings, other: Engine, where: str
) -> None:
    log: list[str] = []
    if where == "in the follow-up":
        handler = backup_handler(_nothing, _terminate_own, log)
    else:  # the savepoint's flush of the success finds the connection gone
        handler = backup_handler(lambda s: end_backend_of(s, other), _nothing, log)
    core = Core(settings, world.core.db, Held(), Handlers({JobKind.BACKUP: handler}))
    job_id = backup_job(core, world, world.alice_vm)

    outcome = execute(core, job_id, "w1")

    assert outcome is Outcome.SUCCEEDED
    done = row(core, job_id)
    assert (done.state, done.attempts, done.error) == (JobState.SUCCEEDED, 1, None)
    assert log.count("finish") == 2  # the success was recorded again, in full
    with core.scope(world.admin) as s:
        point = s.session.get(Backup, done.subject_id)
        assert point is not None
        assert point.status is BackupStatus.BACKED_UP
        driver = s.driver(point.provider)
        assert isinstance(driver, DummyProvider)
        assert driver.writers(point.id) == [1]  # the backup was taken once


def test_a_step_that_passed_over_a_lost_connection_is_run_again(world: World) -> None:
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
