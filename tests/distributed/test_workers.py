"""Workers on real Redis and PostgreSQL: jobs run, limits hold across workers, duplicates
and crashes lose nothing and double nothing."""

from __future__ import annotations

import threading
from datetime import timedelta

import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from orchestrator.domain.actor import Actor
from orchestrator.domain.models import Backup, BackupStatus, Host, Job, JobState, StoragePool
from orchestrator.engine.core import Core
from orchestrator.usecases import assignments, backups, inventory
from tests.conftest import World, add_provider, import_offering
from tests.distributed.conftest import Processes, free_port, job_rows, wait_for

GiB = 2**30


def slow_vms(world: World, n: int, duration: float) -> list[str]:
    """``n`` VMs on host kvm1 and pool pool1 whose dummy backups take ``duration`` seconds."""
    core, admin = world.core, world.admin
    provider = add_provider(core, admin, "slow", duration_s=duration)
    offering = import_offering(core, admin, provider, "slow-gold", allow_user_driven_backups=True)
    ids = []
    with core.scope(admin) as s:
        for i in range(n):
            vm = inventory.register_vm(
                s, name=f"slow{i}", account="alice", zone="zone1", host="kvm1",
                volumes=[{"pool": "pool1", "size": GiB}],
            )  # fmt: skip
            ids.append(vm.id)
    with core.scope(world.alice) as s:
        for vm_id in ids:
            assignments.assign(s, vm_id, offering)
    return ids


def set_limits(core: Core, *, host: int, pool: int) -> None:
    with core.db.session() as session:
        session.execute(update(Host).values(max_concurrent_backups=host))
        session.execute(update(StoragePool).values(max_concurrent_backups=pool))


def back_up(core: Core, actor: Actor, vm_ids: list[str]) -> list[str]:
    with core.scope(actor) as s:
        return [backups.create_backup(s, vm_id).id for vm_id in vm_ids]


def finished(core: Core, ids: list[str]) -> list[Job] | None:
    rows = job_rows(core, ids)
    return rows if all(r.state in (JobState.SUCCEEDED, JobState.FAILED) for r in rows) else None


def max_overlap(rows: list[Job]) -> int:
    """The most jobs whose [started, finished] intervals overlap. Each start is read from the
    clock just before the claim's UPDATE, so it may precede by a moment the commit that freed
    its slot: starts count from 20 ms later."""
    slack = timedelta(milliseconds=20)
    events = sorted([(r.started_at + slack, 1) for r in rows] + [(r.finished_at, -1) for r in rows])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


class RunningPeak:
    """Samples, from consistent database snapshots, the most jobs running at once."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RunningPeak:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            with self.core.db.session() as session:
                n = session.scalar(select(func.count()).select_from(Job).where(Job.state == JobState.RUNNING))
            self.peak = max(self.peak, n or 0)


def test_workers_run_queued_backups_to_backed_up(world: World, processes: Processes) -> None:
    processes.worker("--pools", "pool1")
    ids = back_up(world.core, world.admin, [world.alice_vm, world.bob_vm])
    rows = wait_for(lambda: finished(world.core, ids), what="both backups to finish")
    assert {r.state for r in rows} == {JobState.SUCCEEDED}
    assert all(r.leased_by and r.leased_by != "inline" for r in rows)
    with world.core.db.session() as session:
        statuses = session.scalars(select(Backup.status).where(Backup.id.in_([r.subject_id for r in rows])))
        assert set(statuses) == {BackupStatus.BACKED_UP}


def test_pool_limit_holds_across_many_workers(world: World, processes: Processes) -> None:
    set_limits(world.core, host=50, pool=2)
    vms = slow_vms(world, 8, duration=0.8)
    for _ in range(3):
        processes.worker("--pools", "pool1", concurrency=3)
    with RunningPeak(world.core) as sampled:
        ids = back_up(world.core, world.alice, vms)
        rows = wait_for(lambda: finished(world.core, ids), timeout=120, what="eight backups to finish")
    assert {r.state for r in rows} == {JobState.SUCCEEDED}
    # Nine worker processes on one queue, yet never more than two at once (and two at some point).
    assert sampled.peak == 2
    assert max_overlap(rows) == 2


def test_host_limit_holds_too(world: World, processes: Processes) -> None:
    set_limits(world.core, host=1, pool=50)
    vms = slow_vms(world, 4, duration=0.5)
    processes.worker("--pools", "pool1", concurrency=4)
    processes.worker("--pools", "pool1", concurrency=4)
    with RunningPeak(world.core) as sampled:
        ids = back_up(world.core, world.alice, vms)
        rows = wait_for(lambda: finished(world.core, ids), timeout=120, what="four backups to finish")
    assert {r.state for r in rows} == {JobState.SUCCEEDED}
    assert sampled.peak == 1
    assert max_overlap(rows) == 1


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.ConnectionError:
        return None
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_worker_metrics_add_up_its_pool_processes(world: World, processes: Processes) -> None:
    port = free_port()
    processes.worker("--pools", "pool1", "--metrics-port", str(port), concurrency=2)
    processes.dispatcher()
    vms = slow_vms(world, 4, duration=0.2)
    ids = back_up(world.core, world.alice, vms)
    rows = wait_for(lambda: finished(world.core, ids), what="four backups to finish")
    queue = rows[0].queue

    def counted() -> float:
        samples = scrape(port) or {}
        key = (("kind", "backup"), ("outcome", "succeeded"), ("queue", queue))
        return samples.get(("backup_orchestrator_job_attempts_total", key), 0)

    assert wait_for(lambda: counted() == 4, timeout=20, what="four succeeded attempts in the metrics")
    samples = scrape(port) or {}
    durations = samples[
        "backup_orchestrator_job_duration_seconds_count",
        (("kind", "backup"), ("outcome", "succeeded"), ("queue", queue)),
    ]
    assert durations == 4
    moved = samples["backup_orchestrator_moved_bytes_total", (("kind", "backup"), ("pool", world.pool_id))]
    assert moved == 4 * GiB
