"""The hypervisor port: what the core asks of a host's own view of its VMs (discovery for
ingestion), beside the backup provider port. Host drivers are found through the
``backup_orchestrator.hypervisors`` entry point group, by the host's hypervisor type."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, TypedDict

from providers.registry import load_class

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


def driver_class(hypervisor: str) -> type[HostDriver]:
    return load_class(
        GROUP,
        hypervisor.lower(),
        HostDriver,
        unknown=f"no host driver for hypervisor {hypervisor!r}",
        field="hypervisor",
    )


def connect(hypervisor: str, connection: Mapping[str, Any]) -> HostDriver:
    return driver_class(hypervisor)(connection)
