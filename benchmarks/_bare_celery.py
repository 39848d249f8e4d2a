"""The baseline of ``benchmarks/queue.py``: a Celery app with one task that does nothing but
count itself, configured as ``workers/app.py`` configures the orchestrator's.

    python -m celery -A benchmarks._bare_celery:app worker ...   (BENCH_BROKER_URL set)
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

TASK_NAME = "bench.noop"
DONE_KEY = "bench:done"
LAST_KEY = "bench:last"
PIDS_KEY = "bench:pids"

app = Celery("bench_bare", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12"))
# The same delivery settings as the orchestrator's app, so only the task body differs.
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_create_missing_queues=True,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 6 * 3600},
    worker_hijack_root_logger=False,
)

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    # Made in the pool process on first use: a connection is never shared across a fork.
    global _client
    if _client is None:
        _client = redis.Redis.from_url(app.conf.broker_url)
    return _client


@app.task(name=TASK_NAME, ignore_result=True)
def noop(token: str) -> None:
    # One round trip: the count the benchmark polls, when the last one ended, and which
    # process ran it (the warm-up waits until every process has run one).
    pipe = _redis().pipeline(transaction=False)
    pipe.incr(DONE_KEY)
    pipe.set(LAST_KEY, repr(time.time()))
    pipe.sadd(PIDS_KEY, os.getpid())
    pipe.execute()
