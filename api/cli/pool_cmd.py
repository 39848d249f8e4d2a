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
    """Primary storage pools: where VMs' volumes live, and their backup limits."""


@pool.command("register")
@click.argument("name")
@click.option("--zone", required=True, help="Zone of the pool (name or id).")
@click.option(
    "--path",
    default="",
    help="Absolute mount path on the hosts (not /): default directory of new volumes, which must lie "
    "inside it; `vm import` finds disks' pools by it.",
)
@click.option(
    "--max-concurrent-backups",
    type=int,
    default=4,
    show_default=True,
    help="Backups and restores that may run on the pool at once (a job counts on its VM's ROOT pool).",
)
@click.option(
    "--bandwidth",
    help="Sustained read bandwidth per second: bytes or K/M/G/T (binary), e.g. 500M. Default: no limit.",
)
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
    """Register a primary storage pool in a zone (admins).

    The planner and `backupctl capacity` count its concurrency and bandwidth; workers keep to
    its concurrency limit."""
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
@click.option("--zone", help="Only pools in this zone (name or id).")
@json_option
@pass_app
@handle_errors
def pool_list(app: App, zone: str | None, as_json: bool) -> None:
    """List the storage pools (admins)."""
    with app.scope() as s:
        emit([views.pool(p) for p in inventory.list_pools(s, zone)], as_json)


@pool.command("update")
@click.argument("pool_ref")
@click.option("--name", help="New name, unique in the pool's zone.")
@click.option("--path", help="New mount path for new volumes (existing volumes keep theirs).")
@click.option(
    "--max-concurrent-backups", type=int, help="Backups and restores that may run on the pool at once."
)
@click.option("--bandwidth", help="Sustained read bandwidth per second: bytes or K/M/G/T (binary), e.g. 500M")
@click.option("--no-bandwidth-limit", is_flag=True, help="Drop the bandwidth limit.")
@json_option
@pass_app
@handle_errors
def pool_update(
    app: App,
    pool_ref: str,
    name: str | None,
    path: str | None,
    max_concurrent_backups: int | None,
    bandwidth: str | None,
    no_bandwidth_limit: bool,
    as_json: bool,
) -> None:
    """Change a storage pool (name or id) (admins); what is not given keeps its value.

    The planner counts new limits at its next round; workers keep to a new concurrency limit
    from the next job they claim."""
    with app.scope() as s:
        row = inventory.update_pool(
            s,
            pool_ref,
            name=name,
            path=path,
            max_concurrent_backups=max_concurrent_backups,
            bandwidth_bytes_per_s=size(bandwidth) if bandwidth else None,
            unlimited_bandwidth=no_bandwidth_limit,
        )
        emit(views.pool(row), as_json)


@pool.command("remove")
@click.argument("pool_ref")
@json_option
@pass_app
@handle_errors
def pool_remove(app: App, pool_ref: str, as_json: bool) -> None:
    """Remove a storage pool (name or id) that nothing uses (admins).

    Refused while it holds volumes (those of destroyed VMs too: their restore points can
    recreate them there) or has a job planned, queued or running on it."""
    with app.scope() as s:
        row = inventory.remove_pool(s, pool_ref)
        emit({"removed": row.id, "name": row.name}, as_json)
