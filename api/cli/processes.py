"""What the long-running processes (``worker``, ``dispatcher``) share: logging and a metrics port."""

from __future__ import annotations

import logging

import click
from prometheus_client import start_http_server

from orchestrator.engine.core import Core
from orchestrator.infra import telemetry


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def serve_metrics(port: int, core: Core | None) -> None:
    """This process's metrics; the database's state too when ``core`` is given."""
    start_http_server(port, registry=telemetry.registry(core.db if core else None))
    click.echo(f"metrics on http://0.0.0.0:{port}/metrics")
