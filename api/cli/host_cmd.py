"""``backupctl host``: hypervisor hosts, how workers reach them, and following the VMs they run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

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
@click.option(
    "--vcenter", "vcenter_url", metavar="URL", help="A vCenter host: its SDK URL (https://HOST/sdk)."
)
@click.option("--username", help="vCenter: the user to log in as.")
@click.option(
    "--password-file",
    type=click.File("r"),
    help="vCenter: a file holding the password ('-' for standard input); asked for when not given.",
)
@click.option("--datacenter", help="vCenter: the datacenter the host covers (default: the first).")
@click.option("--cluster", help="vCenter: only this cluster of the datacenter.")
@click.option(
    "--ca-file", type=click.Path(path_type=Path), help="vCenter: PEM of the CA that signed its certificate."
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
    vcenter_url: str | None,
    username: str | None,
    password_file: TextIO | None,
    datacenter: str | None,
    cluster: str | None,
    ca_file: Path | None,
    as_json: bool,
) -> None:
    """Set how workers reach a host. Host keys are checked strictly against --known-hosts;
    a vCenter's certificate against --ca-file (else the system's CAs). A vCenter's password
    is stored sealed and never shown.

    Paths are absolute paths on the workers. One that is not a file on this machine is
    stored with a warning (the workers may run elsewhere)."""
    if sum((local, bool(ssh_target), bool(vcenter_url))) != 1:
        raise click.UsageError("give one of --ssh [USER@]ADDRESS[:PORT], --local or --vcenter URL")
    connection: dict[str, Any] = {"transport": "local", "libvirt_uri": libvirt_uri}
    if vcenter_url:
        connection = _vcenter(vcenter_url, username, password_file, datacenter, cluster, ca_file)
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


def _vcenter(
    url: str,
    username: str | None,
    password_file: TextIO | None,
    datacenter: str | None,
    cluster: str | None,
    ca_file: Path | None,
) -> dict[str, Any]:
    if not username:
        raise click.UsageError("--vcenter needs --username")
    if password_file is not None:
        password = password_file.readline().rstrip("\r\n")
    else:
        password = click.prompt(f"password of {username}", hide_input=True, err=True)
    connection = {
        "url": url,
        "username": username,
        "password": password,
        "datacenter": datacenter,
        "cluster": cluster,
        "ca_file": str(ca_file) if ca_file else None,
    }
    return {k: v for k, v in connection.items() if v is not None}


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
