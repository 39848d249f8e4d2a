"""``benchmarks/queue.py --quick --json`` runs end to end: positive figures, each the median
of at least three rounds in rotated order, ratios of those medians, and its baselines named.

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

pytestmark = pytest.mark.serial  # a benchmark: its figures want the machine to itself

REDIS_URL = os.environ.get("BACKUP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
COUNTS = {"1", "2", "4"}
RATES = ("jobs_per_s", "bare_celery_jobs_per_s", "durable_floor_jobs_per_s", "enqueue_jobs_per_s")
# Each ratio and the figures it divides: over / under.
RATIOS = {
    "overhead": ("bare_celery_jobs_per_s", "jobs_per_s"),
    "overhead_vs_durable_floor": ("durable_floor_jobs_per_s", "jobs_per_s"),
}


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
    # Its rounds start real workers against PostgreSQL and Redis: slow on a loaded machine.
    result = run_quick("queue.py", env, timeout=300)

    assert result["quick"] is True
    assert positive(result["jobs"])
    assert positive(result["planned_jobs"])
    for key in (*RATES, *RATIOS):
        assert set(result[key]) == COUNTS, (key, result[key])
        assert all(positive(v) for v in result[key].values()), (key, result[key])
    for key in ("dispatcher_jobs_per_s", "release_floor_jobs_per_s", "dispatcher_overhead_vs_release_floor"):
        assert positive(result[key]), (key, result[key])

    # Rounds, each running every configuration once, the order rotated between them.
    assert result["rounds"] >= 3
    order = result["order"]
    assert len(order) == result["rounds"]
    configurations = {f"{setup}:{n}" for setup in ("ours", "bare", "floor") for n in COUNTS}
    configurations |= {"dispatcher", "release_floor"}
    for labels in order:
        assert sorted(labels) == sorted(configurations), labels
    assert len({labels[0] for labels in order}) == len(order), order

    # Each figure the median of its rounds, and each ratio one of those medians.
    stats = result["stats"]
    for key in RATES:
        for n in COUNTS:
            spread = stats[key][n]
            assert spread["min"] <= spread["median"] == result[key][n] <= spread["max"], (key, n, spread)
    for key in ("dispatcher_jobs_per_s", "release_floor_jobs_per_s"):
        assert stats[key]["min"] <= stats[key]["median"] == result[key] <= stats[key]["max"], key
    for key, (over, under) in RATIOS.items():
        for n in COUNTS:
            assert result[key][n] == round(result[over][n] / result[under][n], 2), (key, n)
            assert stats[key][n]["min"] <= stats[key][n]["median"] <= stats[key][n]["max"], (key, n)
    assert result["dispatcher_overhead_vs_release_floor"] == round(
        result["release_floor_jobs_per_s"] / result["dispatcher_jobs_per_s"], 2
    )

    baselines = result["baselines"]
    assert set(baselines) == {"bare_celery", "durable_floor", "bulk_release_floor"}
    for name, baseline in baselines.items():
        assert all(baseline[k] for k in ("celery", "kombu", "redis_server")), name
    for name in ("durable_floor", "bulk_release_floor"):
        assert all(baselines[name][k] for k in ("postgresql", "psycopg2", "synchronous_commit")), name
    assert "--concurrency=1" in baselines["bare_celery"]["worker_flags"]
