"""``backupctl pool``: the primary storage pools that hold the VMs' volumes, and their backup limits."""

from __future__ import annotations

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option
from api.cli.parsing import size
from orchestrator.usecases import inventory


@click.group()
def pool() -> None:
    """Primary storage pools."""


@pool.command("register")
@click.argument("name")
@click.option("--zone", required=True)
@click.option("--path", default="")
@click.option("--max-concurrent-backups", type=int, default=4, show_default=True)
@click.option("--bandwidth", help="Sustained read bandwidth per second, e.g. 500M.")
@json_option
@pass_app
@handle_errors
def pool_register(
    app: App,
    name: str,
    zone: str,
    path: str,
    max_concurrent_backups: int,
    bandwidth: str | None,
    as_json: bool,
) -> None:
    with app.scope() as s:
        row = inventory.create_pool(
            s,
            zone=zone,
            name=name,
            path=path,
            max_concurrent_backups=max_concurrent_backups,
            bandwidth_bytes_per_s=size(bandwidth) if bandwidth else None,
        )
        emit(views.pool(row), as_json)


@pool.command("list")
@click.option("--zone")
@json_option
@pass_app
@handle_errors
def pool_list(app: App, zone: str | None, as_json: bool) -> None:
    with app.scope() as s:
        emit([views.pool(p) for p in inventory.list_pools(s, zone)], as_json)
