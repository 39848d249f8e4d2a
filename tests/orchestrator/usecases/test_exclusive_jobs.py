"""At most one queued or running job backs up a VM, deletes a restore point or restores a VM
in place, also when many requests arrive at once: the database's partial unique index
decides the race."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from orchestrator.domain.errors import Conflict
from orchestrator.domain.models import Backup, BackupStatus, Job, JobKind, JobState, utcnow
from orchestrator.engine.core import Core, Scope
from orchestrator.usecases import backups, jobs, offerings, planning, pruning, restores

CALLERS = 12


@pytest.fixture
def points(world) -> list[str]:
    """Two restore points of alice's web1, made and finished."""
    made = []
    for _ in range(2):
        with world.core.scope(world.alice) as s:
            job_id = backups.create_backup(s, world.alice_vm).id
        with world.core.scope(world.admin) as s:
            job = jobs.show(s, job_id)
            assert job.state is JobState.SUCCEEDED, job.error
            made.append(job.subject_id)
    return made


def _at_once(core: Core, actor, calls: list[Callable[[Scope], Job]]) -> tuple[list[str], list[Conflict]]:
    """Run every call in its own scope on its own thread, all released together."""
    start = threading.Barrier(len(calls))

    def one(call: Callable[[Scope], Job]) -> str | Conflict:
        start.wait()
        try:
            with core.scope(actor) as s:
                return call(s).id
        except Conflict as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        outcomes = list(pool.map(one, calls))
    return [o for o in outcomes if isinstance(o, str)], [o for o in outcomes if isinstance(o, Conflict)]


def _active(core: Core, kind: JobKind) -> list[Job]:
    with core.db.session() as session:
        return list(
            session.scalars(
                select(Job).where(Job.kind == kind, Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
            )
        )


def test_parallel_deletes_of_one_point_queue_one_job(world, deferred, points):
    made, refused = _at_once(deferred, world.alice, [lambda s: backups.delete_backup(s, points[0])] * CALLERS)

    assert len(made) == 1
    assert len(refused) == CALLERS - 1
    assert all(f"already being deleted (job {made[0]})" in c.message for c in refused)
    assert [j.id for j in _active(deferred, JobKind.DELETE_BACKUP)] == made


def test_parallel_restores_of_one_vm_queue_one_job_whichever_point(world, deferred, points):
    calls = [lambda s, p=points[i % 2]: restores.restore_vm(s, p, stop=True) for i in range(CALLERS)]
    made, refused = _at_once(deferred, world.alice, calls)

    assert len(made) == 1
    assert len(refused) == CALLERS - 1
    assert all("restore of virtual machine web1 is already in progress" in c.message for c in refused)
    assert [j.id for j in _active(deferred, JobKind.RESTORE_VM)] == made


def test_parallel_backups_of_one_vm_make_one_restore_point(world, deferred, points):
    made, refused = _at_once(
        deferred, world.alice, [lambda s: backups.create_backup(s, world.alice_vm)] * CALLERS
    )

    assert len(made) == 1
    assert len(refused) == CALLERS - 1
    assert all("a backup of web1 is already in progress" in c.message for c in refused)
    with deferred.db.session() as session:
        queued = session.scalars(select(Backup).where(Backup.status == BackupStatus.QUEUED)).all()
    assert len(queued) == 1  # the refused ones left no restore point behind


def test_a_planned_backup_due_while_another_runs_is_cancelled_not_doubled(world, deferred, points):
    with deferred.scope(world.alice) as s:
        running = backups.create_backup(s, world.alice_vm).id
    planning.replan(deferred)
    with deferred.db.session() as session:
        session.execute(
            update(Job)
            .where(Job.state == JobState.PLANNED, Job.subject_id == world.alice_vm)
            .values(not_before=utcnow() - timedelta(minutes=1))
        )

    planning.release_due(deferred)

    with deferred.db.session() as session:
        planned = session.scalars(select(Job).where(Job.subject_id == world.alice_vm)).all()
        active = session.scalars(select(Job).where(Job.exclusive_key == f"backup:{world.alice_vm}")).all()
    assert planned
    assert all(j.state is JobState.CANCELLED and "already in progress" in j.error for j in planned)
    assert [j.id for j in active if j.state is JobState.QUEUED] == [running]


def test_pruning_again_while_its_delete_is_queued_asks_for_nothing_more(world, deferred, points):
    with deferred.scope(world.admin) as s:
        offerings.update_offering(s, world.gold_id, retention_count=1)
    with deferred.scope(world.admin) as s:
        (first,) = [d for d in pruning.prune(s, vm_id=world.alice_vm) if d.expire]
    with deferred.scope(world.admin) as s:
        (again,) = [d for d in pruning.prune(s, vm_id=world.alice_vm) if d.expire]

    assert first.expire == again.expire == [points[0]]
    assert first.job_id is not None
    assert again.job_id is None
    assert [j.id for j in _active(deferred, JobKind.DELETE_BACKUP)] == [first.job_id]


def test_a_finished_job_frees_its_key(world, deferred, points):
    with deferred.scope(world.alice) as s:
        first = backups.delete_backup(s, points[1]).id
    with (
        pytest.raises(Conflict, match=f"restore point {points[1]} is already being deleted"),
        deferred.scope(world.alice) as s,
    ):
        backups.delete_backup(s, points[1])
    with deferred.scope(world.alice) as s:
        jobs.cancel(s, first)
    with deferred.scope(world.alice) as s:
        again = backups.delete_backup(s, points[1]).id

    assert again != first
    with deferred.db.session() as session:
        keys = session.scalar(select(func.count()).where(Job.exclusive_key == f"delete_backup:{points[1]}"))
    assert keys == 2  # the cancelled job keeps its key for the record


def test_restores_to_new_vms_are_not_exclusive(world, deferred, points):
    with deferred.scope(world.alice) as s:
        restores.restore_vm(s, points[0], stop=True)
        copies = [restores.restore_to_new_vm(s, points[0], f"copy{n}").id for n in range(2)]

    assert len(set(copies)) == 2


def test_parallel_backups_under_one_key_all_answer_the_winners_job(world, deferred, points):
    calls = [lambda s: backups.create_backup(s, world.alice_vm, idempotency_key="race-1")] * CALLERS
    made, refused = _at_once(deferred, world.alice, calls)

    assert refused == []
    assert len(made) == CALLERS
    assert len(set(made)) == 1
    with deferred.db.session() as session:
        queued = session.scalars(select(Backup).where(Backup.status == BackupStatus.QUEUED)).all()
        winner = session.get(Job, made[0])
        assert winner is not None
        assert [p.id for p in queued] == [winner.subject_id]  # the losers left no restore point
