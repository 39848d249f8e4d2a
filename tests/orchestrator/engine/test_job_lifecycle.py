"""The job lifecycle the distributed mode relies on, on SQLite and PostgreSQL: limits at the
claim, leases that expire, re-delivery of lost messages, cancel of a running job, job logs,
the leader lock and the metrics read from the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import update

from orchestrator.bootstrap import build_core
from orchestrator.domain.models import (
    Backup,
    BackupStatus,
    Host,
    Job,
    JobState,
    StoragePool,
    VirtualMachine,
    utcnow,
)
from orchestrator.engine.core import Core
from orchestrator.engine.delivery import deliver_due, reclaim_expired
from orchestrator.engine.execution import (
    Deferred,
    Lease,
    Outcome,
    _record_success,
    claim,
    execute,
)
from orchestrator.engine.leader import LeaderLock
from orchestrator.infra.telemetry import StateCollector
from orchestrator.usecases import assignments, backups, jobs
from tests.conftest import Recorder, World


class Held(Recorder):
    """A runner whose queues hold what ``held`` says (the broker's view)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: set[str] = set()

    def holding(self, queues: set[str]) -> set[str]:
        return queues & self.held


@pytest.fixture
def queued(world: World, settings) -> Core:
    """A core on the world's database whose jobs stay queued until a test runs them."""
    return build_core(settings, db=world.core.db, runner=Held())


def backup_job(core: Core, world: World, vm_id: str) -> str:
    with core.scope(world.admin) as s:
        return backups.create_backup(s, vm_id).id


def row(core: Core, job_id: str) -> Job:
    with core.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def point_status(core: Core, job_id: str) -> BackupStatus:
    with core.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        point = session.get(Backup, job.subject_id)
        assert point is not None
        return point.status


def set_limits(core: Core, *, host: int, pool: int) -> None:
    with core.db.session() as session:
        session.execute(update(Host).values(max_concurrent_backups=host))
        session.execute(update(StoragePool).values(max_concurrent_backups=pool))


def make_due(core: Core, job_id: str) -> None:
    with core.db.session() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(not_before=utcnow() - timedelta(seconds=1))
        )


# -- limits at the claim ---------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "pool", "named"), [(10, 1, "storage pool pool1"), (1, 10, "host kvm1")])
def test_a_full_host_or_pool_defers_the_claim(world: World, queued: Core, host, pool, named) -> None:
    set_limits(world.core, host=host, pool=pool)
    first = backup_job(queued, world, world.alice_vm)
    second = backup_job(queued, world, world.bob_vm)
    assert isinstance(claim(queued, first, "w1"), Job)

    deferred = claim(queued, second, "w2")

    assert isinstance(deferred, Deferred)
    assert named in deferred.reason
    waiting = row(queued, second)
    assert (waiting.state, waiting.attempts) == (JobState.QUEUED, 0)
    assert waiting.not_before > utcnow()
    # Once the first ends, the second gets its slot.
    with queued.db.session() as session:
        session.execute(update(Job).where(Job.id == first).values(state=JobState.SUCCEEDED))
    make_due(queued, second)
    assert isinstance(claim(queued, second, "w2"), Job)


def test_a_claimed_job_is_not_claimed_twice(world: World, queued: Core) -> None:
    job_id = backup_job(queued, world, world.alice_vm)
    assert isinstance(claim(queued, job_id, "w1"), Job)
    assert claim(queued, job_id, "w2") is None
    assert row(queued, job_id).leased_by == "w1"


def test_execute_writes_a_log_a_user_can_read(world: World) -> None:
    job_id = backup_job(world.core, world, world.alice_vm)  # the inline runner ran it
    with world.core.scope(world.alice) as s:
        lines = [(e.level, e.message) for e in jobs.logs(s, job_id)]
    assert lines == [("info", "attempt 1 started on inline"), ("info", "attempt 1 succeeded")]


# -- leases ----------------------------------------------------------------------------------------


def expire(core: Core, job_id: str) -> None:
    with core.db.session() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def test_an_expired_lease_queues_the_job_again(world: World, queued: Core) -> None:
    job_id = backup_job(queued, world, world.alice_vm)
    claim(queued, job_id, "dead-worker")
    expire(queued, job_id)

    assert reclaim_expired(queued) == 1

    job = row(queued, job_id)
    assert (job.state, job.leased_by, job.attempts) == (JobState.QUEUED, None, 1)
    assert point_status(queued, job_id) is BackupStatus.QUEUED
    # The next worker runs it to the end.
    assert execute(queued, job_id, "w2") is Outcome.SUCCEEDED
    assert point_status(queued, job_id) is BackupStatus.BACKED_UP
    with queued.scope(world.admin) as s:
        assert "dead-worker stopped renewing its lease" in jobs.logs(s, job_id)[1].message


def test_an_expired_lease_on_the_last_attempt_fails_the_job(world: World, queued: Core) -> None:
    job_id = backup_job(queued, world, world.alice_vm)
    with queued.db.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(max_attempts=1))
    claim(queued, job_id, "dead-worker")
    expire(queued, job_id)

    reclaim_expired(queued)

    assert row(queued, job_id).state is JobState.FAILED
    assert point_status(queued, job_id) is BackupStatus.FAILED


def test_a_worker_whose_lease_was_taken_does_not_record_its_work(world: World, queued: Core) -> None:
    job_id = backup_job(queued, world, world.alice_vm)
    claimed = claim(queued, job_id, "slow-worker")
    assert isinstance(claimed, Job)
    expire(queued, job_id)
    reclaim_expired(queued)
    assert execute(queued, job_id, "w2") is Outcome.SUCCEEDED
    # The presumed-dead worker comes back: nothing of it is recorded.
    finish = _record_success(
        queued, claimed, "slow-worker", queued.handlers[claimed.kind], lambda _s: {"x": 1}
    )
    assert finish is Outcome.SKIPPED
    assert row(queued, job_id).result != {"x": 1}


# -- delivery --------------------------------------------------------------------------------------


def dispatched(core: Core, job_id: str, seconds_ago: float) -> None:
    with core.db.session() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                dispatched_at=utcnow() - timedelta(seconds=seconds_ago),
                not_before=utcnow() - timedelta(hours=1),
            )
        )


def test_delivery_resends_only_what_was_lost(world: World, queued: Core, settings) -> None:
    runner: Held = queued.runner  # type: ignore[assignment]
    with queued.scope(world.alice) as s:
        assignments.assign(s, world.alice_vm2, world.gold_id)
    fresh, lost, waiting = (
        backup_job(queued, world, vm) for vm in (world.alice_vm, world.bob_vm, world.alice_vm2)
    )
    runner.ids.clear()
    dispatched(queued, fresh, 0.0)  # just sent: leave it
    dispatched(queued, lost, settings.lost_message_grace_seconds + 5)
    dispatched(queued, waiting, settings.lost_message_grace_seconds + 5)
    # All share one queue; say the broker still holds messages there.
    runner.held = {row(queued, waiting).queue}

    first = deliver_due(queued)

    assert first.sent == 0
    assert runner.ids == []
    runner.held = set()  # the broker was flushed
    second = deliver_due(queued)
    assert sorted(runner.ids) == sorted([lost, waiting])
    assert second.redelivered == {"message_lost": 2}


def test_delivery_resends_long_waiting_jobs_whatever_the_broker_says(
    world: World, queued: Core, settings
) -> None:
    runner: Held = queued.runner  # type: ignore[assignment]
    job_id = backup_job(queued, world, world.alice_vm)
    runner.ids.clear()
    runner.held = {row(queued, job_id).queue}
    dispatched(queued, job_id, settings.redeliver_seconds + 1)

    result = deliver_due(queued)

    assert runner.ids == [job_id]
    assert result.redelivered == {"stale": 1}
    # Marked as sent now: the next round leaves it alone.
    runner.ids.clear()
    assert deliver_due(queued).sent == 0


def test_delivery_sends_a_retry_once_it_is_due(world: World, queued: Core) -> None:
    runner: Held = queued.runner  # type: ignore[assignment]
    job_id = backup_job(queued, world, world.alice_vm)
    runner.held = {row(queued, job_id).queue}
    runner.ids.clear()
    with queued.db.session() as session:  # failed once; its retry is due now
        session.execute(
            update(Job).where(Job.id == job_id).values(
                dispatched_at=utcnow() - timedelta(seconds=60), not_before=utcnow() - timedelta(seconds=1)
            )
        )  # fmt: skip

    assert deliver_due(queued).sent == 1
    assert runner.ids == [job_id]


# -- cancel ----------------------------------------------------------------------------------------


def test_cancel_of_a_running_job_is_a_request(world: World, queued: Core) -> None:
    job_id = backup_job(queued, world, world.alice_vm)
    claim(queued, job_id, "w1")

    with queued.scope(world.alice) as s:
        asked = jobs.cancel(s, job_id)
    with queued.scope(world.alice) as s:
        again = jobs.cancel(s, job_id)

    assert asked.state is JobState.RUNNING
    assert asked.cancel_requested_at is not None
    assert again.cancel_requested_at == asked.cancel_requested_at
    # The worker's next lease renewal notices it.
    lease = Lease(queued, job_id, "w1", 1)
    lease.renew()
    assert lease.cancelled.is_set()


# -- leader lock -----------------------------------------------------------------------------------


def test_one_leader_at_a_time(world: World, settings) -> None:
    first, second = LeaderLock(world.core), LeaderLock(build_core(settings, db=world.core.db))
    try:
        assert first.hold()
        assert first.hold()  # still leading
        assert not second.hold()
        first.release()
        assert second.hold()
    finally:
        first.release()
        second.release()


# -- metrics from the database ---------------------------------------------------------------------


def samples(core: Core) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(StateCollector(core.db))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
    }


def test_state_metrics_count_restore_points_rpo_and_queues(world: World, queued: Core) -> None:
    backup_job(world.core, world, world.alice_vm)  # runs inline: alice's VM is within its RPO
    waiting = backup_job(queued, world, world.bob_vm)  # bob's never was backed up; queued now

    got = samples(world.core)

    queue = row(queued, waiting).queue
    assert got["backup_orchestrator_restore_points", (("offering", "gold"), ("status", "BackedUp"))] == 1
    assert got["backup_orchestrator_rpo_vms", (("offering", "gold"), ("state", "within"))] == 1
    assert got["backup_orchestrator_rpo_vms", (("offering", "gold"), ("state", "never"))] == 1
    assert got["backup_orchestrator_queue_depth", (("queue", queue),)] == 1
    assert got["backup_orchestrator_jobs", (("kind", "backup"), ("queue", queue), ("state", "queued"))] == 1
    with world.core.scope(world.admin) as s:
        host_id = s.get(VirtualMachine, world.alice_vm, "vm").host_id
    oldest = ("offering", "gold"), ("host", host_id), ("pool", world.pool_id)
    assert ("backup_orchestrator_oldest_last_success_timestamp_seconds", tuple(sorted(oldest))) in got


def test_state_metrics_name_no_vm_of_a_tenant(world: World) -> None:
    for vm in (world.alice_vm, world.bob_vm):
        backup_job(world.core, world, vm)

    got = samples(world.core)

    assert got
    vms = {world.alice_vm, world.alice_vm2, world.bob_vm}
    for name, labels in got:
        assert "vm" not in dict(labels), name
        assert not vms & {value for _, value in labels}, name
