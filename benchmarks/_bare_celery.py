"""The baselines of ``benchmarks/queue.py``: a Celery app configured as ``workers/app.py``
configures the orchestrator's, with two tasks, and the bulk-release floor's insert.

- ``bench.noop`` does nothing but count itself: what Celery and Redis alone cost.
- ``bench.durable`` is the durable floor: the least a job queue that keeps a row per job in
  PostgreSQL must do, in raw SQL (psycopg2, no ORM). The producer inserts the job row in a
  transaction of its own before publishing its id (``insert_job``); the task claims the row
  in one transaction and finishes it, with a result row standing for the restore point, in
  another, each committed (``synchronous_commit`` as the server has it), then counts itself
  as the noop does. Its tables (``DURABLE_DDL``) live in the benchmark's own schema.
- ``insert_jobs`` is the database half of the bulk-release floor, the least that releasing
  K planned jobs costs: K job rows by multi-row INSERTs (``RELEASE_PAGE`` rows a statement)
  in one committed transaction. The benchmark then publishes one message per row.

    python -m celery -A benchmarks._bare_celery:app worker ...
        (BENCH_BROKER_URL set; BENCH_DATABASE_URL too for ``bench.durable``)
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import psycopg2
import redis
from celery import Celery
from psycopg2.extras import Json, execute_values

from workers.app import DELIVERY_SETTINGS

TASK_NAME = "bench.noop"
DURABLE_TASK_NAME = "bench.durable"
DONE_KEY = "bench:done"
LAST_KEY = "bench:last"
PIDS_KEY = "bench:pids"
# ``floor_job.kind`` tells the two floors' rows apart: only the durable floor's are run.
DURABLE_KIND = "backup"
RELEASE_KIND = "release"
# Rows per INSERT statement of the bulk-release floor: a tenth of the round trips of
# psycopg2's default (100), and still a statement of only a few hundred kB.
RELEASE_PAGE = 1000

app = Celery("bench_bare", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12"))
# The same delivery settings as the orchestrator's app, so only the task body differs.
app.conf.update(DELIVERY_SETTINGS)

# The durable floor's tables: a job row and a result row per job, primary keys and the
# result's foreign key, nothing else.
DURABLE_DDL = """
CREATE TABLE floor_job (
    id text PRIMARY KEY,
    state text NOT NULL,
    queue text NOT NULL,
    kind text NOT NULL,
    payload jsonb NOT NULL,
    worker text,
    attempts integer NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    created_at timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE TABLE floor_restore_point (
    id text PRIMARY KEY,
    job_id text NOT NULL REFERENCES floor_job (id),
    subject text NOT NULL,
    created_at timestamptz NOT NULL
);
"""

_client: redis.Redis | None = None
_db: Any = None  # a psycopg2 connection


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg2://...``) as libpq takes it."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


def _redis() -> redis.Redis:
    # Made in the pool process on first use: a connection is never shared across a fork.
    global _client
    if _client is None:
        _client = redis.Redis.from_url(app.conf.broker_url)
    return _client


def _postgres() -> Any:
    # Likewise one per pool process, opened on its first task.
    global _db
    if _db is None:
        _db = psycopg2.connect(libpq_url(os.environ["BENCH_DATABASE_URL"]))
    return _db


def _count() -> None:
    # One round trip: the count the benchmark polls, when the last one ended, and which
    # process ran it (the warm-up waits until every process has run one).
    pipe = _redis().pipeline(transaction=False)
    pipe.incr(DONE_KEY)
    pipe.set(LAST_KEY, repr(time.time()))
    pipe.sadd(PIDS_KEY, os.getpid())
    pipe.execute()


@app.task(name=TASK_NAME, ignore_result=True)
def noop(token: str) -> None:
    _count()


def _payload(token: str) -> Json:
    return Json({"subject_type": "vm", "subject_id": token, "origin": "bench", "reason": "floor"})


def insert_job(db: Any, token: str, queue: str) -> str:
    """The producer's side of ``bench.durable``: one committed transaction inserting the job
    row. Returns the id to publish."""
    job_id = uuid.uuid4().hex
    with db, db.cursor() as cur:
        cur.execute(
            "INSERT INTO floor_job (id, state, queue, kind, payload, created_at)"
            " VALUES (%s, 'queued', %s, %s, %s, now())",
            (job_id, queue, DURABLE_KIND, _payload(token)),
        )
    return job_id


def insert_jobs(db: Any, tokens: list[str], queue: str) -> list[str]:
    """The bulk-release floor's database side: a queued job row per token, ``RELEASE_PAGE``
    rows per INSERT, all in one committed transaction. Returns the ids to publish."""
    rows = [(uuid.uuid4().hex, queue, RELEASE_KIND, _payload(token)) for token in tokens]
    with db, db.cursor() as cur:
        execute_values(
            cur,
            "INSERT INTO floor_job (id, state, queue, kind, payload, created_at) VALUES %s",
            rows,
            template="(%s, 'queued', %s, %s, %s, now())",
            page_size=RELEASE_PAGE,
        )
    return [job_id for job_id, *_ in rows]


@app.task(name=DURABLE_TASK_NAME, ignore_result=True, bind=True)
def durable(self: Any, job_id: str) -> None:
    db = _postgres()
    with db, db.cursor() as cur:
        cur.execute(
            "UPDATE floor_job SET state = 'running', worker = %s,"
            " lease_expires_at = now() + interval '10 minutes', attempts = attempts + 1"
            " WHERE id = %s AND state = 'queued' RETURNING kind, payload, attempts",
            (f"{self.request.hostname}/{os.getpid()}", job_id),
        )
        claimed = cur.fetchone()
    if claimed is None:
        # Never in a benchmark (nothing is redelivered). Counted all the same, so the run
        # does not wait for it: its final check of the rows' states fails instead.
        _count()
        return
    _kind, payload, _attempts = claimed
    with db, db.cursor() as cur:
        cur.execute("UPDATE floor_job SET state = 'succeeded', finished_at = now() WHERE id = %s", (job_id,))
        cur.execute(
            "INSERT INTO floor_restore_point (id, job_id, subject, created_at) VALUES (%s, %s, %s, now())",
            (uuid.uuid4().hex, job_id, payload["subject_id"]),
        )
    _count()
