"""Finds drivers through the ``backup_orchestrator.providers`` entry point group,
so a third-party package adds a driver by declaring one entry point."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from orchestrator.errors import InvalidArgument
from providers.base import BackupProvider

GROUP = "backup_orchestrator.providers"


@cache
def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available_drivers() -> list[str]:
    return sorted(_entry_points())


def driver_class(driver: str) -> type[BackupProvider]:
    ep = _entry_points().get(driver)
    if ep is None:
        raise InvalidArgument(
            f"driver: unknown provider driver {driver!r}; "
            f"installed: {', '.join(available_drivers()) or 'none'}",
            field="driver",
        )
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, BackupProvider)):
        raise InvalidArgument(f"driver: entry point {driver!r} is not a BackupProvider", field="driver")
    return cls


def create(driver: str, name: str, config: Mapping[str, Any], data_dir: Path) -> BackupProvider:
    return driver_class(driver)(name, config, data_dir)
