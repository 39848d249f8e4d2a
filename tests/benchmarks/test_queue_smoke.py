"""``benchmarks/queue.py --quick --json`` runs end to end and reports positive figures.

It needs PostgreSQL (the suite's ``BACKUP_TEST_POSTGRES_URL``) and Redis
(``BACKUP_BENCH_REDIS_URL``, default 127.0.0.1:6379 database 12, which it flushes). Without
them it is skipped — except with ``CI=true``, where a missing service fails the run.
"""

from __future__ import annotations

import os

import pytest
import redis

from tests.benchmarks.quick import positive, run_quick
from tests.conftest import IN_CI, POSTGRES_URL

REDIS_URL = os.environ.get("BACKUP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


@pytest.fixture
def redis_ready() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        if IN_CI:
            pytest.fail(f"Redis is required in CI but unreachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    finally:
        client.close()


@pytest.mark.usefixtures("postgres_ready", "redis_ready")
def test_queue_benchmark_quick_json() -> None:
    env = {**os.environ, "BACKUP_BENCH_POSTGRES_URL": POSTGRES_URL, "BACKUP_BENCH_REDIS_URL": REDIS_URL}
    result = run_quick("queue.py", env)

    assert result["quick"] is True
    assert positive(result["jobs"])
    assert positive(result["planned_jobs"])
    assert positive(result["dispatcher_jobs_per_s"])
    for key in (
        "jobs_per_s",
        "bare_celery_jobs_per_s",
        "overhead",
        "durable_floor_jobs_per_s",
        "overhead_vs_durable_floor",
    ):
        assert set(result[key]) == {"1", "2", "4"}, (key, result[key])
        assert all(positive(v) for v in result[key].values()), (key, result[key])
