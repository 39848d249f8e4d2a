"""The ``kvm`` provider: libvirt freezes all of a VM's disks at once, the NAS driver moves the data.

Composition for the data: a ``NasProvider`` built from this provider's repository
settings does every repository operation, with a ``KvmSnapshot`` plugged in as its snapshot
source. This driver adds what only the hypervisor can do: one atomic external snapshot of
every disk, merging it back, repairing what killed workers left, and reaching the VM's host.
What every hypervisor's provider shares (refused NAS snapshot keys, the ``hosts`` fallback,
``quiesce``, handing repository work to the NAS provider) is ``HypervisorBackedProvider``.

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

from providers.base import (
    Progress,
    RestorePointRef,
    VMRef,
)
from providers.kvm.domains import Libvirt
from providers.kvm.restore import KvmRestore, RestoreOptions
from providers.kvm.snapshot import KvmSnapshot, KvmSnapshotOptions
from providers.kvm.transport import HostConnection, Transport
from providers.nas.hypervisor_backed import HypervisorBackedProvider

KVM_KEYS = frozenset({"quiesce_fallback", "command_timeout_s", "commit_timeout_s", "shutdown_timeout_s"})

# How a timeout setting is worded in errors.
_SECONDS = "a number of seconds > 0"


class KvmProvider(HypervisorBackedProvider[HostConnection]):
    """KVM VMs on libvirt hosts into a NAS repository, all disks of a VM at one instant."""

    driver = "kvm"
    freezes_disks = "libvirt snapshots every disk at once"
    hosts_shape = '{"<host id>": {"transport": "local"} or ssh settings, ...}'
    restores: KvmRestore
    own_keys = KVM_KEYS

    def __init__(self, name: str, config: Mapping[str, Any], data_dir: Path) -> None:
        super().__init__(name, config, data_dir)
        fields = self.fields
        self.options = KvmSnapshotOptions(
            quiesce_fallback=fields.flag("quiesce_fallback"),
            command_timeout_s=fields.number("command_timeout_s", 60.0, above=0, what=_SECONDS),
            commit_timeout_s=fields.number("commit_timeout_s", 900.0, above=0, what=_SECONDS),
        )
        self._transports: dict[HostConnection, Transport] = {}
        self._lock = threading.Lock()
        self.snapshots = KvmSnapshot(self._libvirt, self.options)
        self.nas = self.repository(self.snapshots)
        self.restores = KvmRestore(
            self.snapshots,
            self.nas,
            self._libvirt,
            self.options,
            RestoreOptions(
                shutdown_timeout_s=fields.number("shutdown_timeout_s", 10.0, above=0, what=_SECONDS)
            ),
        )

    @classmethod
    def read_host(cls, connection: Mapping[str, Any]) -> HostConnection:
        return HostConnection.from_config(connection)

    # -- hosts

    def _libvirt(self, vm: VMRef) -> Libvirt:
        settings = self.host_settings(vm)
        with self._lock:
            transport = self._transports.get(settings)
            if transport is None:
                # One transport per host, reused: an SSH connection per command would be slow.
                # Keyed by the settings, so a host given new ones is reached the new way.
                transport = self._transports[settings] = settings.open()
        return Libvirt(transport, settings.libvirt_uri, timeout=self.options.command_timeout_s)

    def close(self) -> None:
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            transport.close()

    # -- operations

    def repair(self, vm: VMRef) -> list[Any]:
        """Merge back overlays a killed backup left on the VM (every backup does this first)."""
        return self.snapshots.repair(vm)

    def restore_vm(self, point: RestorePointRef, target: VMRef, progress: Progress) -> VMRef | None:
        if target.id != point.vm.id:
            # The framework's restore to a new VM: a new id and new volume paths.
            return self.restores.new_vm(point, target, progress, recreate=False)
        if self.restores.find(target) is None:
            # The VM's domain was undefined since: bring it back as it was.
            return self.restores.new_vm(point, target, progress, recreate=True)
        self.restores.in_place(point, target, progress)
        return None
