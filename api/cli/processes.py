"""What the long-running processes (``worker``, ``dispatcher``) share: logging and a metrics port."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIServer

import click
from prometheus_client import start_http_server

from orchestrator.engine.core import Core
from orchestrator.infra import telemetry

F = TypeVar("F", bound=Callable[..., Any])


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def metrics_options(fn: F) -> F:
    """``--metrics-port`` and the address it listens on."""
    fn = click.option(
        "--metrics-address",
        default="0.0.0.0",  # noqa: S104 - Prometheus scrapes from another container by default
        show_default=True,
        help="Address the metrics port listens on: 127.0.0.1 or a private interface keeps it "
        "off the other networks.",
    )(fn)
    return click.option("--metrics-port", type=int, help="Serve Prometheus metrics on this port.")(fn)


def serve_metrics(port: int, core: Core | None, address: str) -> WSGIServer:
    """This process's metrics on ``address``:``port``; the database's state too when ``core`` is given."""
    server, _ = start_http_server(port, addr=address, registry=telemetry.registry(core.db if core else None))
    click.echo(f"metrics on http://{address}:{port}/metrics")
    return server
