"""Restore and verify jobs read the database before they call their provider; like a
backup's, those reads are repeated while the database cannot be reached, so a short outage
delays the job instead of failing its attempt."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from orchestrator.bootstrap import build_core
from orchestrator.domain.models import Job, JobState
from orchestrator.engine.core import Core, Scope
from orchestrator.engine.execution import Outcome, _record_success, claim
from orchestrator.usecases import backups, jobs, restores, verification
from tests.conftest import World
from tests.orchestrator.engine.test_job_lifecycle import Held, row


@pytest.fixture
def queued(world: World, settings) -> Core:
    return build_core(settings, db=world.core.db, runner=Held())


@pytest.fixture
def point(world: World) -> str:
    with world.core.scope(world.alice) as s:
        job_id = backups.create_backup(s, world.alice_vm).id
    with world.core.scope(world.alice) as s:
        job = jobs.show(s, job_id)
        assert job.state is JobState.SUCCEEDED, job.error
        return job.subject_id


def _first_volume(world: World, point_id: str) -> str:
    with world.core.scope(world.alice) as s:
        return str(backups.show(s, point_id).vm_metadata["volumes"][0]["id"])


def _unreachable_twice(monkeypatch: pytest.MonkeyPatch, core: Core) -> list[int]:
    """The next two sessions of ``core`` fail as a database restart makes them fail."""
    real = core.db.session
    failed: list[int] = []

    def session() -> AbstractContextManager[Session]:
        if len(failed) < 2:
            failed.append(1)
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
        return real()

    monkeypatch.setattr(core.db, "session", session)
    return failed


ASKS: dict[str, Callable[[World, Scope, str], Job]] = {
    "restore_vm": lambda w, s, p: restores.restore_vm(s, p, stop=True),
    "restore_volume": lambda w, s, p: restores.restore_volume(s, p, _first_volume(w, p), w.alice_vm2),
    "verify": lambda w, s, p: verification.verify_backup(s, p),
}


@pytest.mark.parametrize("kind", sorted(ASKS))
def test_a_job_whose_first_reads_find_no_database_succeeds_in_one_attempt(
    world: World, queued: Core, point: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with queued.scope(world.alice) as s:
        job_id = ASKS[kind](world, s, point).id
    claimed = claim(queued, job_id, "w1")
    assert isinstance(claimed, Job)
    handler = queued.handlers[claimed.kind]
    failed = _unreachable_twice(monkeypatch, queued)

    finish = handler.run(queued, claimed, lambda done, total: None)

    assert len(failed) == 2
    assert _record_success(queued, claimed, "w1", handler, finish) is Outcome.SUCCEEDED
    done = row(queued, job_id)
    assert (done.state, done.attempts) == (JobState.SUCCEEDED, 1)
