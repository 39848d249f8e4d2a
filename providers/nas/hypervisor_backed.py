"""What a hypervisor's provider shares with every other: it freezes a VM's disks its own way
and lets a NAS repository move the data.

A subclass (``kvm``, ``vsphere``) builds a ``NasProvider`` with its own snapshot source and
restores; this base refuses the NAS ways of freezing a VM (they would be silently ignored),
reads the ``hosts`` fallback and ``quiesce`` settings, finds how to reach a VM's host, and
hands every repository operation to the NAS provider.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from orchestrator.domain.errors import InvalidArgument, ProviderError
from providers.base import (
    BackupRequest,
    BackupResult,
    Capability,
    HostRef,
    Progress,
    ProviderDriver,
    ProviderOffering,
    RestorePointRef,
    StoredPoint,
    VMRef,
    VolumeRef,
)
from providers.config import Fields
from providers.nas.driver import CAPABILITIES as NAS_CAPABILITIES
from providers.nas.driver import NasProvider
from providers.nas.snapshot import SnapshotSource

# The hypervisor freezes the disks: the NAS ways of doing it would be silently ignored.
REFUSED_NAS_KEYS = frozenset(
    {"snapshot", "snapshot_command", "release_command", "freeze_command", "thaw_command"}
)
# Settings every hypervisor provider reads itself; the rest goes to the NAS provider.
OWN_KEYS = frozenset({"hosts", "quiesce"})

Settings = TypeVar("Settings")


class VolumeRestores(Protocol):
    def volume(
        self, point: RestorePointRef, volume: VolumeRef, target: VMRef, progress: Progress
    ) -> VolumeRef:
        """Restore one volume of ``point`` as a new disk attached to ``target``."""


class HypervisorBackedProvider(ProviderDriver, Generic[Settings]):
    """A NAS repository fed by a hypervisor's snapshots of all of a VM's disks at once."""

    # Ends the error for a NAS snapshot key: why this driver needs none.
    freezes_disks: ClassVar[str]
    # The shape of the ``hosts`` setting, shown when it is wrong.
    hosts_shape: ClassVar[str]
    # This driver's own settings beside ``hosts`` and ``quiesce``.
    own_keys: ClassVar[frozenset[str]] = frozenset()

    nas: NasProvider
    restores: VolumeRestores

    def __init__(self, name: str, config: Mapping[str, Any], data_dir: Path) -> None:
        super().__init__(name, config, data_dir)
        self.fields = Fields(config)
        refused = sorted(REFUSED_NAS_KEYS & set(config))
        if refused:
            raise self.fields.error(
                refused[0], f"not used by the {self.driver} driver ({self.freezes_disks}); remove it"
            )
        self.hosts = self.fields.per_key("hosts", self.read_host, self.hosts_shape)
        self.quiesce = self.fields.flag("quiesce")

    @classmethod
    @abstractmethod
    def read_host(cls, connection: Mapping[str, Any]) -> Settings:
        """A host's connection settings, checked (``InvalidArgument`` naming the setting)."""

    def repository(self, snapshot_source: SnapshotSource) -> NasProvider:
        """The NAS provider that moves the data, with this driver's snapshot source."""
        nas_config = {k: v for k, v in self.config.items() if k not in OWN_KEYS | self.own_keys}
        return NasProvider(self.name, nas_config, self.data_dir, snapshot_source=snapshot_source)

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = NAS_CAPABILITIES | {Capability.MULTI_VOLUME_CONSISTENT, Capability.STOP_VM}
        return caps | {Capability.QUIESCE} if self.quiesce else caps

    def data_folders(self) -> Mapping[str, str]:
        return self.nas.data_folders()

    def list_offerings(self, zone_id: str | None) -> list[ProviderOffering]:
        return self.nas.list_offerings(zone_id)

    # -- hosts

    def host_settings(self, vm: VMRef) -> Settings:
        """The VM's host record's settings, else this provider's ``hosts`` entry."""
        if not vm.host_id:
            raise ProviderError(
                f"VM {vm.name} has no host; the {self.driver} driver reaches a VM through it", retryable=False
            )
        if vm.host is not None and vm.host.connection:
            return self.recorded_settings(vm.host, f" of VM {vm.name}")
        settings = self.hosts.get(vm.host_id)
        if settings is None:
            raise ProviderError(
                f"VM {vm.name} is on host {vm.host_id}, which has no connection settings: set them with "
                f"backupctl host connect (provider {self.name!r} has no hosts entry for it either)",
                retryable=False,
            )
        return settings

    def recorded_settings(self, host: HostRef, whose: str = "") -> Settings:
        """A host record's settings, its secrets opened."""
        try:
            return self.read_host(self.open_sealed(host.connection))
        except InvalidArgument as exc:
            raise ProviderError(
                f"host {host.id}{whose}: {exc.message} (fix it with backupctl host connect)", retryable=False
            ) from None

    # -- operations

    def take_backup(self, request: BackupRequest, progress: Progress) -> BackupResult:
        if request.quiesce and not self.quiesce:
            raise ProviderError(
                f"provider {self.name!r} is not configured to quiesce (set quiesce: true)", retryable=False
            )
        return self.nas.take_backup(request, progress)

    def delete_backup(self, point: RestorePointRef, *, forced: bool) -> None:
        self.nas.delete_backup(point, forced=forced)

    def abandon_backup(self, restore_point_id: str, attempt: int) -> None:
        self.nas.abandon_backup(restore_point_id, attempt)

    def list_restore_points(self) -> list[StoredPoint]:
        return self.nas.list_restore_points()

    def restore_volume(
        self, point: RestorePointRef, volume: VolumeRef, target: VMRef, progress: Progress
    ) -> VolumeRef:
        # A new disk beside the original, attached to the target VM.
        return self.restores.volume(point, volume, target, progress)

    def verify(self, point: RestorePointRef) -> None:
        self.nas.verify(point)
