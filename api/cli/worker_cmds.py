"""``backupctl worker`` and ``backupctl dispatcher``: the processes of the distributed mode."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from types import FrameType

import click
from prometheus_client import start_http_server

from api.cli.app import App, pass_app
from api.cli.output import handle_errors
from orchestrator.bootstrap import build_core
from orchestrator.engine.core import Core
from orchestrator.engine.dispatcher import run_dispatcher
from orchestrator.infra import telemetry
from orchestrator.infra.db import persist
from orchestrator.usecases import rounds
from workers import queues as routing
from workers.app import make_app
from workers.runner import CeleryRunner
from workers.tasks import register

log = logging.getLogger(__name__)


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _serve_metrics(port: int, core: Core | None) -> None:
    """This process's metrics; the database's state too when ``core`` is given."""
    start_http_server(port, registry=telemetry.registry(core.db if core else None))
    click.echo(f"metrics on http://0.0.0.0:{port}/metrics")


@click.command("worker")
@click.option("--pools", multiple=True, help="Storage pools (names or ids, comma-separated) to work for.")
@click.option("--hosts", multiple=True, help="Hosts (names or ids, comma-separated) to work for.")
@click.option("--queues", multiple=True, help="Further queues by name, e.g. ingest.")
@click.option("--all", "all_queues", is_flag=True, help="Every queue, following new pools and hosts.")
@click.option("--concurrency", "-c", type=int, default=2, show_default=True, help="Jobs run at once.")
@click.option("--metrics-port", type=int, help="Serve Prometheus metrics of this worker on this port.")
@click.option("--loglevel", default="info", show_default=True)
@pass_app
@handle_errors
def worker(
    app: App,
    pools: tuple[str, ...],
    hosts: tuple[str, ...],
    queues: tuple[str, ...],
    all_queues: bool,
    concurrency: int,
    metrics_port: int | None,
    loglevel: str,
) -> None:
    """Run jobs from the Celery queues (distributed mode; needs BACKUP_BROKER_URL).

    Every worker takes the default queue (work bound to no host or pool); --pools and
    --hosts add those queues; --all takes every queue. Concurrency limits of hosts and pools
    hold however many workers share a queue."""
    if metrics_port is not None and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # The pool processes must count into files the parent can sum up, and the metrics
        # library reads this variable when it is first imported: start again with it set.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="backup-worker-metrics-")
        os.execv(sys.executable, [sys.executable, "-m", "api.cli.main", *sys.argv[1:]])  # noqa: S606
    _logging(loglevel)
    celery = register(make_app(app.settings))
    core = build_core(app.settings, runner=CeleryRunner(celery))
    # The database may be restarting as the worker starts: wait for it like every job step.
    wait = app.settings.db_retry_seconds
    if all_queues:
        chosen = persist(lambda: routing.all_queues(core), for_seconds=wait)
        routing.FollowInventory.core = core
        celery.steps["consumer"].add(routing.FollowInventory)
    else:
        chosen = persist(
            lambda: routing.chosen_queues(core, _split(pools), _split(hosts), _split(queues)),
            for_seconds=wait,
        )
    core.db.engine.dispose()  # the pool processes fork from here: share no connection
    if metrics_port is not None:
        _serve_metrics(metrics_port, None)
    click.echo(f"worker {socket.gethostname()}: queues {', '.join(chosen)}; concurrency {concurrency}")
    celery.worker_main(
        [
            "worker",
            f"--queues={','.join(chosen)}",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel.upper()}",
            f"--hostname=backup@{socket.gethostname()}:{os.getpid()}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@click.command("dispatcher")
@click.option("--tick", "tick_seconds", type=float, default=30.0, show_default=True, help="Planning period.")
@click.option(
    "--deliver-every", type=float, default=1.0, show_default=True, help="Delivery and reconciling period."
)
@click.option("--metrics-port", type=int, help="Serve Prometheus metrics on this port.")
@click.option("--loglevel", default="info", show_default=True)
@pass_app
@handle_errors
def dispatcher(
    app: App, tick_seconds: float, deliver_every: float, metrics_port: int | None, loglevel: str
) -> None:
    """Release planned and scheduled jobs, re-plan, and re-deliver lost ones.

    Run one or more; a leader lock lets only one act at a time, and a standby takes over
    within a round when the leader dies."""
    _logging(loglevel)
    if metrics_port is not None:
        _serve_metrics(metrics_port, None)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run_dispatcher(app.core, rounds.tick, tick_seconds, deliver_every, stop)
