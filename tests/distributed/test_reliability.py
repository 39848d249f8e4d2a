"""Nothing lost, nothing doubled, whatever dies: a worker (kill -9), the broker's data
(Redis flushed), the database (PostgreSQL restarted), or a message delivered twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.domain.models import Backup, BackupStatus, Job, JobState
from orchestrator.engine.core import Core
from orchestrator.engine.runner import Queued
from orchestrator.usecases import jobs
from tests.conftest import IN_CI, World
from tests.distributed.conftest import Processes, job_rows, wait_for
from tests.distributed.test_workers import back_up, finished, slow_vms


def job(core: Core, job_id: str) -> Job:
    (row,) = job_rows(core, [job_id])
    return row


def points_of(core: Core, vm_ids: list[str]) -> list[Backup]:
    with core.db.session() as session:
        return list(session.scalars(select(Backup).where(Backup.vm_id.in_(vm_ids))))


def provider_points(world: World, restore_point_id: str) -> int:
    """How many backups the (dummy) back end itself holds for one restore point."""
    stored = Path(world.core.settings.home, "providers").glob("*/points/*.json")
    return sum(1 for f in stored if json.loads(f.read_text())["restore_point_id"] == restore_point_id)


def test_killed_worker_job_is_rerun_by_another_once(world: World, processes: Processes) -> None:
    (vm,) = slow_vms(world, 1, duration=6.0)
    doomed = processes.worker("--pools", "pool1", concurrency=1)
    processes.dispatcher()
    (job_id,) = back_up(world.core, world.alice, [vm])
    wait_for(lambda: job(world.core, job_id).state is JobState.RUNNING, what="the backup to start")
    first = job(world.core, job_id).leased_by
    Processes.kill(doomed)  # kill -9 the worker and its pool process mid-backup
    processes.worker("--pools", "pool1", concurrency=1)
    done = wait_for(lambda: finished(world.core, [job_id]), timeout=90, what="the re-run to finish")
    assert done[0].state is JobState.SUCCEEDED
    assert done[0].attempts == 2
    assert done[0].leased_by != first
    (point,) = points_of(world.core, [vm])
    assert point.status is BackupStatus.BACKED_UP
    assert provider_points(world, point.id) == 1
    with world.core.scope(world.alice) as s:
        log = [e.message for e in jobs.logs(s, job_id)]
    assert any("stopped renewing its lease" in line for line in log), log


def test_killed_pool_process_is_recovered(world: World, processes: Processes) -> None:
    """Only the process running the job dies; Celery's parent survives and takes more work."""
    (vm,) = slow_vms(world, 1, duration=6.0)
    processes.worker("--pools", "pool1", concurrency=1)
    processes.dispatcher()
    (job_id,) = back_up(world.core, world.alice, [vm])
    wait_for(lambda: job(world.core, job_id).state is JobState.RUNNING, what="the backup to start")
    pid = int(job(world.core, job_id).leased_by.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    done = wait_for(lambda: finished(world.core, [job_id]), timeout=90, what="the re-run to finish")
    assert (done[0].state, done[0].attempts) == (JobState.SUCCEEDED, 2)
    (point,) = points_of(world.core, [vm])
    assert point.status is BackupStatus.BACKED_UP
    assert provider_points(world, point.id) == 1


def test_flushed_broker_loses_no_queued_job(world: World, processes: Processes, broker) -> None:
    vms = slow_vms(world, 5, duration=0.1)
    ids = back_up(world.core, world.alice, vms)  # published, but no worker runs yet
    assert broker.dbsize() > 0
    broker.flushdb()  # every message is gone
    processes.dispatcher()
    processes.worker("--pools", "pool1", concurrency=2)
    rows = wait_for(lambda: finished(world.core, ids), timeout=90, what="the lost jobs to be re-delivered")
    assert [(r.state, r.attempts) for r in rows] == [(JobState.SUCCEEDED, 1)] * 5
    points = points_of(world.core, vms)
    assert len(points) == 5
    assert {p.status for p in points} == {BackupStatus.BACKED_UP}
    assert all(provider_points(world, p.id) == 1 for p in points)


def test_duplicate_messages_make_one_restore_point(world: World, processes: Processes) -> None:
    (vm,) = slow_vms(world, 1, duration=0.5)
    (job_id,) = back_up(world.core, world.alice, [vm])
    with world.core.db.session() as session:
        queued = Queued.of(session.get_one(Job, job_id))
    for _ in range(3):
        world.core.runner.submit([queued])  # the same job, delivered three more times
    processes.worker("--pools", "pool1", concurrency=4)
    done = wait_for(lambda: finished(world.core, [job_id]), what="the backup to finish")
    assert (done[0].state, done[0].attempts) == (JobState.SUCCEEDED, 1)
    (point,) = points_of(world.core, [vm])
    assert point.status is BackupStatus.BACKED_UP
    assert provider_points(world, point.id) == 1


def test_running_job_is_cancelled_at_its_next_progress_report(world: World, processes: Processes) -> None:
    (vm,) = slow_vms(world, 1, duration=8.0)
    processes.worker("--pools", "pool1", concurrency=1)
    (job_id,) = back_up(world.core, world.alice, [vm])
    wait_for(lambda: job(world.core, job_id).state is JobState.RUNNING, what="the backup to start")
    with world.core.scope(world.alice) as s:
        assert jobs.cancel(s, job_id).cancel_requested_at is not None
    wait_for(lambda: job(world.core, job_id).state is JobState.CANCELLED, timeout=30, what="the cancel")
    assert job(world.core, job_id).finished_at is not None
    (point,) = points_of(world.core, [vm])
    assert point.status is BackupStatus.FAILED
    assert provider_points(world, point.id) == 0


def _postgres_restart_command() -> list[str] | None:
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0 or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    return (
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"] if versions else None
    )


@pytest.mark.serial  # every other test's connections drop with the server
def test_database_restart_while_workers_run(world: World, processes: Processes) -> None:
    command = _postgres_restart_command()
    if command is None:
        if IN_CI:
            pytest.fail("restarting PostgreSQL needs root and pg_ctlcluster in CI")
        pytest.skip("cannot restart the local PostgreSQL here")
    vms = slow_vms(world, 6, duration=2.0)
    processes.worker("--pools", "pool1", concurrency=3)
    processes.dispatcher()
    ids = back_up(world.core, world.alice, vms)
    wait_for(
        lambda: any(r.state is JobState.RUNNING for r in job_rows(world.core, ids)), what="backups to start"
    )
    subprocess.run(command, check=True, timeout=120)
    rows = wait_for(lambda: finished(world.core, ids), timeout=180, what="every job to end after the restart")
    assert {r.state for r in rows} == {JobState.SUCCEEDED}
    points = points_of(world.core, vms)
    assert {p.status for p in points} == {BackupStatus.BACKED_UP}
    assert len(points) == 6
    assert all(provider_points(world, p.id) == 1 for p in points)
