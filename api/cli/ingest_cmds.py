"""Reaching hosts and bringing in the VMs they run that the inventory does not know."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.inventory_cmds import host, vm
from api.cli.output import emit, handle_errors, json_option
from orchestrator.usecases import ingest

UNMANAGED_COLUMNS = ("uuid", "name", "state", "vcpus", "memory", "disks", "nics")
RELINKED_COLUMNS = ("vm_id", "name", "domain", "volumes")
# Discovery and import wait this long for a worker to end them (the distributed mode).
WAIT_SECONDS = 120.0


@host.command("connect")
@click.argument("host_ref")
@click.option("--ssh", "ssh_target", metavar="[USER@]ADDRESS[:PORT]", help="Reach the host over SSH.")
@click.option("--key-file", type=click.Path(path_type=Path), help="Private key for SSH (key auth only).")
@click.option(
    "--known-hosts", type=click.Path(path_type=Path), help="known_hosts file holding the host's key."
)
@click.option("--accept-new-host-key", is_flag=True, help="Record an unknown host key at first contact.")
@click.option("--local", is_flag=True, help="The host is the worker's own machine.")
@click.option("--libvirt-uri", default="qemu:///system", show_default=True)
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
    """Set how workers reach a host. Host keys are checked strictly against --known-hosts."""
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
        row = ingest.set_connection(s, host_ref, connection)
        emit(views.host(row), as_json)


def _ended(job: dict[str, Any]) -> None:
    if job["state"] == "failed":
        raise click.ClickException(f"job {job['id']} failed: {job['error']}")
    if job["state"] != "succeeded":
        raise click.ClickException(
            f"job {job['id']} is still {job['state']}; follow it with: backupctl job show {job['id']}"
        )


def _unmanaged_row(found: dict[str, Any]) -> dict[str, Any]:
    disks = [d for d in found["disks"] if d["device"] == "disk"]
    return {
        **found,
        "memory": f"{found['memory_bytes'] / 2**30:.1f}G",
        "disks": ", ".join(f"{d['target']}={d['path']}" for d in disks),
        "nics": ", ".join(f"{n['mac']}@{n['source']}" for n in found["nics"]),
    }


def _discovered(app: App, host_ref: str) -> dict[str, Any]:
    """A discovery's result; VMs it could not re-link are reported on stderr."""
    job = app.run_job(lambda s: ingest.discover(s, host_ref), wait=WAIT_SECONDS)
    _ended(job)
    result = job["result"] or {}
    for stuck in result.get("not_relinked", []):
        click.echo(f"not re-linked: {stuck['name']} ({stuck['vm_id']}): {stuck['reason']}", err=True)
    return result


def _relinked_row(relinked: dict[str, Any]) -> dict[str, Any]:
    return {
        **relinked,
        "domain": "{from} -> {to}".format(**relinked["domain"]),
        "volumes": ", ".join(f"{v['from']} -> {v['to']}" for v in relinked["volumes"]),
    }


@vm.command("unmanaged")
@click.option("--host", "host_ref", required=True, help="Host to look at.")
@json_option
@pass_app
@handle_errors
def vm_unmanaged(app: App, host_ref: str, as_json: bool) -> None:
    """List the VMs a host runs that the inventory does not know (an ingest job; it also
    re-links managed VMs whose domain was replaced, see host rediscover)."""
    result = _discovered(app, host_ref)
    for relinked in result.get("relinked", []):
        click.echo(f"re-linked: {relinked['name']} ({relinked['vm_id']})", err=True)
    found = result.get("unmanaged", [])
    emit(found if as_json else [_unmanaged_row(f) for f in found], as_json, UNMANAGED_COLUMNS)


@host.command("rediscover")
@click.argument("host_ref")
@json_option
@pass_app
@handle_errors
def host_rediscover(app: App, host_ref: str, as_json: bool) -> None:
    """Follow managed VMs whose domain was replaced (a new UUID or new image paths, e.g. by a
    restore): matched by domain name and disk device, their records re-linked with their
    restore points, offering and schedules kept. Lists what was re-linked."""
    relinked = _discovered(app, host_ref).get("relinked", [])
    emit(relinked if as_json else [_relinked_row(r) for r in relinked], as_json, RELINKED_COLUMNS)


@vm.command("import")
@click.argument("uuid")
@click.option("--host", "host_ref", required=True)
@click.option("--account", required=True, help="Account that will own the VM.")
@click.option("--name", help="Name in the inventory (default: the hypervisor's).")
@json_option
@pass_app
@handle_errors
def vm_import(app: App, uuid: str, host_ref: str, account: str, name: str | None, as_json: bool) -> None:
    """Import an unmanaged VM: its disks become volumes on the pools that hold them."""
    job = app.run_job(
        lambda s: ingest.import_vm(s, host=host_ref, uuid=uuid, account=account, name=name), wait=WAIT_SECONDS
    )
    _ended(job)
    emit(job, as_json)
