"""``backupctl worker``: the process of the distributed mode that runs jobs from the Celery queues."""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile

import click

from api.cli.app import App, pass_app
from api.cli.output import handle_errors
from api.cli.processes import metrics_options, serve_metrics, setup_logging
from orchestrator.bootstrap import build_core
from orchestrator.infra.db import persist
from workers import queues as routing
from workers.app import make_app
from workers.runner import CeleryRunner
from workers.tasks import register

log = logging.getLogger(__name__)


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@click.command("worker")
@click.option("--pools", multiple=True, help="Storage pools (names or ids, comma-separated) to work for.")
@click.option("--hosts", multiple=True, help="Hosts (names or ids, comma-separated) to work for.")
@click.option("--queues", multiple=True, help="Further queues by name, e.g. ingest.")
@click.option("--all", "all_queues", is_flag=True, help="Every queue, following new pools and hosts.")
@click.option("--concurrency", "-c", type=int, default=2, show_default=True, help="Jobs run at once.")
@metrics_options
@click.option(
    "--loglevel", default="info", show_default=True, help="Log level: debug, info, warning or error."
)
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
    metrics_address: str,
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
    setup_logging(loglevel)
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
        serve_metrics(metrics_port, None, metrics_address)
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
