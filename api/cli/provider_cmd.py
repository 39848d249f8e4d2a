"""``backupctl provider``: the backup providers (drivers for back ends) and their own policies."""

from __future__ import annotations

import json
from typing import Any

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option
from orchestrator.domain import validate
from orchestrator.usecases import backup_providers, reconciliation


@click.group()
def provider() -> None:
    """Backup providers (drivers for back ends)."""


@provider.command("add")
@click.argument("name")
@click.option(
    "--driver", required=True, help="Installed driver, e.g. dummy, nas, kvm (a wrong name lists them)."
)
@click.option("--zone", help="Zone the provider serves (name or id); default: every zone.")
@click.option("--config", "config_json", help="Driver configuration as a JSON object.")
@json_option
@pass_app
@handle_errors
def provider_add(
    app: App, name: str, driver: str, zone: str | None, config_json: str | None, as_json: bool
) -> None:
    """Add a backup provider: a back end reached through an installed driver (admins).

    The driver checks --config now, not at the first backup. Then list the back end's own
    policies with `backupctl provider offerings NAME` and import them as offerings."""
    config = _config(config_json) or {}
    with app.scope() as s:
        row = backup_providers.add(s, name=name, driver=driver, zone=zone, config=config)
        emit(views.provider(row, s.driver(row)), as_json)


def _config(config_json: str | None) -> dict[str, Any] | None:
    try:
        config = json.loads(config_json) if config_json is not None else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"--config is not JSON: {exc}") from None
    if config is not None and not isinstance(config, dict):
        raise click.BadParameter("--config must be a JSON object")
    # JSON escapes may spell a lone surrogate ("\\udfff"), which no database can store.
    validate.unicode_strings(config, "config")
    return config


@provider.command("update")
@click.argument("provider_ref")
@click.option("--name", help="New name.")
@click.option("--zone", help='Zone the provider serves (name or id); "" for every zone.')
@click.option(
    "--config",
    "config_json",
    help='The whole new driver configuration as a JSON object; a secret given as "********" '
    "keeps its stored value.",
)
@json_option
@pass_app
@handle_errors
def provider_update(
    app: App,
    provider_ref: str,
    name: str | None,
    zone: str | None,
    config_json: str | None,
    as_json: bool,
) -> None:
    """Change a provider (name or id) (admins); what is not given keeps its value.

    --config replaces the configuration; the driver checks it now and a refused one changes
    nothing. Secrets in it are stored sealed and shown as ********: pass ******** back to keep
    one. Moving to a zone is refused while the provider has offerings in another."""
    with app.scope() as s:
        row = backup_providers.update(s, provider_ref, name=name, zone=zone, config=_config(config_json))
        emit(views.provider(row, s.driver(row)), as_json)


@provider.command("remove")
@click.argument("provider_ref")
@json_option
@pass_app
@handle_errors
def provider_remove(app: App, provider_ref: str, as_json: bool) -> None:
    """Remove a provider (name or id) that nothing uses (admins).

    Refused while it has offerings (deleted ones included: they stay for their restore points)
    or restore points. To stop using one that has them, `provider disable` it."""
    with app.scope() as s:
        row = backup_providers.remove(s, provider_ref)
        emit({"removed": row.id, "name": row.name}, as_json)


@provider.command("list")
@json_option
@pass_app
@handle_errors
def provider_list(app: App, as_json: bool) -> None:
    """List the backup providers, whether enabled, and their capabilities (admins)."""
    with app.scope() as s:
        rows = [views.provider(p, s.driver(p)) for p in backup_providers.list_providers(s)]
        emit(rows, as_json, ["id", "name", "driver", "enabled", "capabilities"])


@provider.command("offerings")
@click.argument("provider_ref")
@click.option("--zone", help="Zone to list for (name or id); default: the provider's zone.")
@json_option
@pass_app
@handle_errors
def provider_offerings(app: App, provider_ref: str, zone: str | None, as_json: bool) -> None:
    """The provider's own policies that can be imported as offerings."""
    with app.scope() as s:
        items = backup_providers.list_offerings(s, provider_ref, zone)
        emit([views.provider_offering(o) for o in items], as_json)


@provider.command("reconcile")
@click.argument("provider_ref")
@json_option
@pass_app
@handle_errors
def provider_reconcile(app: App, provider_ref: str, as_json: bool) -> None:
    """Count the copies the back end holds that no restore point records (admins).

    Lists the back end's restore points (drivers that can list them), shows each untracked
    copy and why, and stores the count on the provider (`provider list`, the
    untracked_copies metric). Deletes no copy: a copy of a backup still running, or of a
    restore point a restored database forgot, looks untracked too. Removes what interrupted
    backups left on the hosts (a vSphere snapshot of a killed worker), except what running
    backups need."""
    with app.scope() as s:
        result = reconciliation.reconcile(s, provider_ref)
        view = views.reconciled(result)
        if as_json:
            emit(view, True)
            return
        click.echo(
            f"{result.provider.name}: {result.listed} copies at the back end, "
            f"{len(result.untracked)} untracked, {result.in_flight} of backups still running"
        )
        if view["untracked"]:
            emit(view["untracked"], False, ["external_id", "restore_point_id", "vm_id", "why"])
        for leftover in result.released:
            click.echo(f"removed left over: {leftover}")


@provider.command("enable")
@click.argument("provider_ref")
@json_option
@pass_app
@handle_errors
def provider_enable(app: App, provider_ref: str, as_json: bool) -> None:
    """Enable a provider (name or id): backups, restores and assignments through it resume."""
    with app.scope() as s:
        emit(views.provider(backup_providers.set_enabled(s, provider_ref, True)), as_json)


@provider.command("disable")
@click.argument("provider_ref")
@json_option
@pass_app
@handle_errors
def provider_disable(app: App, provider_ref: str, as_json: bool) -> None:
    """Disable a provider (name or id); nothing is removed, `provider enable` undoes it.

    Its offerings, the VMs assigned to them and its restore points stay. While it is disabled
    no backup through it starts: ad-hoc backups are refused, user schedules skip their runs
    and planned SLA backups are cancelled, so those VMs fall behind their RPO. Restores from
    its restore points, importing offerings from it and assigning VMs to its offerings are
    refused too."""
    with app.scope() as s:
        emit(views.provider(backup_providers.set_enabled(s, provider_ref, False)), as_json)
