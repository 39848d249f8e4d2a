"""The distributed mode for real: PostgreSQL, Redis, and ``backupctl worker`` /
``backupctl dispatcher`` processes started by the tests.

Redis is reached at ``BACKUP_TEST_REDIS_URL`` (default 127.0.0.1:6379, database 11). Each
test flushes its database, so under ``pytest -n`` each worker takes one of the
``BACKUP_TEST_REDIS_DATABASES`` (default 4) counted up from that one, skipping the
benchmarks' (``BACKUP_BENCH_REDIS_URL``, default 12); workers that share one take turns.
With ``CI=true`` a missing Redis fails the run instead of skipping.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from orchestrator.bootstrap import build_core
from orchestrator.domain.models import Job
from orchestrator.engine.core import Core
from orchestrator.infra.config import Settings
from tests.conftest import IN_CI, postgres_schema
from tests.migrated import MigratedSchema
from tests.shared import machine_lock, worker_index
from workers.runner import celery_runner

REDIS_DATABASE_COUNT = 16  # Redis's default


def redis_urls() -> list[str]:
    """The Redis databases the tests may flush, one URL each."""
    base = urlsplit(os.environ.get("BACKUP_TEST_REDIS_URL", "redis://127.0.0.1:6379/11"))
    bench = urlsplit(os.environ.get("BACKUP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    count = int(os.environ.get("BACKUP_TEST_REDIS_DATABASES", "4"))
    first = int(base.path.strip("/") or 0)
    benchmarks = int(bench.path.strip("/") or 0) if bench.netloc == base.netloc else None
    databases = [db for db in range(first, REDIS_DATABASE_COUNT) if db != benchmarks][:count]
    return [base._replace(path=f"/{db}").geturl() for db in databases or [first]]


@pytest.fixture(scope="session")
def redis_url() -> str:
    """This worker's Redis database."""
    urls = redis_urls()
    return urls[worker_index() % len(urls)]


@pytest.fixture
def database_url(postgres_ready: None) -> Iterator[str]:
    """PostgreSQL only: the distributed mode needs a database all processes share."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        if IN_CI:
            pytest.fail(f"Redis is required in CI but unreachable at {redis_url}: {exc}")
        pytest.skip(f"Redis unreachable at {redis_url}: {exc}")
    with machine_lock(f"redis {redis_url}"):
        client.flushdb()
        yield client
        client.flushdb()
    client.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, redis_url: str, broker: redis.Redis) -> Settings:
    # Short leases and graces so that failures are noticed within seconds.
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        broker_url=redis_url,
        retry_base_seconds=0.2,
        lease_seconds=3,
        defer_seconds=0.3,
        lost_message_grace_seconds=2.0,
        db_retry_seconds=60.0,
    )


@pytest.fixture
def core(settings: Settings, migrated: MigratedSchema) -> Iterator[Core]:
    """The API's side: jobs created here are published to Redis."""
    db = migrated.database(settings.database_url)
    yield build_core(settings, db=db, runner=celery_runner(settings))
    db.dispose()


def environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BACKUP_HOME=str(settings.home),
        BACKUP_DATABASE_URL=settings.database_url,
        BACKUP_BROKER_URL=settings.broker_url or "",
        BACKUP_RETRY_BASE_SECONDS=str(settings.retry_base_seconds),
        BACKUP_LEASE_SECONDS=str(settings.lease_seconds),
        BACKUP_DEFER_SECONDS=str(settings.defer_seconds),
        BACKUP_LOST_MESSAGE_GRACE_SECONDS=str(settings.lost_message_grace_seconds),
        BACKUP_DB_RETRY_SECONDS=str(settings.db_retry_seconds),
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


class Processes:
    """``backupctl`` processes of one test, stopped (and their logs shown on failure) after it."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings = settings
        self.logs = logs
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """``backupctl ARGS``."""
        return self.run(args[0], ["-m", "api.cli.main", *args])

    def run(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """``python ARGS`` (a module such as gunicorn) with the settings' environment."""
        log = self.logs / f"{name}-{len(self.started)}.log"
        proc = subprocess.Popen(
            [sys.executable, *args],
            env={**environment(self.settings), **(env or {})},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append((proc, log))
        return proc

    def worker(self, *args: str, concurrency: int = 2) -> subprocess.Popen[bytes]:
        return self.start("worker", "--concurrency", str(concurrency), "--loglevel", "info", *args)

    def dispatcher(self) -> subprocess.Popen[bytes]:
        return self.start("dispatcher", "--deliver-every", "0.3", "--tick", "600", "--loglevel", "warning")

    @staticmethod
    def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group: a Celery worker and its pool processes."""
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc, _ in self.started:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=15)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    self.kill(proc)

    def output(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}" for _, log in self.started
        )


@pytest.fixture
def processes(settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(settings, logs)
    yield procs
    procs.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(procs.output())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    check: Callable[[], Any], timeout: float = 60.0, every: float = 0.2, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except OperationalError:
            value = None  # the database is restarting: look again
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def job_rows(core: Core, ids: list[str] | None = None) -> list[Job]:
    with core.db.session() as session:
        stmt = select(Job)
        if ids is not None:
            stmt = stmt.where(Job.id.in_(ids))
        return list(session.scalars(stmt))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
