"""Finds drivers through the ``backup_orchestrator.providers`` entry point group,
so a third-party package adds a driver by declaring one entry point."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.domain.errors import InvalidArgument
from providers.base import ProviderDriver

GROUP = "backup_orchestrator.providers"
T = TypeVar("T")


@cache
def _entry_points(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def load_class(group: str, name: str, base: type[T], *, unknown: str, field: str) -> type[T]:
    """The class an entry point of ``group`` names, checked to be a ``base``; ``unknown``
    starts the error when no such entry point is installed."""
    installed = _entry_points(group)
    ep = installed.get(name)
    if ep is None:
        raise InvalidArgument(f"{unknown}; installed: {', '.join(sorted(installed)) or 'none'}", field=field)
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise InvalidArgument(f"{field}: entry point {name!r} is not a {base.__name__}", field=field)
    return cls


def available_drivers() -> list[str]:
    return sorted(_entry_points(GROUP))


def driver_class(driver: str) -> type[ProviderDriver]:
    return load_class(
        GROUP, driver, ProviderDriver, unknown=f"driver: unknown provider driver {driver!r}", field="driver"
    )


def create(driver: str, name: str, config: Mapping[str, Any], data_dir: Path) -> ProviderDriver:
    return driver_class(driver)(name, config, data_dir)
