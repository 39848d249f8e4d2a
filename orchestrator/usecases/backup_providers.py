"""Backup providers: registering a back end and looking at what it offers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from orchestrator.domain import validate
from orchestrator.domain.errors import Conflict, InvalidArgument, NotFound
from orchestrator.domain.models import BackupProvider, StoragePool
from orchestrator.engine.core import Scope
from orchestrator.usecases import audit
from orchestrator.usecases.inventory import find_zone
from providers import registry
from providers.base import Capability, ProviderDriver, ProviderOffering
from providers.config import with_settings


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
    if scope.session.scalar(select(BackupProvider).where(BackupProvider.name == name)):
        raise Conflict(f"backup provider {name!r} already exists", field="name")
    if config is not None and not isinstance(config, Mapping):
        raise InvalidArgument("config: must be an object", field="config")
    secrets = registry.driver_class(driver).secret_settings  # unknown driver: refused here
    row = BackupProvider(
        name=name,
        driver=driver,
        zone_id=find_zone(scope, zone).id if zone else None,
        # Stored sealed: a database dump or backup must not open the back end's data. The
        # master key is read only when there is a secret to seal.
        config=with_settings(config or {}, secrets, lambda k, v: scope.core.sealer.seal_setting(k, v)),
        enabled=enabled,
    )
    scope.session.add(row)
    scope.session.flush()
    instance = scope.driver(row)  # the driver validates its configuration now, not at the first backup
    _outside_pools(scope, row, instance)
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
