"""``backupctl dispatcher``: the process of the distributed mode that releases, plans and re-delivers."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from api.cli.app import App, pass_app
from api.cli.output import handle_errors
from api.cli.processes import metrics_options, serve_metrics, setup_logging
from orchestrator.engine.dispatcher import run_dispatcher
from orchestrator.usecases import rounds


@click.command("dispatcher")
@click.option("--tick", "tick_seconds", type=float, default=30.0, show_default=True, help="Planning period.")
@click.option(
    "--deliver-every", type=float, default=1.0, show_default=True, help="Delivery and reconciling period."
)
@metrics_options
@click.option(
    "--loglevel", default="info", show_default=True, help="Log level: debug, info, warning or error."
)
@pass_app
@handle_errors
def dispatcher(
    app: App,
    tick_seconds: float,
    deliver_every: float,
    metrics_port: int | None,
    metrics_address: str,
    loglevel: str,
) -> None:
    """Release planned and scheduled jobs, re-plan, and re-deliver lost ones.

    Run one or more; a leader lock lets only one act at a time, and a standby takes over
    within a round when the leader dies."""
    setup_logging(loglevel)
    if metrics_port is not None:
        serve_metrics(metrics_port, None, metrics_address)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run_dispatcher(app.core, rounds.tick, tick_seconds, deliver_every, stop)
