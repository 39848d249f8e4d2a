"""Backup providers: registering a back end, looking at what it offers, changing and removing it.

Secret settings of a configuration are sealed before they are stored and never shown again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from orchestrator.domain import secrets, validate
from orchestrator.domain.errors import Conflict, InvalidArgument, NotFound
from orchestrator.domain.models import BackupOffering, BackupProvider, StoragePool
from orchestrator.engine.core import Scope
from orchestrator.usecases import audit, usage
from orchestrator.usecases.inventory import find_zone
from providers import registry
from providers.base import Capability, ProviderDriver, ProviderOffering


def find(scope: Scope, value: str) -> BackupProvider:
    scope.actor.require_admin("look up backup providers")
    found = scope.session.scalar(
        select(BackupProvider).where((BackupProvider.id == value) | (BackupProvider.name == value))
    )
    if found is None:
        raise NotFound.of("backup provider", value)
    return found


def add(
    scope: Scope,
    *,
    name: str,
    driver: str,
    zone: str | None = None,
    config: Mapping[str, Any] | None = None,
    enabled: bool = True,
) -> BackupProvider:
    scope.actor.require_admin("add backup providers")
    name = validate.name(name)
    _refuse_taken(scope, name)
    row = BackupProvider(
        name=name,
        driver=driver,
        zone_id=find_zone(scope, zone).id if zone else None,
        config=_sealed(scope, config or {}, {}),
        enabled=enabled,
    )
    registry.driver_class(driver)  # unknown driver: clear error before anything is stored
    scope.session.add(row)
    scope.session.flush()
    _outside_pools(scope, row, scope.driver(row))  # the driver checks its configuration now
    audit.record(scope, "provider.add", "provider", row.id, name=name, driver=driver)
    return row


def _outside_pools(scope: Scope, row: BackupProvider, driver: ProviderDriver) -> None:
    """Refuse back-end data inside a storage pool of the zones the provider serves: restore
    points would sit among the images they protect, and a restore or a pool's cleanup could
    overwrite them."""
    pools = select(StoragePool).where(StoragePool.path != "")
    if row.zone_id:
        pools = pools.where(StoragePool.zone_id == row.zone_id)
    for pool in scope.session.scalars(pools):
        for setting, folder in driver.data_folders().items():
            if folder == pool.path.rstrip("/") or validate.is_under(folder, pool.path):
                raise InvalidArgument(
                    f"config.{setting}: {folder} is inside storage pool {pool.name!r} ({pool.path}); "
                    "keep backups apart from the images they protect",
                    field=f"config.{setting}",
                )


def _refuse_taken(scope: Scope, name: str) -> None:
    if scope.session.scalar(select(BackupProvider).where(BackupProvider.name == name)):
        raise Conflict(f"backup provider {name!r} already exists", field="name")


def _sealed(scope: Scope, config: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as stored: secrets given as ``********`` keep their stored value, the others
    are sealed."""
    if not isinstance(config, Mapping):
        raise InvalidArgument("config: must be an object", field="config")
    return scope.core.sealer.seal_config(secrets.keep_stored(dict(config), stored))


def update(
    scope: Scope,
    provider: str,
    *,
    name: str | None = None,
    zone: str | None = None,
    config: Mapping[str, Any] | None = None,
    enabled: bool | None = None,
) -> BackupProvider:
    """Rename a provider, move it to a zone (``""``: every zone), replace its configuration
    (the driver checks it now) or enable or disable it. Only what is given changes."""
    scope.actor.require_admin("update backup providers")
    row = find(scope, provider)
    changed: list[str] = []
    if name is not None and (name := validate.name(name)) != row.name:
        _refuse_taken(scope, name)
        row.name = name
        changed.append("name")
    if zone is not None:
        zone_id = find_zone(scope, zone).id if zone else None
        if zone_id != row.zone_id:
            _refuse_zone_change(scope, row, zone_id)
            row.zone_id = zone_id
            changed.append("zone")
    if config is not None:
        row.config = _sealed(scope, config, row.config)
        changed.append("config")
    if enabled is not None and enabled != row.enabled:
        row.enabled = enabled
        changed.append("enabled")
    scope.session.flush()
    _outside_pools(scope, row, scope.driver(row))  # a configuration refused is never stored
    audit.record(scope, "provider.update", "provider", row.id, changed=changed)
    return row


def _refuse_zone_change(scope: Scope, row: BackupProvider, zone_id: str | None) -> None:
    """A provider serving one zone cannot hold offerings of another."""
    if zone_id is None:
        return
    elsewhere = scope.session.scalar(
        select(BackupOffering.id).where(
            BackupOffering.provider_id == row.id, BackupOffering.zone_id != zone_id
        )
    )
    if elsewhere is not None:
        raise Conflict(
            f"backup provider {row.name!r} has offerings in another zone: it cannot serve only this one",
            field="zone",
        )


def remove(scope: Scope, provider: str) -> BackupProvider:
    """Remove a provider that nothing uses: no offering (deleted ones included) and no restore point."""
    scope.actor.require_admin("remove backup providers")
    row = find(scope, provider)
    usage.refuse_if_used("backup provider", row.name, usage.of_provider(scope, row.id))
    scope.session.delete(row)
    audit.record(scope, "provider.remove", "provider", row.id, name=row.name)
    return row


def list_providers(scope: Scope) -> list[BackupProvider]:
    scope.actor.require_admin("list backup providers")
    return list(scope.session.scalars(select(BackupProvider).order_by(BackupProvider.name)))


def capabilities_in_use(scope: Scope) -> set[Capability]:
    """What the enabled providers can do between them: capability discovery for any caller."""
    caps: set[Capability] = set()
    for row in scope.session.scalars(select(BackupProvider).where(BackupProvider.enabled.is_(True))):
        caps |= scope.driver(row).capabilities
    return caps


def set_enabled(scope: Scope, provider: str, enabled: bool) -> BackupProvider:
    scope.actor.require_admin("enable or disable backup providers")
    row = find(scope, provider)
    row.enabled = enabled
    audit.record(scope, "provider.enable" if enabled else "provider.disable", "provider", row.id)
    return row


def list_offerings(scope: Scope, provider: str, zone: str | None = None) -> list[ProviderOffering]:
    """The provider's own policies/jobs in a zone: what an operator can import as offerings."""
    scope.actor.require_admin("list a provider's offerings")
    row = find(scope, provider)
    zone_id = find_zone(scope, zone).id if zone else row.zone_id
    if row.zone_id and zone_id != row.zone_id:
        raise InvalidArgument(f"zone: provider {row.name!r} serves another zone", field="zone")
    return scope.driver(row).list_offerings(zone_id)


def usable(scope: Scope, row: BackupProvider) -> None:
    if not row.enabled:
        raise Conflict(f"backup provider {row.name!r} is disabled")
