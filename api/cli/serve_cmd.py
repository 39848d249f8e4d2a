"""``backupctl serve``: the embedded server — API, job threads and dispatcher in one process."""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path

import click
import waitress

from api.app import create_app
from api.cli.output import handle_errors
from orchestrator.bootstrap import build_core
from orchestrator.engine.dispatcher import run_dispatcher
from orchestrator.engine.local_runners import ThreadRunner
from orchestrator.infra.config import Settings
from orchestrator.infra.private_files import write_private
from orchestrator.usecases import accounts, rounds

log = logging.getLogger(__name__)


ADMIN_KEY_FILE = "admin-api-key.json"


def announce_admin_key(issued: accounts.IssuedKey, home: Path, *, on_terminal: bool) -> Path:
    """Keep the first admin key in a file only its owner can read, and say where.

    A service manager sends stdout to logs that others read and keep; the secret goes on
    stdout only when a person is watching it (a terminal)."""
    path = write_private(
        home / ADMIN_KEY_FILE,
        json.dumps({"apikey": issued.apikey, "secretkey": issued.secretkey}, indent=2).encode() + b"\n",
    )
    click.echo(f"first start: admin API key {issued.apikey}, its secret written to {path} (mode 0600)")
    if on_terminal:
        click.echo(f"              secret key  {issued.secretkey}  (shown only now)")
    return path


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
@click.option("--threads", type=int, default=8, show_default=True, help="HTTP request threads.")
@click.option("--job-workers", type=int, default=2, show_default=True, help="Jobs run at once.")
@click.option(
    "--tick", "tick_seconds", type=float, default=30.0, show_default=True, help="Dispatcher period."
)
@handle_errors
def serve(host: str, port: int, threads: int, job_workers: int, tick_seconds: float) -> None:
    """Run the API with an in-process worker and dispatcher (the embedded default).

    Distributed sites run the API under gunicorn (``gunicorn 'api.wsgi:app'``) with
    workers and a dispatcher of their own."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    runner = ThreadRunner(workers=job_workers)
    core = build_core(Settings.from_env(), runner=runner)
    issued = accounts.bootstrap(core)
    click.echo(
        f"data: {core.settings.home}  database: {core.db.engine.url.render_as_string(hide_password=True)}"
    )
    if issued:
        announce_admin_key(issued, core.settings.home, on_terminal=sys.stdout.isatty())
    stop = threading.Event()
    ticker = threading.Thread(
        target=run_dispatcher,
        args=(core, rounds.tick, tick_seconds, 1.0, stop),
        name="dispatcher",
        daemon=True,
    )
    ticker.start()
    click.echo(f"serving on http://{host}:{port}  (CloudStack endpoint: http://{host}:{port}/client/api)")
    try:
        waitress.serve(create_app(core), host=host, port=port, threads=threads, ident="backup-orchestrator")
    finally:
        stop.set()
        runner.shutdown()
