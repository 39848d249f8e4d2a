"""A dispatcher that has just taken the lead (as after a database outage, which drops the
PostgreSQL lock with its connection) judges leases only after a lease period and a retry
step: a lease that expired while nobody could renew it says nothing about its worker."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from orchestrator.bootstrap import build_core
from orchestrator.domain.models import JobState
from orchestrator.engine.dispatcher import run_dispatcher
from orchestrator.engine.execution import claim
from orchestrator.infra.db import RETRY_WAIT_MAX_SECONDS
from orchestrator.usecases import rounds
from tests.conftest import World
from tests.orchestrator.engine.test_job_lifecycle import Held, backup_job, expire, row


def test_a_new_leader_waits_a_lease_before_reclaiming(world: World, settings) -> None:
    core = build_core(replace(settings, lease_seconds=1), db=world.core.db, runner=Held())
    job_id = backup_job(core, world, world.alice_vm)
    claim(core, job_id, "worker-back-from-an-outage")
    expire(core, job_id)
    stop = threading.Event()
    loop = threading.Thread(target=run_dispatcher, args=(core, rounds.tick, 3600, 0.05, stop))
    loop.start()
    try:
        time.sleep(0.8)
        assert row(core, job_id).state is JobState.RUNNING  # not judged yet
        deadline = time.monotonic() + 1 + RETRY_WAIT_MAX_SECONDS + 5
        while row(core, job_id).state is JobState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.2)
        assert row(core, job_id).state is JobState.QUEUED  # then judged: its worker is gone
    finally:
        stop.set()
        loop.join(10)
