"""A database that is gone for a moment delays a running job, never aborts it.

The worker reaches PostgreSQL through a proxy the test cuts mid-job (every connection
dropped, new ones refused), as a restart would; the server itself keeps running for the
other tests that share it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.domain.models import BackupStatus, JobState
from orchestrator.infra.config import Settings
from tests.conftest import World
from tests.distributed.conftest import Processes, wait_for
from tests.distributed.pgproxy import Proxy
from tests.distributed.test_reliability import job, points_of, provider_points
from tests.distributed.test_workers import back_up, finished, slow_vms


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A lease far longer than the outage: the job must survive on retries alone.
    return dataclasses.replace(settings, lease_seconds=15)


@pytest.fixture
def proxied(settings: Settings, tmp_path: Path) -> Iterator[tuple[Proxy, Processes]]:
    """A proxy to the test's database, and processes that reach the database through it."""
    logs = tmp_path / "proxied-logs"
    logs.mkdir()
    with Proxy.before(settings.database_url) as (proxy, url):
        procs = Processes(dataclasses.replace(settings, database_url=url), logs)
        try:
            yield proxy, procs
        finally:
            procs.stop_all()
            print(procs.output())


def test_database_outage_mid_backup_delays_the_job(
    world: World, processes: Processes, proxied: tuple[Proxy, Processes]
) -> None:
    proxy, through_proxy = proxied
    (vm,) = slow_vms(world, 1, duration=8.0)  # a progress report every 2 s
    through_proxy.worker("--pools", "pool1", concurrency=1)
    processes.dispatcher()
    (job_id,) = back_up(world.core, world.alice, [vm])
    wait_for(lambda: job(world.core, job_id).progress_done > 0, what="the backup to report progress")
    proxy.cut()
    time.sleep(2.5)  # at least one progress report and one lease renewal fall in the outage
    proxy.restore()
    assert proxy.dropped >= 1
    assert proxy.refused >= 1  # the worker tried during the outage
    (done,) = wait_for(lambda: finished(world.core, [job_id]), timeout=90, what="the backup to end")
    assert (done.state, done.attempts) == (JobState.SUCCEEDED, 1), done.error
    (point,) = points_of(world.core, [vm])
    assert point.status is BackupStatus.BACKED_UP
    assert provider_points(world, point.id) == 1
