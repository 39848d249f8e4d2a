"""Fault harness: what a batch of backups loses, doubles or leaves behind when a process,
the broker or the database fails in the middle of it.

For each broker (Redis, RabbitMQ) it starts two ``backupctl worker`` processes and one
``backupctl dispatcher`` against a fresh PostgreSQL schema, reached through a TCP proxy
the harness can cut (``tests/distributed/pgproxy.py``: the shared server is never
restarted). It first times a batch with no fault (the baseline), then, for each fault, a
new batch of N backups, each into a dummy provider of its own, with the fault injected
once the first backups run:

    kill-worker      kill -9 a worker's process group (a replacement is started)
    kill-dispatcher  kill -9 the dispatcher (restarted two seconds later)
    stop-worker      SIGSTOP a worker past its lease, then SIGCONT
    flush            the broker loses its messages (Redis FLUSHDB; RabbitMQ queues purged)
    db-cut           every database connection cut for 2 s
    db-down          the database unreachable for 40 s (8 s with --quick)

Per fault and broker it reports ``lost`` (jobs that did not succeed), ``ran_twice``
(restore points whose back-end work was started by more than one attempt, as the dummy
provider records), ``untracked_backend_copies`` (the provider reconcile),
``stuck`` (restore points left in flight), ``good_without_job`` (BackedUp points whose job
did not succeed) and ``recovery_s`` (the batch's time minus the baseline's). For each
point written twice, ``ran_twice_why`` gives its writers and its job's log, which say why
(a lease judged expired, an attempt that failed and was retried, ...).

Targets: every count 0, except ``ran_twice`` where the fault takes a running attempt for
dead (kill -9 and SIGSTOP of a worker: delivery is at least once). The run exits 1 if a
target is missed.

    .venv/bin/python benchmarks/faults.py --quick --json      # 20 jobs a fault
    .venv/bin/python benchmarks/faults.py --faults kill-worker,flush --brokers redis
    .venv/bin/python benchmarks/faults.py --quick --faults db-down --keep-logs  # logs at info

It needs PostgreSQL (``BACKUP_BENCH_POSTGRES_URL``), Redis (``BACKUP_BENCH_REDIS_URL``,
default database 12, which it flushes) and RabbitMQ (``BACKUP_BENCH_AMQP_URL``).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# ``benchmarks/queue.py`` shares its name with the standard library's ``queue``: this
# script's directory must not come first on the path (Celery imports ``queue``).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import atexit  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager, suppress  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from typing import Any  # noqa: E402

import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from kombu import Connection  # noqa: E402
from kombu.exceptions import ChannelError  # noqa: E402

from benchmarks.queue import (  # noqa: E402
    Processes,
    World,
    _exit_on_sigterm,
    build_world,
    enqueue,
    offering_with_vms,
    pool_name,
    schema,
    worker_env,
)
from orchestrator.bootstrap import build_core  # noqa: E402
from orchestrator.domain.models import Backup, BackupStatus, Job, JobState  # noqa: E402
from orchestrator.engine import joblog, routing  # noqa: E402
from orchestrator.infra.config import Settings  # noqa: E402
from orchestrator.infra.db import Database  # noqa: E402
from orchestrator.usecases import backup_providers, reconciliation  # noqa: E402
from orchestrator.usecases.backups import IN_FLIGHT  # noqa: E402
from providers.dummy import DummyProvider  # noqa: E402
from tests.distributed.pgproxy import Proxy  # noqa: E402
from workers.runner import celery_runner  # noqa: E402

BROKER_URLS = {
    "redis": os.environ.get("BACKUP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
    "rabbitmq": os.environ.get("BACKUP_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
}
FAULTS = ("kill-worker", "kill-dispatcher", "stop-worker", "flush", "db-cut", "db-down")
# Faults that take a running attempt for dead: its work may be done again (at least once).
AT_LEAST_ONCE = {"kill-worker", "stop-worker"}
COUNTS = ("lost", "ran_twice", "untracked_backend_copies", "stuck", "good_without_job")
LEASE_S = 3
BACKUP_S = 0.4  # each dummy backup
WORKERS = 2
GiB = 2**30


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Harness:
    """One broker's processes and world; each fault a batch of its own."""

    broker: str
    world: World
    settings: Settings  # the processes' settings: the database through the proxy
    procs: Processes
    proxy: Proxy
    jobs: int
    down_s: float
    loglevel: str = "warning"
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    dispatcher: subprocess.Popen[bytes] | None = None

    def start_worker(self) -> None:
        argv = [sys.executable, "-m", "api.cli.main", "worker", "--pools", pool_name(1)]
        argv += ["--concurrency", "2", "--loglevel", self.loglevel]
        self.workers.append(self.procs.start(f"{self.broker}-worker", argv, self.env()))

    def start_dispatcher(self) -> None:
        argv = [sys.executable, "-m", "api.cli.main", "dispatcher", "--deliver-every", "0.3"]
        argv += ["--tick", "600", "--loglevel", self.loglevel]
        self.dispatcher = self.procs.start(f"{self.broker}-dispatcher", argv, self.env())

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            **worker_env(s),
            "BACKUP_RETRY_BASE_SECONDS": str(s.retry_base_seconds),
            "BACKUP_LEASE_SECONDS": str(s.lease_seconds),
            "BACKUP_DEFER_SECONDS": str(s.defer_seconds),
            "BACKUP_LOST_MESSAGE_GRACE_SECONDS": str(s.lost_message_grace_seconds),
            "BACKUP_DB_RETRY_SECONDS": str(s.db_retry_seconds),
        }

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """kill -9 a process and its pool; the harness stops expecting it to run."""
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        self.procs.running.remove(proc)

    # -- faults ------------------------------------------------------------------------------
    def kill_worker(self) -> None:
        self.kill(self.workers.pop(0))
        self.start_worker()

    def kill_dispatcher(self) -> None:
        assert self.dispatcher is not None
        self.kill(self.dispatcher)
        time.sleep(2)
        self.start_dispatcher()

    def stop_worker(self) -> None:
        group = self.workers[0].pid
        os.killpg(group, signal.SIGSTOP)
        try:
            time.sleep(LEASE_S + 3)
        finally:
            os.killpg(group, signal.SIGCONT)

    def flush(self) -> None:
        url = BROKER_URLS[self.broker]
        if self.broker == "redis":
            client = redis.Redis.from_url(url)
            client.flushdb()
            client.close()
            return
        # The queues this world's jobs travel on (``default`` is shared with others).
        queues = [routing.pool_queue(self.world.pool_ids[1]), routing.host_queue(self.world.host_id)]
        with Connection(url) as conn:
            for queue in queues:
                channel = conn.channel()
                with suppress(ChannelError):
                    channel.queue_purge(queue)
                channel.close()

    def cut_database(self, seconds: float) -> None:
        self.proxy.cut()
        try:
            time.sleep(seconds)
        finally:
            self.proxy.restore()

    def inject(self, fault: str) -> None:
        faults: dict[str, Callable[[], None]] = {
            "kill-worker": self.kill_worker,
            "kill-dispatcher": self.kill_dispatcher,
            "stop-worker": self.stop_worker,
            "flush": self.flush,
            "db-cut": lambda: self.cut_database(2.0),
            "db-down": lambda: self.cut_database(self.down_s),
        }
        faults[fault]()

    # -- one batch -------------------------------------------------------------------------
    def batch(self, name: str, fault: str | None, timeout: float) -> dict[str, Any]:
        core = self.world.core
        vm_ids = offering_with_vms(self.world, name, self.jobs, pool_name(1))
        with core.scope(self.world.admin) as s:
            backup_providers.find(s, name).config = {"duration_s": BACKUP_S}
        t0 = time.monotonic()
        ids = enqueue(core, self.world.admin, vm_ids)
        if fault is not None:
            self.wait(lambda: self.count(ids, JobState.RUNNING, JobState.SUCCEEDED) > 0, 60)
            self.inject(fault)
        self.wait(lambda: self.count(ids, JobState.SUCCEEDED, JobState.FAILED) == len(ids), timeout)
        elapsed = time.monotonic() - t0
        return {"elapsed_s": elapsed, **self.judge(name, vm_ids, ids)}

    def count(self, ids: list[str], *states: JobState) -> int:
        with self.world.core.db.engine.connect() as c:
            return c.execute(
                sa.select(sa.func.count()).select_from(Job).where(Job.id.in_(ids), Job.state.in_(states))
            ).scalar_one()

    def wait(self, check: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            self.procs.check()
            time.sleep(0.1)
        return False

    def judge(self, provider: str, vm_ids: list[str], ids: list[str]) -> dict[str, Any]:
        core = self.world.core
        with core.scope(self.world.admin) as s:
            rows = list(s.session.scalars(sa.select(Job).where(Job.id.in_(ids))))
            jobs = {j.subject_id: j.state for j in rows}
            points = list(s.session.scalars(sa.select(Backup).where(Backup.vm_id.in_(vm_ids))))
            driver = s.driver(backup_providers.find(s, provider))
            assert isinstance(driver, DummyProvider)
            untracked = reconciliation.reconcile(s, provider).untracked
            doubled = {p.id for p in points if len(driver.writers(p.id)) > 1}
            # Why each doubled point was written twice: its attempts and its job's log.
            why = {
                j.subject_id: {
                    "writers": driver.writers(j.subject_id),
                    "log": [f"{e.level}: {e.message}" for e in joblog.entries(s.session, j.id)],
                }
                for j in rows
                if j.subject_id in doubled
            }
            return {
                "lost": sum(state is not JobState.SUCCEEDED for state in jobs.values()),
                "ran_twice": len(doubled),
                "untracked_backend_copies": len(untracked),
                "stuck": sum(p.status in (*IN_FLIGHT, BackupStatus.RESTORING) for p in points),
                "good_without_job": sum(
                    p.status is BackupStatus.BACKED_UP and jobs.get(p.id) is not JobState.SUCCEEDED
                    for p in points
                ),
                "ran_twice_why": why,
            }


@contextmanager
def harness(
    broker: str, jobs: int, down_s: float, home: Path, procs: Processes, loglevel: str
) -> Iterator[Harness]:
    with schema() as url, Proxy.before(url) as (proxy, proxied):
        settings = Settings(
            home=home / broker,
            database_url=url,
            broker_url=BROKER_URLS[broker],
            retry_base_seconds=0.2,
            lease_seconds=LEASE_S,
            defer_seconds=0.3,
            lost_message_grace_seconds=2.0,
            db_retry_seconds=down_s + 60,
        )
        core = build_core(settings, db=Database(url), runner=celery_runner(settings))
        try:
            world = build_world(core, (1,))
            proxied_settings = replace(settings, database_url=proxied)
            h = Harness(broker, world, proxied_settings, procs, proxy, jobs, down_s, loglevel)
            for _ in range(WORKERS):
                h.start_worker()
            h.start_dispatcher()
            yield h
        finally:
            procs.stop_all()
            core.db.dispose()


def run(
    brokers: list[str], faults: list[str], jobs: int, down_s: float, keep: bool = False
) -> dict[str, Any]:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    home = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    (home / "logs").mkdir()
    procs = Processes(home / "logs")
    atexit.register(procs.stop_all)
    results: dict[str, dict[str, Any]] = {}
    try:
        for broker in brokers:
            if broker == "redis":
                redis.Redis.from_url(BROKER_URLS[broker]).flushdb()
            # Kept logs are read to learn what happened: they say more.
            loglevel = "info" if keep else "warning"
            with harness(broker, jobs, down_s, home, procs, loglevel) as h:
                # The first batch also warms the workers up; the second is the baseline.
                h.batch("warm", None, 120)
                baseline = h.batch("baseline", None, 120)["elapsed_s"]
                log(f"{broker}: baseline {jobs} jobs in {baseline:.1f}s")
                results[broker] = {"baseline_s": round(baseline, 2)}
                for fault in faults:
                    got = h.batch(fault.replace("-", ""), fault, 120 + down_s)
                    got["recovery_s"] = round(max(0.0, got.pop("elapsed_s") - baseline), 2)
                    results[broker][fault] = got
                    log(f"{broker} {fault}: {got}")
    except Exception:
        for _, path in procs.started:
            log(f"--- {path.name}\n{Processes.tail(path)}")
        raise
    finally:
        procs.stop_all()
        if keep:
            log(f"processes' logs kept in {home / 'logs'}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return results


def missed(results: dict[str, Any]) -> list[str]:
    """Every target a run missed, as ``broker fault count=value``."""
    out = []
    for broker, by_fault in results.items():
        for fault, got in by_fault.items():
            if fault == "baseline_s":
                continue
            for key in COUNTS:
                if got[key] and not (key == "ran_twice" and fault in AT_LEAST_ONCE):
                    out.append(f"{broker} {fault} {key}={got[key]}")
    return out


def report(results: dict[str, Any], jobs: int) -> None:
    header = ["broker", "fault", *COUNTS, "recovery_s"]
    rows = [header]
    for broker, by_fault in results.items():
        for fault, got in by_fault.items():
            if fault != "baseline_s":
                rows.append([broker, fault, *(str(got[k]) for k in (*COUNTS, "recovery_s"))])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    log(f"{jobs} jobs per fault")
    for row in rows:
        log("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 jobs a fault, the database down 8 s")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, help="backups per fault (default 200, 20 with --quick)")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated: " + ", ".join(FAULTS))
    parser.add_argument("--brokers", default=",".join(BROKER_URLS), help="comma-separated: redis, rabbitmq")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the processes' logs, at level info (path on stderr)"
    )
    args = parser.parse_args()
    faults = args.faults.split(",")
    brokers = args.brokers.split(",")
    if unknown := (set(faults) - set(FAULTS)) | (set(brokers) - set(BROKER_URLS)):
        parser.error(f"unknown fault or broker: {', '.join(sorted(unknown))}")
    jobs = args.jobs or (20 if args.quick else 200)
    down_s = 8.0 if args.quick else 40.0
    results = run(brokers, faults, jobs, down_s, keep=args.keep_logs)
    report(results, jobs)
    failures = missed(results)
    for failure in failures:
        log(f"target missed: {failure}")
    if args.json:
        doc = {"jobs": jobs, "quick": args.quick, "db_down_s": down_s, "results": results, "missed": failures}
        print(json.dumps(doc))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
