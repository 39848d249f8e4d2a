"""The hypervisor port: what the core asks of a host's own view of its VMs (discovery for
ingestion), beside the backup provider port. Host drivers are found through the
``backup_orchestrator.hypervisors`` entry point group, by the host's hypervisor type."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, NotRequired, TypedDict

from providers.registry import load_entry_point, not_a

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
    # On a vSphere datastore (``path`` is then ``[datastore] dir/file.vmdk``): its name and URL.
    datastore: NotRequired[str | None]
    datastore_url: NotRequired[str | None]


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
    # vSphere's managed object reference and .vmx path (see LOCATOR_KEYS).
    moref: NotRequired[str]
    vmx_path: NotRequired[str | None]


# What a VM's inventory record keeps of its discovered description (and so each restore
# point): enough to rebuild the VM, and to find its domain and disks again after they change.
# A driver's own keys (vSphere's moref, datacenter, ...) are kept beside these.
DETAIL_KEYS = ("vcpus", "memory_bytes", "nics", "controllers", "disks", "has_guest_agent", "xml")
# What describes the VM now rather than what it is: never kept as a detail.
_NOT_DETAILS = ("uuid", "name", "state")
# Where the hypervisor finds the instance besides its UUID (vSphere: its managed object
# reference and its .vmx file): both change when a VM is registered again.
LOCATOR_KEYS = ("moref", "vmx_path")
# The VM's own instance on its host: a copy of the VM under a new name gets its own.
INSTANCE_KEYS = ("instance_name", "domain", "disks", "xml", "bios_uuid", *LOCATOR_KEYS)


def vm_details(
    found: Mapping[str, Any], vm_id: str, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The details an inventory VM with id ``vm_id`` keeps of the VM its host describes (a
    ``DiscoveredVM``, or a driver's superset of one); keys of its own in ``previous`` (its
    details so far) that describe no instance are kept.

    ``instance_name`` is the hypervisor's name for it; ``domain`` its hypervisor UUID, kept
    only when it is not the VM's own id (a re-linked VM whose domain was recreated)."""
    details = {**_not_instance(previous or {}), "instance_name": found["name"]}
    details |= {k: found.get(k) for k in DETAIL_KEYS}
    details |= {k: v for k, v in found.items() if k not in _NOT_DETAILS}
    if found["uuid"] != vm_id:
        details["domain"] = found["uuid"]
    return details


def relocated(details: Mapping[str, Any], found: Mapping[str, Any]) -> bool:
    """Whether the hypervisor now finds the instance a VM's ``details`` describe at another
    address (``LOCATOR_KEYS``) than the one they record."""
    return any(k in found and details.get(k) != found[k] for k in LOCATOR_KEYS)


def copied_details(details: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The details of a new VM made from one with ``details``: the same hardware, but no
    claim on the original's instance (its hypervisor name, UUID, definition, disk paths)."""
    return {**_not_instance(details), "instance_name": name}


def _not_instance(details: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in details.items() if k not in INSTANCE_KEYS}


def domain_uuid(vm_id: str, details: Mapping[str, Any]) -> str:
    """The hypervisor UUID of an inventory VM's instance (its id unless re-linked)."""
    return str(details.get("domain") or vm_id)


class HostDriver(ABC):
    """Reaches one host with its inventory record's connection settings."""

    # The connection settings that are secrets: sealed at rest, shown as ``********``, and
    # handed to the driver opened.
    secret_settings: ClassVar[frozenset[str]] = frozenset()

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

    @classmethod
    def connection_warnings(cls, connection: Mapping[str, Any]) -> list[str]:
        """What about the checked settings cannot be confirmed on this machine (files the
        workers read that are not here): a warning each, not a refusal, since the workers may
        run elsewhere."""
        return []

    @abstractmethod
    def discover(self) -> list[DiscoveredVM]:
        """Every VM the host has, running or not."""

    def close(self) -> None:  # noqa: B027 - most drivers hold nothing to close
        """Release connections."""


def driver_class(hypervisor: str) -> type[HostDriver]:
    name = hypervisor.lower()
    cls = load_entry_point(
        GROUP, name, unknown=f"no host driver for hypervisor {hypervisor!r}", field="hypervisor"
    )
    if isinstance(cls, type) and issubclass(cls, HostDriver):
        return cls
    raise not_a(HostDriver.__name__, name, field="hypervisor")


def connect(hypervisor: str, connection: Mapping[str, Any]) -> HostDriver:
    return driver_class(hypervisor)(connection)
