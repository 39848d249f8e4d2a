"""Jobs per second through the distributed mode: real Redis, real PostgreSQL, real workers.

Figures, each beside a baseline in the same run:

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
  ``planning.release_due`` through the Celery runner (no worker consumes them).

Redis database 12 (``BACKUP_BENCH_REDIS_URL``) is flushed before and after; each run makes a
PostgreSQL schema of its own (``BACKUP_BENCH_POSTGRES_URL``) and drops it at the end.

    .venv/bin/python benchmarks/queue.py --quick --json     # M = 200, K = 500: under a minute
    .venv/bin/python benchmarks/queue.py                    # M = 2000, K = 100000: about 25 min

``--quick`` plans only 500 jobs: ``release_due`` manages about 300 a second on two cores,
so 20 000 alone would take a minute.
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
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager, suppress  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402

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
from workers.runner import celery_runner  # noqa: E402

POSTGRES = os.environ.get("BACKUP_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BACKUP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
COUNTS = (1, 2, 4)
GiB = 2**30
BARE_QUEUE = "bare.work"
WARM_VMS = 16  # per worker process, enough for a few warm-up rounds


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
    pool_id: str
    host_id: str
    account_id: str


def build_world(core: Core) -> World:
    accounts.bootstrap(core)
    admin = accounts.admin_actor(core)
    with core.scope(admin) as s:
        zone = inventory.create_zone(s, "zone1")
        # Limits far above the number of workers: this measures the queue, not throttling.
        host = inventory.create_host(
            s, zone="zone1", name="kvm1", hypervisor="kvm", max_concurrent_backups=10_000
        )
        pool = inventory.create_pool(
            s, zone="zone1", name="pool1", path="/srv/pool1", max_concurrent_backups=10_000
        )
        tenant = accounts.create_account(s, "tenant")
        ids = zone.id, pool.id, host.id, tenant.id
    return World(core, admin, *ids)


def offering_with_vms(world: World, name: str, vms: int) -> list[str]:
    """A dummy provider and an offering of their own, and ``vms`` VMs assigned to it, made
    through the use cases (a few hundred per transaction, which only speeds up the set-up)."""
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
                    volumes=[{"pool": "pool1", "size": 10 * GiB}],
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
    with core.db.engine.connect() as c:
        rows = c.execute(
            sa.select(Job.state, sa.func.count()).where(Job.id.in_(ids)).group_by(Job.state)
        ).all()
    return {JobState(state).value: n for state, n in rows}


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


def measure_ours(
    world: World, settings: Settings, procs: Processes, jobs: int, counts: tuple[int, ...]
) -> tuple[dict[str, float], dict[str, float]]:
    """Jobs per second per worker count, and how fast the enqueueing alone went meanwhile."""
    core = world.core
    queue = routing.pool_queue(world.pool_id)
    t0 = time.monotonic()
    warm = offering_with_vms(world, "warm", WARM_VMS * max(counts))
    batches = {n: offering_with_vms(world, f"bench{n}", jobs) for n in counts}
    log(
        f"setup: {len(warm) + jobs * len(counts)} VMs registered and assigned in {time.monotonic() - t0:.1f}s"
    )
    env = worker_env(settings)
    results: dict[str, float] = {}
    enqueue_rates: dict[str, float] = {}
    running = 0
    for n in counts:
        while running < n:
            procs.start(
                f"worker{running}",
                [
                    sys.executable,
                    "-m",
                    "api.cli.main",
                    "worker",
                    "--queues",
                    queue,
                    "--concurrency",
                    "1",
                    "--loglevel",
                    "warning",
                ],
                env,
            )
            running += 1
        t_ready = time.monotonic()
        warm_up(
            lambda ids: enqueue(core, world.admin, ids),
            lambda ids: all_done(core, ids),
            lambda ids: distinct_workers(core, ids),
            warm,
            n,
            procs,
            what=f"{n} orchestrator worker(s)",
        )
        log(f"ours  {n} worker(s) started and warm in {time.monotonic() - t_ready:.1f}s")
        vm_ids = batches[n]
        t0 = datetime.now(UTC)
        ids = enqueue(core, world.admin, vm_ids)
        enqueued = (datetime.now(UTC) - t0).total_seconds()
        # Polled coarsely: the figure comes from the rows' own finish times.
        wait_for(
            lambda ids=ids: all_done(core, ids), 600, f"{jobs} backups on {n} worker(s)", procs, every=0.1
        )
        seconds = (last_finished(core, ids) - t0).total_seconds()
        results[str(n)] = round(jobs / seconds, 1)
        enqueue_rates[str(n)] = round(jobs / enqueued, 1)
        log(
            f"ours  {n} worker(s): {jobs} jobs in {seconds:.2f}s = {jobs / seconds:.0f}/s"
            f" (enqueueing took {enqueued:.2f}s of it)"
        )
    procs.stop_all()
    return results, enqueue_rates


def warm_up(
    send: Callable[[list[str]], list[str]],
    done: Callable[[list[str]], bool],
    workers: Callable[[list[str]], int],
    vms: list[str],
    n: int,
    procs: Processes,
    what: str,
) -> None:
    """Until every one of ``n`` worker processes has run a job: the first job of a process
    pays for its imports and connections, which no steady state pays."""
    seen: list[str] = []
    for round_ in range(WARM_VMS):
        ids = send(vms[: 4 * n] if round_ % 2 == 0 else vms[4 * n : 8 * n])
        wait_for(lambda ids=ids: done(ids), 120, f"warm-up jobs on {what}", procs)
        seen.extend(ids)
        if workers(seen) >= n:
            return
    raise RuntimeError(f"only {workers(seen)} of {what} ran a warm-up job")


# -- bare Celery and the durable floor -------------------------------------------------------------


def measure_bare(
    settings: Settings,
    procs: Processes,
    jobs: int,
    counts: tuple[int, ...],
    task: str,
    make_args: Callable[[str], tuple[Any, ...]],
    label: str = "bare",
) -> dict[str, float]:
    """Jobs per second of the bare Celery app's ``task`` per worker count. ``make_args`` is
    the producer's per-job work: called for each job just before its message is published,
    it returns the message's arguments."""
    from benchmarks import _bare_celery as bare

    client = redis.Redis.from_url(REDIS)
    app = bare.app
    app.conf.broker_url = REDIS
    env = worker_env(settings)

    def send(tokens: list[str]) -> list[str]:
        with app.producer_or_acquire() as producer:
            for token in tokens:
                app.send_task(task, args=make_args(token), queue=BARE_QUEUE, producer=producer)
        return tokens

    sent = 0

    def send_counted(tokens: list[str]) -> list[str]:
        nonlocal sent
        sent += len(tokens)
        return send(tokens)

    def done(_tokens: list[str]) -> bool:
        return int(client.get(bare.DONE_KEY) or 0) >= sent

    client.delete(bare.DONE_KEY, bare.LAST_KEY)
    results: dict[str, float] = {}
    running = 0
    for n in counts:
        while running < n:
            procs.start(
                f"{label}{running}",
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "benchmarks._bare_celery:app",
                    "worker",
                    f"--queues=bare.default,{BARE_QUEUE}",
                    "--concurrency=1",
                    "--loglevel=WARNING",
                    f"--hostname={label}{running}@%h",
                    "--without-gossip",
                    "--without-mingle",
                ],
                env,
            )
            running += 1
        client.delete(bare.PIDS_KEY)
        t_ready = time.monotonic()
        warm_up(
            send_counted,
            done,
            lambda _ids: int(client.scard(bare.PIDS_KEY)),
            [f"warm{i}" for i in range(8 * n)],
            n,
            procs,
            what=f"{n} {label} Celery worker(s)",
        )
        log(f"{label:<5} {n} worker(s) started and warm in {time.monotonic() - t_ready:.1f}s")
        tokens = [f"job{i}" for i in range(jobs)]
        t0 = time.time()
        send_counted(tokens)
        published = time.time() - t0
        wait_for(
            lambda tokens=tokens: done(tokens),
            600,
            f"{jobs} {label} tasks on {n} worker(s)",
            procs,
            every=0.01,
        )
        seconds = float(client.get(bare.LAST_KEY) or 0) - t0
        results[str(n)] = round(jobs / seconds, 1)
        log(
            f"{label:<5} {n} worker(s): {jobs} jobs in {seconds:.2f}s = {jobs / seconds:.0f}/s"
            f" (publishing took {published:.2f}s of it)"
        )
    procs.stop_all()
    client.close()
    return results


def measure_floor(
    settings: Settings, procs: Processes, jobs: int, counts: tuple[int, ...]
) -> dict[str, float]:
    """The durable floor: ``measure_bare`` with ``bench.durable``, whose producer inserts
    each job's row (one committed transaction, raw psycopg2) before publishing its id."""
    import psycopg2

    from benchmarks import _bare_celery as bare

    db = psycopg2.connect(bare.libpq_url(settings.database_url))
    try:
        with db, db.cursor() as cur:
            cur.execute(bare.DURABLE_DDL)
        results = measure_bare(
            settings,
            procs,
            jobs,
            counts,
            bare.DURABLE_TASK_NAME,
            lambda token: (bare.insert_job(db, token, BARE_QUEUE),),
            label="floor",
        )
        with db, db.cursor() as cur:
            cur.execute("SELECT state, count(*) FROM floor_job GROUP BY state")
            states = dict(cur.fetchall())
            cur.execute("SELECT count(*) FROM floor_restore_point")
            (points,) = cur.fetchone()
    finally:
        db.close()
    if set(states) != {"succeeded"} or points != states["succeeded"]:
        raise RuntimeError(f"durable floor jobs did not all succeed: {states}, {points} restore points")
    return results


# -- the dispatcher ----------------------------------------------------------------------------------


def plant(world: World, planned: int) -> None:
    """``planned`` VMs under an offering of their own, each with one SLA backup planned for
    now, as ``planning.replan`` stores them. Bulk-inserted: this is the setup, not the figure."""
    core = world.core
    with core.scope(world.admin) as s:
        provider = backup_providers.add(s, name="sla", driver="dummy").id
        offering = offerings.import_offering(
            s, name="sla", zone="zone1", provider=provider, external_id="dummy-gold", rpo="24h"
        ).id
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
                        "name": f"sla-vm{i}",
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
                        "name": f"ROOT-sla-vm{i}",
                        "vm_id": vm_id,
                        "pool_id": world.pool_id,
                        "type": VolumeType.ROOT,
                        "device_id": 0,
                        "size": 10 * GiB,
                        "path": f"/srv/pool1/{vm_id}-0.qcow2",
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
                        "queue": routing.pool_queue(world.pool_id),
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
        c.execute(sa.text("ANALYZE"))


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


def measure_dispatcher(world: World, broker: redis.Redis, planned: int) -> float:
    core = world.core
    t0 = time.monotonic()
    plant(world, planned)
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
    with core.db.engine.connect() as c:
        states = dict(
            c.execute(
                sa.select(Job.state, sa.func.count())
                .where(Job.subject_type == "backup", Job.params["origin"].as_string() == "sla")
                .group_by(Job.state)
            ).all()
        )
        left = c.execute(
            sa.select(sa.func.count()).select_from(Job).where(Job.state == JobState.PLANNED)
        ).scalar_one()
    queued = states.get(JobState.QUEUED, 0)
    rate = planned / seconds
    log(f"dispatcher: release_due queued {queued} of {planned} in {seconds:.2f}s = {rate:.0f}/s")
    messages = sum(int(broker.llen(q)) for q in broker.scan_iter("pool.*"))
    memory = broker.info("memory")["used_memory_human"]
    log(f"dispatcher: {messages} messages wait in Redis, which uses {memory}")
    if queued != planned or left:
        raise RuntimeError(f"release_due queued {queued} of {planned} planned jobs ({left} still planned)")
    return round(rate, 1)


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


def run(jobs: int, planned: int, counts: tuple[int, ...]) -> dict[str, Any]:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    broker = redis.Redis.from_url(REDIS)
    broker.ping()
    broker.flushdb()
    home = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    (home / "logs").mkdir()
    procs = Processes(home / "logs")
    atexit.register(procs.stop_all)
    try:
        with schema() as url:
            settings = Settings(home=home / "home", database_url=url, broker_url=REDIS)
            core = build_core(settings, runner=celery_runner(settings))
            try:
                world = build_world(core)
                ours, enqueue_rates = measure_ours(world, settings, procs, jobs, counts)
                broker.flushdb()
                # Imported only now: the Celery app it makes becomes the current one.
                from benchmarks._bare_celery import TASK_NAME as NOOP

                bare = measure_bare(settings, procs, jobs, counts, NOOP, lambda token: (token,))
                broker.flushdb()
                floor = measure_floor(settings, procs, jobs, counts)
                broker.flushdb()
                dispatcher = measure_dispatcher(world, broker, planned)
            finally:
                procs.stop_all()
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
    return {
        "jobs_per_s": ours,
        "bare_celery_jobs_per_s": bare,
        "overhead": {n: round(bare[n] / ours[n], 2) for n in ours},
        "durable_floor_jobs_per_s": floor,
        "overhead_vs_durable_floor": {n: round(floor[n] / ours[n], 2) for n in ours},
        "dispatcher_jobs_per_s": dispatcher,
        "enqueue_jobs_per_s": enqueue_rates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, help="backups per worker count (M)")
    parser.add_argument("--planned", type=int, help="planned jobs for the dispatcher (K)")
    args = parser.parse_args()
    jobs = args.jobs or (200 if args.quick else 2000)
    planned = args.planned or (500 if args.quick else 100_000)
    result = run(jobs, planned, COUNTS)
    log(f"{'workers':>8} {'ours/s':>8} {'bare/s':>8} {'overhead':>9} {'floor/s':>8} {'vs floor':>9}")
    for n in result["jobs_per_s"]:
        log(
            f"{n:>8} {result['jobs_per_s'][n]:>8} {result['bare_celery_jobs_per_s'][n]:>8}"
            f" {result['overhead'][n]:>8}x {result['durable_floor_jobs_per_s'][n]:>8}"
            f" {result['overhead_vs_durable_floor'][n]:>8}x"
        )
    log(f"dispatcher release_due: {result['dispatcher_jobs_per_s']} jobs/s over {planned} planned jobs")
    log(f"({os.cpu_count()} CPUs, shared by the workers, PostgreSQL, Redis and the enqueueing)")
    if args.json:
        extra = {"jobs": jobs, "planned_jobs": planned, "quick": args.quick, "cpus": os.cpu_count()}
        print(json.dumps({**result, **extra}))


if __name__ == "__main__":
    main()
