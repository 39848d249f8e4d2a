"""Finds drivers through the ``backup_orchestrator.providers`` entry point group,
so a third-party package adds a driver by declaring one entry point."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from orchestrator.domain.errors import InvalidArgument
from providers.base import ProviderDriver

GROUP = "backup_orchestrator.providers"


@cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def load_entry_point(group: str, name: str, *, unknown: str, field: str) -> object:
    """What the entry point ``name`` of ``group`` names; ``unknown`` starts the error when
    no such entry point is installed."""
    installed = _entry_points(group)
    ep = installed.get(name)
    if ep is None:
        raise InvalidArgument(f"{unknown}; installed: {', '.join(sorted(installed)) or 'none'}", field=field)
    return ep.load()


def not_a(base_name: str, name: str, *, field: str) -> InvalidArgument:
    """The error for an entry point ``name`` that names no subclass of ``base_name``."""
    return InvalidArgument(f"{field}: entry point {name!r} is not a {base_name}", field=field)


def available_drivers() -> list[str]:
    return sorted(_entry_points(GROUP))


def driver_class(driver: str) -> type[ProviderDriver]:
    cls = load_entry_point(
        GROUP, driver, unknown=f"driver: unknown provider driver {driver!r}", field="driver"
    )
    if isinstance(cls, type) and issubclass(cls, ProviderDriver):
        return cls
    raise not_a(ProviderDriver.__name__, driver, field="driver")


def create(driver: str, name: str, config: Mapping[str, Any], data_dir: Path) -> ProviderDriver:
    return driver_class(driver)(name, config, data_dir)
