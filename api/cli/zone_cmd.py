"""``backupctl zone``: the zones that hold hosts, storage pools and offerings."""

from __future__ import annotations

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option
from orchestrator.usecases import inventory


@click.group()
def zone() -> None:
    """Zones: each host, storage pool, VM and offering belongs to one."""


@zone.command("create")
@click.argument("name")
@click.option("--description", default="", help="Free text shown with the zone.")
@json_option
@pass_app
@handle_errors
def zone_create(app: App, name: str, description: str, as_json: bool) -> None:
    """Create a zone (admins); hosts, pools, VMs and offerings are then registered in it."""
    with app.scope() as s:
        emit(views.zone(inventory.create_zone(s, name, description)), as_json)


@zone.command("list")
@json_option
@pass_app
@handle_errors
def zone_list(app: App, as_json: bool) -> None:
    """List the zones."""
    with app.scope() as s:
        emit([views.zone(z) for z in inventory.list_zones(s)], as_json)
