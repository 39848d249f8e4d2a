"""The ``kvm`` provider: libvirt freezes all of a VM's disks at once, the NAS driver moves the data.

Composition, not inheritance: a ``NasProvider`` built from this provider's repository
settings does every repository operation, with a ``KvmSnapshot`` plugged in as its snapshot
source. This driver adds what only the hypervisor can do: one atomic external snapshot of
every disk, merging it back, repairing what killed workers left, and reaching the VM's host.

Configuration: every NAS key (``repository``, ``chunk_size``, ``encryption``, ...) except the
snapshot ones (the snapshot is libvirt's here), plus:

``hosts``             ``{host_id: connection}`` for hosts whose inventory record has no
                      connection settings (``{"transport": "local"}`` or ``ssh`` with address,
                      key_file, known_hosts, ...). Optional: a VM is reached through its host,
                      with the settings ``backupctl host connect`` stored on the host first.
``quiesce``           declare the ``quiesce`` capability and freeze guest file systems through
                      the QEMU guest agent when a backup asks for it (default false).
``quiesce_fallback``  take a crash-consistent snapshot when quiescing is impossible or fails
                      (default false: such a backup fails and says why).
``command_timeout_s`` deadline of each virsh command (default 60).
``commit_timeout_s``  deadline of merging one disk back (default 900).
``shutdown_timeout_s`` how long a running VM restored in place gets to shut down through
                      ACPI before it is destroyed (default 10; a guest that ignores ACPI
                      would only make the restore wait).

Restores (``providers/kvm/restore.py``): in place (the domain stopped and started again
around the write, its disks checked against the restore point first), one volume attached
to a VM at its next free target, or a new domain defined from the restore point's XML.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.domain.errors import InvalidArgument, ProviderError
from providers.base import (
    BackupRequest,
    BackupResult,
    Capability,
    Progress,
    ProviderDriver,
    ProviderOffering,
    RestorePointRef,
    StoredPoint,
    VMRef,
    VolumeRef,
)
from providers.config import Fields
from providers.kvm.domains import Libvirt
from providers.kvm.restore import KvmRestore, RestoreOptions
from providers.kvm.snapshot import KvmSnapshot, KvmSnapshotOptions
from providers.kvm.transport import HostConnection, Transport
from providers.nas.driver import CAPABILITIES as NAS_CAPABILITIES
from providers.nas.driver import NasProvider

KVM_KEYS = frozenset(
    {"hosts", "quiesce", "quiesce_fallback", "command_timeout_s", "commit_timeout_s", "shutdown_timeout_s"}
)
# The snapshot is libvirt's: the NAS ways of freezing a VM would be silently ignored.
REFUSED_NAS_KEYS = frozenset(
    {"snapshot", "snapshot_command", "release_command", "freeze_command", "thaw_command"}
)


# How a timeout setting is worded in errors.
_SECONDS = "a number of seconds > 0"


class KvmProvider(ProviderDriver):
    """KVM VMs on libvirt hosts into a NAS repository, all disks of a VM at one instant."""

    driver = "kvm"

    def __init__(self, name: str, config: Mapping[str, Any], data_dir: Path) -> None:
        super().__init__(name, config, data_dir)
        fields = Fields(config)
        refused = sorted(REFUSED_NAS_KEYS & set(config))
        if refused:
            raise fields.error(
                refused[0], "not used by the kvm driver (libvirt snapshots every disk at once); remove it"
            )
        self.hosts = fields.per_key(
            "hosts", HostConnection.from_config, '{"<host id>": {"transport": "local"} or ssh settings, ...}'
        )
        self.quiesce = fields.flag("quiesce")
        self.options = KvmSnapshotOptions(
            quiesce_fallback=fields.flag("quiesce_fallback"),
            command_timeout_s=fields.number("command_timeout_s", 60.0, above=0, what=_SECONDS),
            commit_timeout_s=fields.number("commit_timeout_s", 900.0, above=0, what=_SECONDS),
        )
        self._transports: dict[HostConnection, Transport] = {}
        self._lock = threading.Lock()
        self.snapshots = KvmSnapshot(self._libvirt, self.options)
        nas_config = {k: v for k, v in config.items() if k not in KVM_KEYS}
        self.nas = NasProvider(name, nas_config, data_dir, snapshot_source=self.snapshots)
        self.restores = KvmRestore(
            self.snapshots,
            self.nas,
            self._libvirt,
            self.options,
            RestoreOptions(
                shutdown_timeout_s=fields.number("shutdown_timeout_s", 10.0, above=0, what=_SECONDS)
            ),
        )

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = NAS_CAPABILITIES | {Capability.MULTI_VOLUME_CONSISTENT, Capability.STOP_VM}
        return caps | {Capability.QUIESCE} if self.quiesce else caps

    def data_folders(self) -> Mapping[str, str]:
        return self.nas.data_folders()

    def list_offerings(self, zone_id: str | None) -> list[ProviderOffering]:
        return self.nas.list_offerings(zone_id)

    # -- hosts

    def _libvirt(self, vm: VMRef) -> Libvirt:
        settings = self._settings(vm)
        with self._lock:
            transport = self._transports.get(settings)
            if transport is None:
                # One transport per host, reused: an SSH connection per command would be slow.
                # Keyed by the settings, so a host given new ones is reached the new way.
                transport = self._transports[settings] = settings.open()
        return Libvirt(transport, settings.libvirt_uri, timeout=self.options.command_timeout_s)

    def _settings(self, vm: VMRef) -> HostConnection:
        """The host's inventory record's settings, else this provider's ``hosts`` entry."""
        if not vm.host_id:
            raise ProviderError(
                f"VM {vm.name} has no host; the kvm driver reaches a VM through it", retryable=False
            )
        if vm.host is not None and vm.host.connection:
            try:
                return HostConnection.from_config(vm.host.connection)
            except InvalidArgument as exc:
                raise ProviderError(
                    f"host {vm.host_id} of VM {vm.name}: {exc.message} (fix it with backupctl host connect)",
                    retryable=False,
                ) from None
        settings = self.hosts.get(vm.host_id)
        if settings is None:
            raise ProviderError(
                f"VM {vm.name} is on host {vm.host_id}, which has no connection settings: set them with "
                f"backupctl host connect (provider {self.name!r} has no hosts entry for it either)",
                retryable=False,
            )
        return settings

    def close(self) -> None:
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            transport.close()

    # -- operations

    def take_backup(self, request: BackupRequest, progress: Progress) -> BackupResult:
        if request.quiesce and not self.quiesce:
            raise ProviderError(
                f"provider {self.name!r} is not configured to quiesce (set quiesce: true)", retryable=False
            )
        return self.nas.take_backup(request, progress)

    def repair(self, vm: VMRef) -> list[Any]:
        """Merge back overlays a killed backup left on the VM (every backup does this first)."""
        return self.snapshots.repair(vm)

    def delete_backup(self, point: RestorePointRef, *, forced: bool) -> None:
        self.nas.delete_backup(point, forced=forced)

    def abandon_backup(self, restore_point_id: str, attempt: int) -> None:
        self.nas.abandon_backup(restore_point_id, attempt)

    def list_restore_points(self) -> list[StoredPoint]:
        return self.nas.list_restore_points()

    def restore_vm(self, point: RestorePointRef, target: VMRef, progress: Progress) -> VMRef | None:
        if target.id != point.vm.id:
            # The framework's restore to a new VM: a new id and new volume paths.
            return self.restores.new_vm(point, target, progress, recreate=False)
        if self.restores.find(target) is None:
            # The VM's domain was undefined since: bring it back as it was.
            return self.restores.new_vm(point, target, progress, recreate=True)
        self.restores.in_place(point, target, progress)
        return None

    def restore_volume(
        self, point: RestorePointRef, volume: VolumeRef, target: VMRef, progress: Progress
    ) -> VolumeRef:
        # A new image file beside the original, attached to the target's domain.
        return self.restores.volume(point, volume, target, progress)

    def verify(self, point: RestorePointRef) -> None:
        self.nas.verify(point)
