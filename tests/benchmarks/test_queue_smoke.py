"""``benchmarks/queue.py --quick --json`` runs end to end and reports positive figures.

It needs PostgreSQL (the suite's ``BACKUP_TEST_POSTGRES_URL``) and Redis
(``BACKUP_BENCH_REDIS_URL``, default 127.0.0.1:6379 database 12, which it flushes). Without
them it is skipped — except with ``CI=true``, where a missing service fails the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.conftest import IN_CI, POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("BACKUP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
TIMEOUT = 120


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


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
    proc = subprocess.Popen(
        [sys.executable, "benchmarks/queue.py", "--quick", "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the benchmark then stops its workers and drops its schema.
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        pytest.fail(f"benchmarks/queue.py --quick took over {TIMEOUT}s:\n{out[-4000:]}")
    assert proc.returncode == 0, out[-4000:]
    lines = out.strip().splitlines()
    result = json.loads(lines[-1])

    assert result["quick"] is True
    assert _positive(result["jobs"])
    assert _positive(result["planned_jobs"])
    assert _positive(result["dispatcher_jobs_per_s"])
    for key in ("jobs_per_s", "bare_celery_jobs_per_s", "overhead"):
        assert set(result[key]) == {"1", "2", "4"}, (key, result[key])
        assert all(_positive(v) for v in result[key].values()), (key, result[key])
