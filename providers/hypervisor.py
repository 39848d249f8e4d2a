"""The hypervisor port: what the core asks of a host's own view of its VMs (discovery for
ingestion), beside the backup provider port. Host drivers are found through the
``backup_orchestrator.hypervisors`` entry point group, by the host's hypervisor type."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Any, TypedDict

from orchestrator.errors import InvalidArgument

GROUP = "backup_orchestrator.hypervisors"


class DiscoveredNic(TypedDict):
    mac: str
    kind: str  # network, bridge, direct, ...
    source: str | None
    model: str | None


class DiscoveredController(TypedDict):
    type: str
    model: str | None
    index: int


class DiscoveredDisk(TypedDict):
    target: str  # vda, sdb, ...
    bus: str | None
    device: str  # disk, cdrom, ...
    path: str | None
    format: str | None
    size_bytes: int | None


class DiscoveredVM(TypedDict):
    """One VM as its hypervisor describes it (JSON-safe: the core stores it as is)."""

    uuid: str
    name: str
    state: str
    vcpus: int
    memory_bytes: int
    nics: list[DiscoveredNic]
    controllers: list[DiscoveredController]
    disks: list[DiscoveredDisk]
    has_guest_agent: bool
    xml: str  # the hypervisor's own definition, kept to rebuild the VM on restore


class HostDriver(ABC):
    """Reaches one host with its inventory record's connection settings."""

    def __init__(self, connection: Mapping[str, Any]) -> None:
        self.connection = self.check_connection(connection)

    @classmethod
    @abstractmethod
    def check_connection(cls, connection: Mapping[str, Any]) -> dict[str, Any]:
        """The settings, normalised; InvalidArgument naming the field when one is wrong."""

    @classmethod
    @abstractmethod
    def public_connection(cls, connection: Mapping[str, Any]) -> dict[str, Any]:
        """What the API and CLI may show of the settings (never a secret)."""

    @abstractmethod
    def discover(self) -> list[DiscoveredVM]:
        """Every VM the host has, running or not."""

    def close(self) -> None:  # noqa: B027 - most drivers hold nothing to close
        """Release connections."""


@cache
def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def driver_class(hypervisor: str) -> type[HostDriver]:
    ep = _entry_points().get(hypervisor.lower())
    if ep is None:
        raise InvalidArgument(
            f"no host driver for hypervisor {hypervisor!r}; "
            f"installed: {', '.join(sorted(_entry_points())) or 'none'}",
            field="hypervisor",
        )
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, HostDriver)):
        raise InvalidArgument(f"entry point {hypervisor!r} is not a HostDriver", field="hypervisor")
    return cls


def connect(hypervisor: str, connection: Mapping[str, Any]) -> HostDriver:
    return driver_class(hypervisor)(connection)
