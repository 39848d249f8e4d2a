"""Each claim is fenced by its attempt: a worker that lost its job to another (it was
presumed dead) writes nothing more, stops at its next progress report and removes what it
wrote; a success whose commit answer was lost is still a success."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from orchestrator.domain.models import Backup, Job, JobKind, JobState
from orchestrator.engine.core import Core, Handlers, JobHandler, ProgressFn
from orchestrator.engine.delivery import reclaim_expired
from orchestrator.engine.execution import Outcome, _record_success, claim, execute
from orchestrator.usecases import jobs
from orchestrator.usecases.handlers import job_handlers
from tests.conftest import World
from tests.orchestrator.engine.test_job_lifecycle import Held, backup_job, expire, make_due, row


@pytest.fixture
def queued(world: World, settings) -> Core:
    return Core(settings, world.core.db, Held(), job_handlers())


def hand_over(core: Core, job_id: str, to: str) -> None:
    """The job's lease expires and another claim of it (``to``) takes it."""
    expire(core, job_id)
    assert reclaim_expired(core) == 1
    make_due(core, job_id)
    assert isinstance(claim(core, job_id, to), Job)


def test_a_stale_attempt_of_the_same_worker_records_nothing(world: World, queued: Core) -> None:
    job_id = backup_job(queued, world, world.alice_vm)
    stale = claim(queued, job_id, "w1")
    assert isinstance(stale, Job)
    hand_over(queued, job_id, "w1")  # the same worker id (a restarted process on the host)

    done = _record_success(queued, stale, "w1", queued.handlers[stale.kind], lambda _s: {"x": 1})

    assert done is Outcome.SKIPPED
    assert (row(queued, job_id).state, row(queued, job_id).attempts) == (JobState.RUNNING, 2)


def test_a_success_whose_answer_was_lost_is_still_a_success(world: World, queued: Core) -> None:
    job_id = backup_job(queued, world, world.alice_vm)
    claimed = claim(queued, job_id, "w1")
    assert isinstance(claimed, Job)
    handler = queued.handlers[claimed.kind]

    def finish(_s: Session) -> dict[str, Any]:
        return {"x": 1}

    assert _record_success(queued, claimed, "w1", handler, finish) is Outcome.SUCCEEDED
    # The commit went through but the worker never heard: the repeated write agrees.
    assert _record_success(queued, claimed, "w1", handler, finish) is Outcome.SUCCEEDED


def test_a_worker_that_lost_its_job_stops_at_its_next_progress_and_cleans_up(world: World, settings) -> None:
    seen: list[str] = []
    abandoned: list[int] = []
    real = job_handlers()[JobKind.BACKUP]

    def run(core: Core, job: Job, progress: ProgressFn) -> Any:
        progress(1, 2)
        hand_over(core, job.id, "w2")  # meanwhile this worker is presumed dead
        progress(2, 2)
        seen.append("wrote after losing its job")
        return lambda _s: {}

    handler = JobHandler(run, real.on_failure, abandon=lambda _c, job: abandoned.append(job.attempts))
    core = Core(settings, world.core.db, Held(), Handlers({JobKind.BACKUP: handler}))
    job_id = backup_job(core, world, world.alice_vm)

    outcome = execute(core, job_id, "w1")

    assert outcome is Outcome.SKIPPED
    assert seen == []
    assert abandoned == [1]
    assert (row(core, job_id).state, row(core, job_id).leased_by) == (JobState.RUNNING, "w2")
    with core.scope(world.alice) as s:
        log = [e.message for e in jobs.logs(s, job_id)]
    assert any("attempt 1 on w1 lost its lease" in m and "removed" in m for m in log), log


def test_a_rerun_removes_the_copy_a_killed_attempt_committed(world: World, queued: Core) -> None:
    job_id = backup_job(queued, world, world.alice_vm)
    first = claim(queued, job_id, "w1")
    assert isinstance(first, Job)
    # Attempt 1 commits its copy in the back end, and its worker dies before recording it.
    queued.handlers[JobKind.BACKUP].run(queued, first, lambda _done, _total: None)
    expire(queued, job_id)
    assert reclaim_expired(queued) == 1
    make_due(queued, job_id)

    assert execute(queued, job_id, "w2") is Outcome.SUCCEEDED

    with queued.scope(world.admin) as s:
        point = s.session.get(Backup, first.subject_id)
        assert point is not None
        driver = s.driver(point.provider)
        copies = [c.external_id for c in driver.list_restore_points() if c.restore_point_id == point.id]
        assert copies == [point.external_id]
