"""``backupctl host``: hypervisor hosts, how workers reach them, and following the VMs they run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.ingest_jobs import discovered
from api.cli.output import emit, handle_errors, json_option
from orchestrator.usecases import ingest, inventory

RELINKED_COLUMNS = ("vm_id", "name", "domain", "volumes")


@click.group()
def host() -> None:
    """Hypervisor hosts."""


@host.command("register")
@click.argument("name")
@click.option("--zone", required=True, help="Zone of the host (name or id).")
@click.option(
    "--hypervisor", type=click.Choice(["kvm", "vmware"]), required=True, help="Hypervisor the host runs."
)
@click.option(
    "--address", default="", help="The host's address, for reference only (workers use `host connect`)."
)
@click.option(
    "--max-concurrent-backups",
    type=int,
    default=2,
    show_default=True,
    help="Backups and restores that may run on the host at once (planner and workers keep to it).",
)
@json_option
@pass_app
@handle_errors
def host_register(
    app: App, name: str, zone: str, hypervisor: str, address: str, max_concurrent_backups: int, as_json: bool
) -> None:
    """Register a hypervisor host in a zone (admins).

    Then set how workers reach it with `backupctl host connect`."""
    with app.scope() as s:
        row = inventory.create_host(
            s,
            zone=zone,
            name=name,
            hypervisor=hypervisor,
            address=address,
            max_concurrent_backups=max_concurrent_backups,
        )
        emit(views.host(row), as_json)


@host.command("list")
@click.option("--zone", help="Only hosts in this zone (name or id).")
@json_option
@pass_app
@handle_errors
def host_list(app: App, zone: str | None, as_json: bool) -> None:
    """List the hosts and how workers reach them (admins)."""
    with app.scope() as s:
        emit([views.host(h) for h in inventory.list_hosts(s, zone)], as_json)


@host.command("update")
@click.argument("host_ref")
@click.option("--name", help="New name, unique in the host's zone.")
@click.option("--address", help="The host's address, for reference only (workers use `host connect`).")
@click.option(
    "--max-concurrent-backups", type=int, help="Backups and restores that may run on the host at once."
)
@json_option
@pass_app
@handle_errors
def host_update(
    app: App,
    host_ref: str,
    name: str | None,
    address: str | None,
    max_concurrent_backups: int | None,
    as_json: bool,
) -> None:
    """Change a host (name or id) (admins); what is not given keeps its value.

    How workers reach it is changed with `backupctl host connect`. The planner counts a new
    limit at its next round; workers keep to it from the next job they claim."""
    with app.scope() as s:
        row = inventory.update_host(
            s, host_ref, name=name, address=address, max_concurrent_backups=max_concurrent_backups
        )
        emit(views.host(row), as_json)


@host.command("remove")
@click.argument("host_ref")
@json_option
@pass_app
@handle_errors
def host_remove(app: App, host_ref: str, as_json: bool) -> None:
    """Remove a host (name or id) that nothing uses (admins).

    Refused while it runs live VMs or has a job planned, queued or running on it. Destroyed
    VMs that ran there forget it; their restore points can recreate them elsewhere."""
    with app.scope() as s:
        row = inventory.remove_host(s, host_ref)
        emit({"removed": row.id, "name": row.name}, as_json)


@host.command("connect")
@click.argument("host_ref")
@click.option("--ssh", "ssh_target", metavar="[USER@]ADDRESS[:PORT]", help="Reach the host over SSH.")
@click.option(
    "--key-file", type=click.Path(path_type=Path), help="Private key for SSH (key auth only), absolute."
)
@click.option(
    "--known-hosts",
    type=click.Path(path_type=Path),
    help="known_hosts file holding the host's key, absolute.",
)
@click.option("--accept-new-host-key", is_flag=True, help="Record an unknown host key at first contact.")
@click.option("--local", is_flag=True, help="The host is the worker's own machine.")
@click.option(
    "--libvirt-uri", default="qemu:///system", show_default=True, help="URI `virsh -c` uses on the host."
)
@json_option
@pass_app
@handle_errors
def host_connect(
    app: App,
    host_ref: str,
    ssh_target: str | None,
    key_file: Path | None,
    known_hosts: Path | None,
    accept_new_host_key: bool,
    local: bool,
    libvirt_uri: str,
    as_json: bool,
) -> None:
    """Set how workers reach a host. Host keys are checked strictly against --known-hosts.

    Paths are absolute paths on the workers. One that is not a file on this machine is
    stored with a warning (the workers may run elsewhere)."""
    if local == bool(ssh_target):
        raise click.UsageError("give either --ssh [USER@]ADDRESS[:PORT] or --local")
    connection: dict[str, Any] = {"transport": "local", "libvirt_uri": libvirt_uri}
    if ssh_target:
        user, _, address = ssh_target.rpartition("@")
        address, _, port = address.partition(":")
        connection = {
            "transport": "ssh",
            "address": address,
            "username": user or "root",
            "key_file": str(key_file) if key_file else None,
            "known_hosts": str(known_hosts) if known_hosts else None,
            "accept_new_host_key": accept_new_host_key,
            "libvirt_uri": libvirt_uri,
        }
        if port:
            connection["port"] = int(port) if port.isdigit() else port
        connection = {k: v for k, v in connection.items() if v is not None}
    with app.scope() as s:
        connected = ingest.set_connection(s, host_ref, connection)
        emit(views.connected_host(connected), as_json)
    if not as_json:
        for warning in connected.warnings:
            click.secho(f"warning: {warning}", err=True, fg="yellow")


def _relinked_row(relinked: dict[str, Any]) -> dict[str, Any]:
    return {
        **relinked,
        "domain": "{from} -> {to}".format(**relinked["domain"]),
        "volumes": ", ".join(f"{v['from']} -> {v['to']}" for v in relinked["volumes"]),
    }


@host.command("rediscover")
@click.argument("host_ref")
@json_option
@pass_app
@handle_errors
def host_rediscover(app: App, host_ref: str, as_json: bool) -> None:
    """Follow managed VMs whose domain was replaced (a new UUID or new image paths, e.g. by a
    restore): matched by domain name and disk device, their records re-linked with their
    restore points, offering and schedules kept; and set each managed VM Running or Stopped
    as its domain is. Lists what was re-linked."""
    relinked = discovered(app, host_ref).get("relinked", [])
    emit(relinked if as_json else [_relinked_row(r) for r in relinked], as_json, RELINKED_COLUMNS)
