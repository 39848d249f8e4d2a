"""The distributed mode on RabbitMQ instead of Redis: workers run backups to BackedUp, and
the reconciler's question of what the broker still holds is answered the same way.

RabbitMQ is reached at ``BACKUP_TEST_AMQP_URL`` (default guest@127.0.0.1:5672, vhost /).
With ``CI=true`` a missing RabbitMQ fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kombu import Connection

from orchestrator.domain.models import JobState
from orchestrator.engine.core import Core
from orchestrator.infra.config import Settings
from tests.conftest import IN_CI, World
from tests.distributed.conftest import Processes, wait_for
from tests.distributed.test_workers import back_up, finished, slow_vms
from tests.shared import machine_lock
from workers.runner import CeleryRunner

AMQP_URL = os.environ.get("BACKUP_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture
def amqp() -> Iterator[str]:
    try:
        with Connection(AMQP_URL, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # kombu raises the transport's own errors
        if IN_CI:
            pytest.fail(f"RabbitMQ is required in CI but unreachable at {AMQP_URL}: {exc}")
        pytest.skip(f"RabbitMQ unreachable at {AMQP_URL}: {exc}")
    # Workers consume the vhost's queues that every run shares (``default``, ``ingest``).
    where = urlsplit(AMQP_URL)
    with machine_lock(f"rabbitmq {where.hostname}:{where.port} {where.path}"):
        yield AMQP_URL


@pytest.fixture
def settings(database_url: str, tmp_path: Path, amqp: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        broker_url=amqp,
        retry_base_seconds=0.2,
        lease_seconds=3,
        defer_seconds=0.3,
        lost_message_grace_seconds=2.0,
        db_retry_seconds=60.0,
    )


def test_workers_run_backups_through_rabbitmq(world: World, processes: Processes) -> None:
    vms = slow_vms(world, 4, duration=0.2)
    processes.worker("--pools", "pool1")
    processes.dispatcher()
    ids = back_up(world.core, world.alice, vms)
    rows = wait_for(lambda: finished(world.core, ids), timeout=90, what="four backups to finish")
    assert {r.state for r in rows} == {JobState.SUCCEEDED}
    assert {r.attempts for r in rows} == {1}


def test_holding_tells_a_queue_with_messages_from_an_empty_or_missing_one(core: Core) -> None:
    runner = core.runner
    assert isinstance(runner, CeleryRunner)
    full, empty, missing = (f"test.{name}.{uuid.uuid4().hex[:8]}" for name in ("full", "empty", "missing"))
    with Connection(AMQP_URL) as conn:
        channel = conn.channel()
        try:
            for queue in (full, empty):
                channel.queue_declare(queue=queue, auto_delete=False)
            conn.Producer(channel).publish({"x": 1}, routing_key=full)
            # A missing queue closes RabbitMQ's channel (404): the queues after it still count.
            assert runner.holding({missing, full, empty}) == {full}
        finally:
            for queue in (full, empty):
                channel.queue_delete(queue)
            channel.close()
