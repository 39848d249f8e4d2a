"""``benchmarks/faults.py --quick --json`` for a kill -9 of a worker, a flushed broker and the
database down for 8 s, on Redis and on RabbitMQ: every fault reported with its counts, and
every target met.

It needs PostgreSQL (the suite's ``BACKUP_TEST_POSTGRES_URL``), Redis
(``BACKUP_BENCH_REDIS_URL``, default 127.0.0.1:6379 database 12, which it flushes) and
RabbitMQ (``BACKUP_BENCH_AMQP_URL``). Without them it is skipped — except with
``CI=true``, where a missing service fails the run.
"""

from __future__ import annotations

import os

import pytest
import redis
from kombu import Connection

from tests.benchmarks.quick import positive, require, run_quick
from tests.conftest import POSTGRES_URL

# Purges the broker's queues; its recovery times want the machine to itself.
pytestmark = pytest.mark.serial

REDIS_URL = os.environ.get("BACKUP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
AMQP_URL = os.environ.get("BACKUP_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
FAULTS = ("kill-worker", "flush", "db-down")
BROKERS = ("redis", "rabbitmq")
COUNTS = ("lost", "ran_twice", "untracked_backend_copies", "stuck", "good_without_job")


def unreachable_broker() -> str | None:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError as exc:
        return f"Redis unreachable at {REDIS_URL}: {exc}"
    try:
        with Connection(AMQP_URL, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # kombu raises the transport's own errors
        return f"RabbitMQ unreachable at {AMQP_URL}: {exc}"
    return None


@pytest.mark.usefixtures("postgres_ready")
def test_faults_quick_meets_its_targets() -> None:
    require(unreachable_broker(), "a broker")
    env = {
        **os.environ,
        "BACKUP_BENCH_POSTGRES_URL": POSTGRES_URL,
        "BACKUP_BENCH_REDIS_URL": REDIS_URL,
        "BACKUP_BENCH_AMQP_URL": AMQP_URL,
    }
    args = ("--faults", ",".join(FAULTS), "--brokers", ",".join(BROKERS))
    # The script exits non-zero when a target is missed, which fails here with its table.
    result = run_quick("faults.py", env, *args, timeout=240)

    assert result["quick"] is True
    assert result["jobs"] == 20
    assert result["missed"] == []
    assert set(result["results"]) == set(BROKERS)
    for broker, by_fault in result["results"].items():
        assert positive(by_fault["baseline_s"]), broker
        assert set(by_fault) == {"baseline_s", *FAULTS}, broker
        for fault in FAULTS:
            got = by_fault[fault]
            assert set(got) == {*COUNTS, "ran_twice_why", "recovery_s"}, (broker, fault)
            assert len(got["ran_twice_why"]) == got["ran_twice"], (broker, fault)
            assert got["recovery_s"] >= 0, (broker, fault)
            # kill -9 may run a backup twice (at least once); nothing else may go wrong.
            allowed = {"ran_twice"} if fault == "kill-worker" else set()
            assert {k: got[k] for k in COUNTS if k not in allowed} == dict.fromkeys(
                set(COUNTS) - allowed, 0
            ), (broker, fault, got)
