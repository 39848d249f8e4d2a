"""Jobs per second through the distributed mode: real Redis, real PostgreSQL, real workers.

Figures, each beside a baseline measured in the same rounds:

- ``jobs_per_s`` for 1, 2 and 4 ``backupctl worker`` processes (``--concurrency 1`` each):
  M dummy backups enqueued through ``backups.create_backup`` with the Celery runner, timed
  from the first enqueue until the last job row is ``succeeded``;
- ``bare_celery_jobs_per_s``: the same M messages to a bare Celery app on the same Redis
  with the same delivery settings and a task that only counts itself
  (``benchmarks/_bare_celery.py``), as many worker processes; ``overhead`` = bare / ours;
- ``durable_floor_jobs_per_s``: the same app, M and worker counts with ``bench.durable``, the least
  any orchestrator keeping a row per job in PostgreSQL pays: per job, the producer commits
  an INSERT of the job row before publishing its id, the task commits a claim (UPDATE ...
  WHERE state = 'queued' RETURNING) and then a finish (UPDATE plus an INSERT of a result
  row), all raw psycopg2 on tables in this run's schema; ``overhead_vs_durable_floor`` =
  floor / ours;
- ``dispatcher_jobs_per_s``: K planned SLA backups due now, released by
  ``planning.release_due`` through the Celery runner (no worker consumes them);
- ``release_floor_jobs_per_s``: the bulk-release floor, what releasing K jobs costs at least:
  K job rows by multi-row INSERTs (psycopg2 ``execute_values``, 1000 rows a statement) in one
  transaction, then one message per job, as ours publishes it, on one producer to the same
  Redis; ``dispatcher_overhead_vs_release_floor`` = floor / dispatcher.

Each configuration (a setup at a worker count, the dispatcher, its floor) runs once per
round, ``--rounds`` rounds (3 unless told), the order rotated from round to round. A figure
is the median over the rounds; ``stats`` gives its min, median and max, and a ratio's
min, median and max over the rounds' own ratios. A ratio itself is of the medians.

Every worker process starts before the first round and runs until the end: worker i
consumes the queue of each worker count above i, so a count's jobs reach exactly that many
processes, and no configuration waits for processes to start. The bare and the durable
floor's tasks share the bare app's processes. Each of these clocks starts just after two
jobs per process ran on the same queue, off the clock: no setup starts cold.

Redis database 12 (``BACKUP_BENCH_REDIS_URL``) is flushed before and after; each run makes a
PostgreSQL schema of its own (``BACKUP_BENCH_POSTGRES_URL``) and drops it at the end.

    .venv/bin/python benchmarks/queue.py --quick --json     # 3 rounds of M = 200, K = 500: ~70 s
    .venv/bin/python benchmarks/queue.py                    # 3 rounds of M = 2000, K = 30000

``--quick`` plans only 500 jobs a round: ``release_due`` manages about 300 a second on two
cores. Its rounds are no smaller than the single round it used to run: starting the workers
once instead of once per setup paid for the other two.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This file shares its name with the standard library's ``queue``, and Python puts a script's
# directory first on the path: Celery's ``import queue`` would load this script instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import atexit  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager, suppress  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from functools import partial  # noqa: E402
from importlib.metadata import version  # noqa: E402
from typing import Any  # noqa: E402

import psycopg2  # noqa: E402
import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402

# Importing it makes the bare app Celery's current app in this process, which nothing here
# relies on: the orchestrator's app is made with ``set_as_current=False`` and always passed.
from benchmarks import _bare_celery as bare  # noqa: E402
from orchestrator.bootstrap import build_core  # noqa: E402
from orchestrator.domain.actor import Actor  # noqa: E402
from orchestrator.domain.models import (  # noqa: E402
    Job,
    JobKind,
    JobState,
    VirtualMachine,
    Volume,
    VolumeType,
    new_id,
)
from orchestrator.engine import routing  # noqa: E402
from orchestrator.engine.core import Core  # noqa: E402
from orchestrator.infra.config import Settings  # noqa: E402
from orchestrator.usecases import (  # noqa: E402
    accounts,
    assignments,
    backup_providers,
    backups,
    inventory,
    offerings,
    planning,
)
from workers.app import DELIVERY_SETTINGS, HARD_LIMIT_GRACE, TIME_LIMITS  # noqa: E402
from workers.runner import celery_runner  # noqa: E402

POSTGRES = os.environ.get("BACKUP_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BACKUP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
COUNTS = (1, 2, 4)
GiB = 2**30
BARE_DEFAULT_QUEUE = "bare.default"
# The bulk-release floor's messages wait here, as the dispatcher's wait in a pool queue no
# worker consumes.
RELEASE_QUEUE = "floor.release"
WARM_VMS = 8  # per worker process: the two halves ``warm_up`` sends in turn
# Jobs per worker process run just before each clock starts (see ``measure_ours``).
TOUCH_JOBS = 2
# The flags of every worker process, ours and the bare app's alike, beside its queues.
OURS_WORKER_FLAGS = ("--concurrency", "1", "--loglevel", "warning")
BARE_WORKER_FLAGS = ("--concurrency=1", "--loglevel=WARNING", "--without-gossip", "--without-mingle")
# Setups measured at each worker count, then those measured once per round.
PER_COUNT = ("ours", "bare", "floor")
ONCE = ("dispatcher", "release_floor")


def log(message: str) -> None:
    print(message, flush=True)


# -- processes ---------------------------------------------------------------------------------


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child before exec: if this benchmark is killed outright and no ``finally``
    # runs, the kernel still stops the worker (which stops its pool).
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Processes:
    """Every process this benchmark starts, each in a group of its own (a Celery worker and its
    pool); all stopped however the run ends."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        path = self.logs / f"{name}-{len(self.started)}.log"
        with path.open("wb") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
                argv,
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.started.append((proc, path))
        self.running.append(proc)
        return proc

    def check(self) -> None:
        for proc, path in self.started:
            if proc in self.running and proc.poll() is not None:
                raise RuntimeError(f"{path.name} exited with {proc.returncode}:\n{self.tail(path)}")

    @staticmethod
    def tail(path: Path) -> str:
        return path.read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        for proc in self.running:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
            # Pool processes left behind by a parent that went first.
            _signal_group(proc, signal.SIGKILL)
        self.running.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def wait_for(
    check: Callable[[], Any], timeout: float, what: str, procs: Processes, every: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        procs.check()
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BACKUP_HOME=str(settings.home),
        BACKUP_DATABASE_URL=settings.database_url,
        BACKUP_BROKER_URL=settings.broker_url or "",
        BENCH_BROKER_URL=settings.broker_url or "",
        BENCH_DATABASE_URL=settings.database_url,
        PYTHONPATH=str(ROOT),
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


# -- the world ---------------------------------------------------------------------------------


@dataclass
class World:
    core: Core
    admin: Actor
    zone_id: str
    host_id: str
    account_id: str
    # A pool per worker count, its queue consumed by that many workers, and one for the
    # dispatcher's jobs, whose queue no worker consumes.
    pool_ids: dict[int, str]
    sla_pool_id: str


def pool_name(count: int) -> str:
    return f"pool{count}"


def build_world(core: Core, counts: tuple[int, ...]) -> World:
    accounts.bootstrap(core)
    admin = accounts.admin_actor(core)
    with core.scope(admin) as s:
        zone = inventory.create_zone(s, "zone1")
        # Limits far above the number of workers: this measures the queue, not throttling.
        host = inventory.create_host(
            s, zone="zone1", name="kvm1", hypervisor="kvm", max_concurrent_backups=10_000
        )
        pools = {
            name: inventory.create_pool(
                s, zone="zone1", name=name, path=f"/srv/{name}", max_concurrent_backups=10_000
            ).id
            for name in [*map(pool_name, counts), "pool-sla"]
        }
        tenant = accounts.create_account(s, "tenant")
        ids = zone.id, host.id, tenant.id
    return World(core, admin, *ids, {n: pools[pool_name(n)] for n in counts}, pools["pool-sla"])


def offering_with_vms(world: World, name: str, vms: int, pool: str) -> list[str]:
    """A dummy provider and an offering of their own, and ``vms`` VMs on ``pool`` assigned
    to it, made through the use cases (a few hundred per transaction, which only speeds up
    the set-up)."""
    core, admin = world.core, world.admin
    with core.scope(admin) as s:
        provider = backup_providers.add(s, name=name, driver="dummy").id
        offering = offerings.import_offering(
            s, name=name, zone="zone1", provider=provider, external_id="dummy-gold", rpo="24h"
        ).id
    ids: list[str] = []
    for start in range(0, vms, 500):
        with core.scope(admin) as s:
            for i in range(start, min(vms, start + 500)):
                vm = inventory.register_vm(
                    s,
                    name=f"{name}-vm{i}",
                    account="tenant",
                    zone="zone1",
                    host="kvm1",
                    volumes=[{"pool": pool, "size": 10 * GiB}],
                )
                assignments.assign(s, vm.id, offering)
                ids.append(vm.id)
    return ids


def enqueue(core: Core, actor: Actor, vm_ids: list[str]) -> list[str]:
    """One backup per VM, each in its own transaction as one API request would make it."""
    job_ids = []
    for vm_id in vm_ids:
        with core.scope(actor) as s:
            job_ids.append(backups.create_backup(s, vm_id).id)
    return job_ids


def job_states(core: Core, ids: list[str]) -> dict[str, int]:
    states: dict[str, int] = defaultdict(int)
    with core.db.engine.connect() as c:
        # In slices: the dispatcher asks about tens of thousands of jobs.
        for start in range(0, len(ids), 10_000):
            rows = c.execute(
                sa.select(Job.state, sa.func.count())
                .where(Job.id.in_(ids[start : start + 10_000]))
                .group_by(Job.state)
            ).all()
            for state, n in rows:
                states[JobState(state).value] += n
    return dict(states)


def all_done(core: Core, ids: list[str]) -> bool:
    states = job_states(core, ids)
    if states.get("failed") or states.get("cancelled"):
        raise RuntimeError(f"some benchmark jobs did not succeed: {states}")
    return states.get("succeeded", 0) == len(ids)


def last_finished(core: Core, ids: list[str]) -> datetime:
    with core.db.engine.connect() as c:
        return c.execute(sa.select(sa.func.max(Job.finished_at)).where(Job.id.in_(ids))).scalar_one()


def distinct_workers(core: Core, ids: list[str]) -> int:
    with core.db.engine.connect() as c:
        return c.execute(
            sa.select(sa.func.count(sa.distinct(Job.leased_by))).where(Job.id.in_(ids))
        ).scalar_one()


# -- ours ----------------------------------------------------------------------------------------


def start_ours(world: World, settings: Settings, procs: Processes, counts: tuple[int, ...]) -> None:
    """``max(counts)`` ``backupctl worker`` processes; worker i consumes the pool queue of
    every count above i (and the default queue, as every worker does)."""
    env = worker_env(settings)
    for i in range(max(counts)):
        queues = ",".join(routing.pool_queue(world.pool_ids[n]) for n in counts if n > i)
        procs.start(
            f"ours{i}",
            [sys.executable, "-m", "api.cli.main", "worker", "--queues", queues, *OURS_WORKER_FLAGS],
            env,
        )


def warm_ours(world: World, procs: Processes, counts: tuple[int, ...]) -> None:
    core, top = world.core, max(counts)
    t0 = time.monotonic()
    warm = offering_with_vms(world, "warm", WARM_VMS * top, pool_name(top))
    warm_up(
        lambda ids: enqueue(core, world.admin, ids),
        lambda ids: all_done(core, ids),
        lambda ids: distinct_workers(core, ids),
        warm,
        top,
        procs,
        what=f"{top} orchestrator worker(s)",
    )
    log(f"ours  {top} worker(s) started and warm in {time.monotonic() - t0:.1f}s")


def measure_ours(
    world: World, procs: Processes, vm_ids: list[str], n: int, touch_vms: list[str]
) -> tuple[float, float]:
    """Jobs per second on ``n`` workers, and how fast the enqueueing alone went meanwhile.

    First, off the clock, a few jobs on the same queue (``touch_vms``, one each): the
    workers sat idle while other configurations ran, and every setup starts its clock from
    workers that have just run a job. Without it the cold start weighs most on the
    shortest runs, the bare ones, which flattered ``overhead``."""
    core, jobs = world.core, len(vm_ids)
    touched = enqueue(core, world.admin, touch_vms)
    wait_for(lambda: all_done(core, touched), 120, f"jobs before the clock on {n} worker(s)", procs)
    t0 = datetime.now(UTC)
    ids = enqueue(core, world.admin, vm_ids)
    enqueued = (datetime.now(UTC) - t0).total_seconds()
    # Polled coarsely: the figure comes from the rows' own finish times.
    wait_for(lambda: all_done(core, ids), 600, f"{jobs} backups on {n} worker(s)", procs, every=0.1)
    seconds = (last_finished(core, ids) - t0).total_seconds()
    used = distinct_workers(core, ids)
    if used > n:
        raise RuntimeError(f"{used} worker processes ran the jobs meant for {n}")
    log(
        f"ours  {n} worker(s): {jobs} jobs in {seconds:.2f}s = {jobs / seconds:.0f}/s"
        f" (enqueueing took {enqueued:.2f}s of it; {used} processes ran them)"
    )
    return jobs / seconds, jobs / enqueued


def warm_up(
    send: Callable[[list[str]], list[str]],
    done: Callable[[list[str]], bool],
    workers: Callable[[list[str]], int],
    vms: list[str],
    n: int,
    procs: Processes,
    what: str,
    timeout: float = 120.0,
) -> None:
    """Until every one of ``n`` worker processes has run a job: the first job of a process
    pays for its imports and connections, which no steady state pays. Bounded by time, not
    rounds: a process still starting while the others drain round after round in a
    fraction of a second would otherwise be given up on (the bare workers were)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    round_ = 0
    while time.monotonic() < deadline:
        # Two halves in turn: a VM's next backup waits until its last one ended.
        ids = send(vms[: 4 * n] if round_ % 2 == 0 else vms[4 * n : 8 * n])
        wait_for(lambda ids=ids: done(ids), timeout, f"warm-up jobs on {what}", procs)
        seen.extend(ids)
        if workers(seen) >= n:
            return
        round_ += 1
        time.sleep(0.1)
    raise RuntimeError(f"only {workers(seen)} of {what} ran a warm-up job in {timeout:.0f}s")


# -- bare Celery and the durable floor -------------------------------------------------------------


def bare_queue(n: int) -> str:
    return f"bare.work{n}"


def bare_worker_queues(i: int, counts: tuple[int, ...]) -> str:
    # Two queues at least, as ours consumes the default queue beside its pools'.
    return ",".join([BARE_DEFAULT_QUEUE, *(bare_queue(n) for n in counts if n > i)])


def start_bare(settings: Settings, procs: Processes, counts: tuple[int, ...]) -> None:
    """``max(counts)`` workers of the bare app, queues as ``start_ours`` gives them."""
    env = worker_env(settings)
    for i in range(max(counts)):
        procs.start(
            f"bare{i}",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "benchmarks._bare_celery:app",
                "worker",
                f"--queues={bare_worker_queues(i, counts)}",
                f"--hostname=bare{i}@%h",
                *BARE_WORKER_FLAGS,
            ],
            env,
        )


@dataclass
class BareTask:
    """A bare app's task as one setup runs it."""

    label: str
    name: str
    # The producer's per-job work, given the job's token and queue: called for each job
    # just before its message is published, it returns the message's arguments.
    make_args: Callable[[str, str], tuple[Any, ...]]


class BareClient:
    """Publishes to the bare app and reads what its tasks count in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.sent = 0

    def reset(self) -> None:
        self.client.delete(bare.DONE_KEY, bare.LAST_KEY, bare.PIDS_KEY)
        self.sent = 0

    def send(self, task: BareTask, queue: str, tokens: list[str]) -> list[str]:
        with bare.app.producer_or_acquire() as producer:
            for token in tokens:
                bare.app.send_task(
                    task.name, args=task.make_args(token, queue), queue=queue, producer=producer
                )
        self.sent += len(tokens)
        return tokens

    def done(self) -> bool:
        return int(self.client.get(bare.DONE_KEY) or 0) >= self.sent

    def processes(self) -> int:
        return int(self.client.scard(bare.PIDS_KEY))

    def last_ended(self) -> float:
        return float(self.client.get(bare.LAST_KEY) or 0)


def bare_tasks(db: Any) -> dict[str, BareTask]:
    """The noop, and the durable floor, whose producer inserts each job's row (one committed
    transaction, raw psycopg2) before publishing its id."""
    return {
        "bare": BareTask("bare", bare.TASK_NAME, lambda token, _queue: (token,)),
        "floor": BareTask(
            "floor", bare.DURABLE_TASK_NAME, lambda token, queue: (bare.insert_job(db, token, queue),)
        ),
    }


def warm_bare(client: BareClient, tasks: dict[str, BareTask], procs: Processes, top: int) -> None:
    """Each task on every process: the durable one opens the process's database connection."""
    t0 = time.monotonic()
    for task in tasks.values():
        client.reset()
        warm_up(
            partial(client.send, task, bare_queue(top)),
            lambda _ids: client.done(),
            lambda _ids: client.processes(),
            [f"warm{i}" for i in range(8 * top)],
            top,
            procs,
            what=f"{top} bare Celery worker(s) with {task.name}",
        )
    log(f"bare  {top} worker(s) started and warm in {time.monotonic() - t0:.1f}s")


def measure_bare(client: BareClient, task: BareTask, procs: Processes, jobs: int, n: int) -> float:
    """Jobs per second of ``task`` on ``n`` of the bare app's workers, after a few off the
    clock as ``measure_ours`` runs them."""
    client.reset()
    client.send(task, bare_queue(n), [f"touch{i}" for i in range(TOUCH_JOBS * n)])
    wait_for(client.done, 120, f"{task.label} tasks before the clock on {n} worker(s)", procs)
    client.reset()
    tokens = [f"job{i}" for i in range(jobs)]
    t0 = time.time()
    client.send(task, bare_queue(n), tokens)
    published = time.time() - t0
    wait_for(client.done, 600, f"{jobs} {task.label} tasks on {n} worker(s)", procs, every=0.01)
    seconds = client.last_ended() - t0
    used = client.processes()
    if used > n:
        raise RuntimeError(f"{used} worker processes ran the {task.label} tasks meant for {n}")
    log(
        f"{task.label:<5} {n} worker(s): {jobs} jobs in {seconds:.2f}s = {jobs / seconds:.0f}/s"
        f" (publishing took {published:.2f}s of it; {used} processes ran them)"
    )
    return jobs / seconds


def check_durable_floor(db: Any) -> None:
    with db, db.cursor() as cur:
        cur.execute(
            "SELECT state, count(*) FROM floor_job WHERE kind = %s GROUP BY state", (bare.DURABLE_KIND,)
        )
        states = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM floor_restore_point")
        (points,) = cur.fetchone()
    if set(states) != {"succeeded"} or points != states["succeeded"]:
        raise RuntimeError(f"durable floor jobs did not all succeed: {states}, {points} restore points")


# -- the dispatcher ----------------------------------------------------------------------------------


def plant(world: World, planned: int, name: str) -> list[str]:
    """``planned`` VMs under an offering of their own, each with one SLA backup planned for
    now, as ``planning.replan`` stores them; returns the jobs' ids. Bulk-inserted: this is
    the setup, not the figure."""
    core = world.core
    with core.scope(world.admin) as s:
        provider = backup_providers.add(s, name=name, driver="dummy").id
        offering = offerings.import_offering(
            s, name=name, zone="zone1", provider=provider, external_id="dummy-gold", rpo="24h"
        ).id
    planted: list[str] = []
    now = datetime.now(UTC)
    due = now - timedelta(seconds=1)
    with core.db.engine.begin() as c:
        for start in range(0, planned, 10_000):
            chunk = range(start, min(planned, start + 10_000))
            vm_ids = [new_id() for _ in chunk]
            c.execute(
                sa.insert(VirtualMachine.__table__),
                [
                    {
                        "id": vm_id,
                        "name": f"{name}-vm{i}",
                        "account_id": world.account_id,
                        "zone_id": world.zone_id,
                        "host_id": world.host_id,
                        "state": "Running",
                        "backup_offering_id": offering,
                        "details": {},
                        "created_at": now,
                    }
                    for i, vm_id in zip(chunk, vm_ids, strict=True)
                ],
            )
            c.execute(
                sa.insert(Volume.__table__),
                [
                    {
                        "id": new_id(),
                        "name": f"ROOT-{name}-vm{i}",
                        "vm_id": vm_id,
                        "pool_id": world.sla_pool_id,
                        "type": VolumeType.ROOT,
                        "device_id": 0,
                        "size": 10 * GiB,
                        "path": f"/srv/pool-sla/{vm_id}-0.qcow2",
                        "format": "qcow2",
                        "created_at": now,
                    }
                    for i, vm_id in zip(chunk, vm_ids, strict=True)
                ],
            )
            job_ids = [new_id() for _ in chunk]
            c.execute(
                sa.insert(Job.__table__),
                [
                    {
                        "id": job_id,
                        "kind": JobKind.BACKUP,
                        "state": JobState.PLANNED,
                        "account_id": world.account_id,
                        "subject_type": "vm",
                        "subject_id": vm_id,
                        "queue": routing.pool_queue(world.sla_pool_id),
                        "params": {
                            "origin": "sla",
                            "reason": "benchmark",
                            "late": False,
                            "expected_end": (due + timedelta(minutes=5)).isoformat(),
                        },
                        "not_before": due,
                        "deadline": now + timedelta(hours=24),
                        "attempts": 0,
                        "max_attempts": 3,
                        "idempotency_key": f"sla:{job_id}",
                        "progress_done": 0,
                        "progress_total": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for job_id, vm_id in zip(job_ids, vm_ids, strict=True)
                ],
            )
            planted += job_ids
        c.execute(sa.text("ANALYZE"))
    return planted


class Progress:
    """Says every 30 s how far ``release_due`` got: a run of 100 000 takes many minutes, and
    one cut short (the database restarted) still tells its rate."""

    every = 30.0

    def __init__(self, core: Core, planned: int, started: float) -> None:
        self.core = core
        self.planned = planned
        self.started = started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with self.core.db.engine.connect() as c:
                    left = c.execute(
                        sa.select(sa.func.count()).select_from(Job).where(Job.state == JobState.PLANNED)
                    ).scalar_one()
            except sa.exc.SQLAlchemyError as exc:
                log(f"dispatcher: progress unknown: {exc}".splitlines()[0])
                continue
            done, seconds = self.planned - left, time.monotonic() - self.started
            log(
                f"dispatcher: {done} of {self.planned} released after {seconds:.0f}s = {done / seconds:.0f}/s"
            )


def measure_dispatcher(world: World, broker: redis.Redis, planned: int, name: str) -> float:
    core = world.core
    t0 = time.monotonic()
    job_ids = plant(world, planned, name)
    log(f"dispatcher: {planned} planned jobs inserted in {time.monotonic() - t0:.1f}s")
    seconds = 0.0
    with Progress(core, planned, time.monotonic()):
        for _round in range(5):
            t0 = time.monotonic()
            try:
                planning.release_due(core)
                seconds += time.monotonic() - t0
                break
            except sa.exc.OperationalError as exc:
                # Other test suites restart this PostgreSQL now and then. The dispatcher's
                # next round would release the rest; so does this, outside the clock.
                seconds += time.monotonic() - t0
                log(f"dispatcher: database lost after {seconds:.0f}s ({str(exc).splitlines()[0]}); resuming")
                wait_for_database(core)
    queued = job_states(core, job_ids).get(JobState.QUEUED.value, 0)
    with core.db.engine.connect() as c:
        left = c.execute(
            sa.select(sa.func.count()).select_from(Job).where(Job.state == JobState.PLANNED)
        ).scalar_one()
    rate = planned / seconds
    log(f"dispatcher: release_due queued {queued} of {planned} in {seconds:.2f}s = {rate:.0f}/s")
    messages = drain(broker, routing.pool_queue(world.sla_pool_id))
    if queued != planned or left:
        raise RuntimeError(f"release_due queued {queued} of {planned} planned jobs ({left} still planned)")
    if messages != planned:
        raise RuntimeError(f"release_due published {messages} messages for {planned} jobs")
    return rate


def measure_release_floor(db: Any, broker: redis.Redis, planned: int) -> float:
    """The bulk-release floor: ``planned`` job rows in one transaction, then a message per
    job as ours publishes it (the same task options), on one producer."""
    limit = TIME_LIMITS[JobKind.BACKUP]
    t0 = time.monotonic()
    job_ids = bare.insert_jobs(db, [f"sla-vm{i}" for i in range(planned)], RELEASE_QUEUE)
    inserted = time.monotonic() - t0
    with bare.app.producer_or_acquire() as producer:
        for job_id in job_ids:
            bare.app.send_task(
                bare.DURABLE_TASK_NAME,
                args=(job_id,),
                queue=RELEASE_QUEUE,
                producer=producer,
                soft_time_limit=int(limit.total_seconds()),
                time_limit=int((limit + HARD_LIMIT_GRACE).total_seconds()),
            )
    seconds = time.monotonic() - t0
    rate = planned / seconds
    log(
        f"release floor: {planned} rows and messages in {seconds:.2f}s = {rate:.0f}/s"
        f" (inserting took {inserted:.2f}s of it)"
    )
    messages = drain(broker, RELEASE_QUEUE)
    if messages != planned:
        raise RuntimeError(f"the release floor published {messages} messages for {planned} jobs")
    return rate


def drain(broker: redis.Redis, queue: str) -> int:
    """How many messages wait in ``queue``, which no worker consumes; then deleted, so later
    rounds find Redis as this one did. Only the queue's own keys go: the workers' bindings
    stay."""
    # Kombu keeps a queue's messages in a list per priority: the queue's name, and its name
    # with a priority suffix.
    keys = list(broker.scan_iter(match=f"{queue}*"))
    messages = sum(int(broker.llen(key)) for key in keys)
    memory = broker.info("memory")["used_memory_human"]
    log(f"  {messages} messages waited in {queue}; Redis used {memory}")
    if keys:
        broker.delete(*keys)
    return messages


def wait_for_database(core: Core, timeout: float = 120.0) -> None:
    core.db.engine.dispose()
    deadline = time.monotonic() + timeout
    while True:
        try:
            with core.db.engine.connect() as c:
                c.execute(sa.text("SELECT 1"))
            return
        except sa.exc.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


# -- the run ---------------------------------------------------------------------------------------


@contextmanager
def schema() -> Iterator[str]:
    name = f"bench_q_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    sep = "&" if "?" in POSTGRES else "?"
    try:
        yield f"{POSTGRES}{sep}options=-csearch_path%3D{name}"
    finally:
        # Again for a while if the database is restarting (other test suites restart it).
        for attempt in range(30):
            try:
                with admin.begin() as c:
                    c.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
                break
            except sa.exc.OperationalError:
                if attempt == 29:
                    log(f"could not drop schema {name}; drop it by hand")
                    raise
                time.sleep(1)
        admin.dispose()


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    # Through SystemExit, so every ``finally`` stops the workers and drops the schema.
    raise SystemExit(143)


def rotations(counts: tuple[int, ...], rounds: int) -> list[list[str]]:
    """Each round's order of configurations. A worker count's three setups run back to back,
    so their ratios compare neighbouring moments, and so do the dispatcher and its floor.
    Between rounds both the order of these groups and the order inside each group turn, so
    every configuration runs early in some rounds and late in others, and first or last in
    its group."""
    groups = [[f"{setup}:{n}" for setup in PER_COUNT] for n in counts] + [list(ONCE)]
    return [
        [label for group in turn(groups, r * len(groups) // rounds) for label in turn(group, r)]
        for r in range(rounds)
    ]


def turn(items: list[Any], k: int) -> list[Any]:
    k %= len(items)
    return items[k:] + items[:k]


def describe_baselines(broker: redis.Redis, db: Any, counts: tuple[int, ...]) -> dict[str, Any]:
    """Versions and flags of each compared setup, as this run used them."""
    with db, db.cursor() as cur:
        cur.execute("SELECT current_setting('server_version'), current_setting('synchronous_commit')")
        postgresql, synchronous_commit = cur.fetchone()
    bare_celery = {
        "celery": version("celery"),
        "kombu": version("kombu"),
        "redis_server": broker.info("server")["redis_version"],
        "redis_py": version("redis"),
        "task": bare.TASK_NAME,
        "worker_command": "python -m celery -A benchmarks._bare_celery:app worker",
        "worker_flags": list(BARE_WORKER_FLAGS),
        "worker_queues": {f"worker{i}": bare_worker_queues(i, counts) for i in range(max(counts))},
        "delivery_settings": DELIVERY_SETTINGS,
        "publish": "send_task on one producer, one message per job",
    }
    postgres = {
        "postgresql": postgresql,
        "synchronous_commit": synchronous_commit,
        "psycopg2": psycopg2.__version__,
    }
    return {
        "bare_celery": bare_celery,
        "durable_floor": {
            **bare_celery,
            **postgres,
            "task": bare.DURABLE_TASK_NAME,
            "commits_per_job": 3,
            "sql": "producer: INSERT job row; task: UPDATE ... WHERE state = 'queued' RETURNING,"
            " then UPDATE + INSERT result row",
        },
        "bulk_release_floor": {
            **postgres,
            "celery": version("celery"),
            "kombu": version("kombu"),
            "redis_server": bare_celery["redis_server"],
            "redis_py": version("redis"),
            "sql": "INSERT one job row per job (no result row) by psycopg2.extras.execute_values,"
            " in one transaction",
            "rows_per_insert": bare.RELEASE_PAGE,
            "publish": "send_task on one producer, one message per job, the time limits ours sends",
            "queue": RELEASE_QUEUE,
        },
    }


@dataclass
class Bench:
    """What the rounds share: the world, the running workers, the connections."""

    world: World
    procs: Processes
    broker: redis.Redis
    db: Any
    jobs: int
    planned: int
    batches: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    touch_vms: dict[int, list[str]] = field(default_factory=dict)
    client: BareClient | None = None
    tasks: dict[str, BareTask] = field(default_factory=dict)

    def prepare(self, settings: Settings, counts: tuple[int, ...], rounds: int) -> None:
        """The VMs of every round, then every worker process, started and warm."""
        t0 = time.monotonic()
        # Every (round, count) its own VMs and dummy provider, so every measurement takes
        # full backups into an empty back end.
        self.batches = {
            (r, n): offering_with_vms(self.world, f"r{r}w{n}", self.jobs, pool_name(n))
            for r in range(rounds)
            for n in counts
        }
        # Reused each round: their jobs run off the clock, into whatever back end.
        self.touch_vms = {
            n: offering_with_vms(self.world, f"touch{n}", TOUCH_JOBS * n, pool_name(n)) for n in counts
        }
        made = self.jobs * len(self.batches)
        log(f"setup: {made} VMs registered and assigned in {time.monotonic() - t0:.1f}s")
        start_ours(self.world, settings, self.procs, counts)
        start_bare(settings, self.procs, counts)
        warm_ours(self.world, self.procs, counts)
        self.client = BareClient(self.broker)
        self.tasks = bare_tasks(self.db)
        warm_bare(self.client, self.tasks, self.procs, max(counts))

    def measure(self, label: str, round_: int, samples: dict[str, list[float]]) -> None:
        """One configuration (``setup:count``, or a setup measured once a round), its rate
        appended to ``samples[label]``."""
        setup, _, count = label.partition(":")
        n = int(count or 0)
        if setup == "ours":
            vm_ids = self.batches[round_, n]
            rate, enqueue_rate = measure_ours(self.world, self.procs, vm_ids, n, self.touch_vms[n])
            samples[f"enqueue:{count}"].append(enqueue_rate)
        elif setup in self.tasks:
            assert self.client is not None
            rate = measure_bare(self.client, self.tasks[setup], self.procs, self.jobs, n)
        elif setup == "dispatcher":
            rate = measure_dispatcher(self.world, self.broker, self.planned, f"sla{round_}")
        elif setup == "release_floor":
            rate = measure_release_floor(self.db, self.broker, self.planned)
        else:
            raise ValueError(f"unknown configuration {label!r}")
        samples[label].append(rate)


def run(jobs: int, planned: int, counts: tuple[int, ...], rounds: int) -> dict[str, Any]:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    broker = redis.Redis.from_url(REDIS)
    broker.ping()
    broker.flushdb()
    bare.app.conf.update(broker_url=REDIS)
    home = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    (home / "logs").mkdir()
    procs = Processes(home / "logs")
    atexit.register(procs.stop_all)
    order = rotations(counts, rounds)
    samples: dict[str, list[float]] = defaultdict(list)
    try:
        with schema() as url:
            settings = Settings(home=home / "home", database_url=url, broker_url=REDIS)
            core = build_core(settings, runner=celery_runner(settings))
            db = psycopg2.connect(bare.libpq_url(url))
            try:
                world = build_world(core, counts)
                with db, db.cursor() as cur:
                    cur.execute(bare.DURABLE_DDL)
                baselines = describe_baselines(broker, db, counts)
                bench = Bench(world, procs, broker, db, jobs, planned)
                bench.prepare(settings, counts, rounds)
                for r, labels in enumerate(order):
                    log(f"round {r + 1} of {rounds}: {' '.join(labels)}")
                    for label in labels:
                        bench.measure(label, r, samples)
                check_durable_floor(db)
            finally:
                procs.stop_all()
                db.close()
                core.db.dispose()
    except Exception:
        for _, path in procs.started:
            log(f"--- {path.name}\n{Processes.tail(path)}")
        raise
    finally:
        procs.stop_all()
        broker.flushdb()
        broker.close()
        shutil.rmtree(home, ignore_errors=True)
    return {**summarize(samples, counts), "rounds": rounds, "order": order, "baselines": baselines}


def spread(values: list[float], digits: int) -> dict[str, float]:
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def summarize(samples: dict[str, list[float]], counts: tuple[int, ...]) -> dict[str, Any]:
    """Each figure the median of its rounds, each ratio one of medians (as printed, so a
    ratio equals the quotient of the figures shown beside it); ``stats`` has each figure's
    min, median and max, and each ratio's over the rounds' own ratios."""
    rates = {
        "jobs_per_s": "ours",
        "bare_celery_jobs_per_s": "bare",
        "durable_floor_jobs_per_s": "floor",
        "enqueue_jobs_per_s": "enqueue",
    }
    ratios = {"overhead": ("bare", "ours"), "overhead_vs_durable_floor": ("floor", "ours")}
    median = {label: round(statistics.median(values), 1) for label, values in samples.items()}
    result: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    for key, setup in rates.items():
        result[key] = {str(n): median[f"{setup}:{n}"] for n in counts}
        stats[key] = {str(n): spread(samples[f"{setup}:{n}"], 1) for n in counts}
    for key, (over, under) in ratios.items():
        result[key] = {str(n): round(median[f"{over}:{n}"] / median[f"{under}:{n}"], 2) for n in counts}
        stats[key] = {
            str(n): spread(
                [a / b for a, b in zip(samples[f"{over}:{n}"], samples[f"{under}:{n}"], strict=True)], 2
            )
            for n in counts
        }
    result["dispatcher_jobs_per_s"] = median["dispatcher"]
    result["release_floor_jobs_per_s"] = median["release_floor"]
    result["dispatcher_overhead_vs_release_floor"] = round(median["release_floor"] / median["dispatcher"], 2)
    stats["dispatcher_jobs_per_s"] = spread(samples["dispatcher"], 1)
    stats["release_floor_jobs_per_s"] = spread(samples["release_floor"], 1)
    stats["dispatcher_overhead_vs_release_floor"] = spread(
        [a / b for a, b in zip(samples["release_floor"], samples["dispatcher"], strict=True)], 2
    )
    return {**result, "stats": stats}


def report(result: dict[str, Any], planned: int) -> None:
    """The figures as a table: median [min-max] over the rounds."""
    stats = result["stats"]

    def cell(key: str, n: str, unit: str = "") -> str:
        s = stats[key][n]
        return f"{s['median']}{unit} [{s['min']}-{s['max']}]"

    log(f"medians [min-max] over {result['rounds']} rounds; a ratio is of the medians")
    columns = ("ours/s", "bare/s", "overhead", "floor/s", "vs floor")
    log(f"{'workers':>8} " + " ".join(f"{c:>22}" for c in columns))
    for n in result["jobs_per_s"]:
        cells = (
            cell("jobs_per_s", n),
            cell("bare_celery_jobs_per_s", n),
            f"{result['overhead'][n]}x",
            cell("durable_floor_jobs_per_s", n),
            f"{result['overhead_vs_durable_floor'][n]}x",
        )
        log(f"{n:>8} " + " ".join(f"{c:>22}" for c in cells))
    d, f = stats["dispatcher_jobs_per_s"], stats["release_floor_jobs_per_s"]
    log(
        f"dispatcher release_due: {d['median']} [{d['min']}-{d['max']}] jobs/s;"
        f" bulk-release floor: {f['median']} [{f['min']}-{f['max']}] jobs/s;"
        f" {result['dispatcher_overhead_vs_release_floor']}x, over {planned} planned jobs a round"
    )
    log(f"({os.cpu_count()} CPUs, shared by the workers, PostgreSQL, Redis and the enqueueing)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, help="backups per worker count and round (M)")
    parser.add_argument("--planned", type=int, help="planned jobs for the dispatcher, per round (K)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the order rotated (default: 3)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    jobs = args.jobs or (200 if args.quick else 2000)
    planned = args.planned or (500 if args.quick else 30_000)
    result = run(jobs, planned, COUNTS, args.rounds)
    report(result, planned)
    if args.json:
        extra = {"jobs": jobs, "planned_jobs": planned, "quick": args.quick, "cpus": os.cpu_count()}
        print(json.dumps({**result, **extra}))


if __name__ == "__main__":
    main()
