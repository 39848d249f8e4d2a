"""What the ingest commands (``host rediscover``, ``vm unmanaged``, ``vm import``) share:
how long they wait for a worker, how a job that did not succeed fails, and a host's discovery."""

from __future__ import annotations

from typing import Any

import click

from api.cli.app import App
from orchestrator.usecases import ingest

# Discovery and import wait this long for a worker to end them (the distributed mode).
WAIT_SECONDS = 120.0


def require_succeeded(job: dict[str, Any]) -> None:
    """A job that failed, or that no worker has ended yet, fails the command."""
    if job["state"] == "failed":
        raise click.ClickException(f"job {job['id']} failed: {job['error']}")
    if job["state"] != "succeeded":
        raise click.ClickException(
            f"job {job['id']} is still {job['state']}; follow it with: backupctl job show {job['id']}"
        )


def discovered(app: App, host_ref: str) -> dict[str, Any]:
    """A discovery's result; VMs it could not re-link are reported on stderr."""
    job = app.run_job(lambda s: ingest.discover(s, host_ref), wait=WAIT_SECONDS)
    require_succeeded(job)
    result = job["result"] or {}
    for stuck in result.get("not_relinked", []):
        click.echo(f"not re-linked: {stuck['name']} ({stuck['vm_id']}): {stuck['reason']}", err=True)
    return result
