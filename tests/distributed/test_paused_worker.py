"""A worker paused past its lease (SIGSTOP: a VM migration, a long GC pause, a swap storm)
wakes up after another worker redid its job: it must write nothing more, and the back end
must end up with the one copy the database tracks."""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import pytest

from orchestrator.domain.models import BackupStatus, JobState
from orchestrator.infra.config import Settings
from orchestrator.usecases import jobs, reconciliation
from tests.conftest import World
from tests.distributed.conftest import Processes, wait_for
from tests.distributed.test_reliability import job, points_of, provider_points
from tests.distributed.test_workers import back_up, finished, slow_vms


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, lease_seconds=15)


def log_of(world: World, job_id: str) -> list[str]:
    with world.core.scope(world.alice) as s:
        return [e.message for e in jobs.logs(s, job_id)]


def test_a_paused_worker_leaves_no_second_copy(world: World, processes: Processes) -> None:
    (vm,) = slow_vms(world, 1, duration=4.0)
    processes.worker("--pools", "pool1", concurrency=1)
    processes.worker("--pools", "pool1", concurrency=1)
    processes.dispatcher()
    (job_id,) = back_up(world.core, world.alice, [vm])
    wait_for(lambda: job(world.core, job_id).state is JobState.RUNNING, what="the backup to start")
    pid = int(job(world.core, job_id).leased_by.rsplit(":", 1)[1])
    # The process running attempt 1, between its last two progress reports (one a second).
    time.sleep(3.5)
    os.kill(pid, signal.SIGSTOP)
    try:
        (done,) = wait_for(lambda: finished(world.core, [job_id]), timeout=60, what="attempt 2 to finish")
        time.sleep(3.0)  # about 22 s after the pause
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (done.state, done.attempts) == (JobState.SUCCEEDED, 2)
    (point,) = points_of(world.core, [vm])

    # Attempt 1 wakes up: it stops at once, or it finishes and its copy is removed.
    def woke_up() -> bool:
        stopped = any("lost its lease" in m for m in log_of(world, job_id))
        return stopped or provider_points(world, point.id) > 1

    wait_for(woke_up, timeout=20, what="the paused worker to wake up and stop")
    time.sleep(2.0)  # what it would still write lands now
    assert provider_points(world, point.id) == 1
    assert point.status is BackupStatus.BACKED_UP
    assert any("attempt 1" in m and "lost its lease" in m for m in log_of(world, job_id))
    assert job(world.core, job_id).state is JobState.SUCCEEDED
    with world.core.scope(world.admin) as s:
        assert reconciliation.reconcile(s, "slow").untracked == []
