"""The ``vsphere`` provider: vSphere snapshots and the datastore HTTP interface feed the NAS
data mover (dedup, compression, checksums, encryption) with each VM's disks.

Composition, like the ``kvm`` provider: a ``NasProvider`` built from this provider's
repository settings does every repository operation, with a ``VSphereSnapshot`` plugged in
as its snapshot source (``providers/vsphere/snapshot.py``); restores write through vCenter
(``providers/vsphere/restore.py``). A VM is reached through its host record, one vCenter:
the record's connection settings (sealed at rest, opened with ``open_sealed``), else this
provider's ``hosts`` entry for it.

Configuration: every NAS key (``repository``, ``chunk_size``, ``encryption``, ...) except the
snapshot ones (the snapshot is vSphere's here), plus:

``hosts``             ``{host_id: vCenter connection}`` (url, username, password, datacenter,
                      ca_file, timeout_seconds) for host records without connection settings.
``quiesce``           declare the ``quiesce`` capability: snapshots asked to quiesce freeze the
                      guest's file systems through VMware Tools (default false).
``quiesce_fallback``  take a crash-consistent snapshot when quiescing fails (default false:
                      such a backup fails and says why).
``cbt``               turn changed-block tracking on at the first backup and read only the
                      changed areas of incrementals (default true).
``task_timeout_s``    deadline of each vCenter task: snapshot, removal, reconfiguration,
                      power, VM creation (default 900).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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
from providers.nas.manifest import point_name
from providers.vsphere.api import VSphere
from providers.vsphere.connection import VCenterSettings, sessions
from providers.vsphere.restore import VSphereRestore
from providers.vsphere.snapshot import VSphereOptions, VSphereSnapshot

log = logging.getLogger(__name__)

VSPHERE_KEYS = frozenset({"hosts", "quiesce", "quiesce_fallback", "cbt", "task_timeout_s"})
# The snapshot is vSphere's: the NAS ways of freezing a VM would be silently ignored.
REFUSED_NAS_KEYS = frozenset(
    {"snapshot", "snapshot_command", "release_command", "freeze_command", "thaw_command"}
)


class VSphereProvider(ProviderDriver):
    """vSphere VMs into a NAS repository, all disks of a VM from one snapshot."""

    driver = "vsphere"

    def __init__(self, name: str, config: Mapping[str, Any], data_dir: Path) -> None:
        super().__init__(name, config, data_dir)
        fields = Fields(config)
        refused = sorted(REFUSED_NAS_KEYS & set(config))
        if refused:
            raise fields.error(
                refused[0], "not used by the vsphere driver (a vSphere snapshot covers every disk); remove it"
            )
        self.hosts = fields.per_key(
            "hosts", VCenterSettings.from_config, '{"<host id>": {"url": ..., "username": ..., ...}, ...}'
        )
        self.quiesce = fields.flag("quiesce")
        self.options = VSphereOptions(
            quiesce_fallback=fields.flag("quiesce_fallback"), cbt=fields.flag("cbt", True)
        )
        self.task_timeout_s = fields.number("task_timeout_s", 900.0, above=0, what="a number of seconds > 0")
        self.snapshots = VSphereSnapshot(self._vsphere, self.options)
        nas_config = {k: v for k, v in config.items() if k not in VSPHERE_KEYS}
        self.nas = NasProvider(name, nas_config, data_dir, snapshot_source=self.snapshots)
        self.restores = VSphereRestore(self.snapshots, self.nas, self._vsphere)

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = NAS_CAPABILITIES | {Capability.MULTI_VOLUME_CONSISTENT, Capability.STOP_VM}
        return caps | {Capability.QUIESCE} if self.quiesce else caps

    def data_folders(self) -> Mapping[str, str]:
        return self.nas.data_folders()

    def list_offerings(self, zone_id: str | None) -> list[ProviderOffering]:
        return self.nas.list_offerings(zone_id)

    # -- vCenters

    def _settings(self, vm: VMRef) -> VCenterSettings:
        """The host record's settings, else this provider's ``hosts`` entry."""
        if not vm.host_id:
            raise ProviderError(
                f"VM {vm.name} has no host; the vsphere driver reaches it through its vCenter",
                retryable=False,
            )
        if vm.host is not None and vm.host.connection:
            return self._host_settings(vm.host)
        settings = self.hosts.get(vm.host_id)
        if settings is None:
            raise ProviderError(
                f"VM {vm.name} is on host {vm.host_id}, which has no connection settings: set them with "
                f"backupctl host connect (provider {self.name!r} has no hosts entry for it either)",
                retryable=False,
            )
        return settings

    def _host_settings(self, host: HostRef) -> VCenterSettings:
        try:
            return VCenterSettings.from_config(self.open_sealed(host.connection))
        except InvalidArgument as exc:
            raise ProviderError(
                f"host {host.id}: {exc.message} (fix it with backupctl host connect)", retryable=False
            ) from None

    def _vsphere(self, vm: VMRef) -> VSphere:
        settings = self._settings(vm)
        datacenter = vm.details.get("datacenter") or settings.datacenter
        return VSphere(sessions.get(settings), datacenter, self.task_timeout_s)

    # -- operations

    def take_backup(self, request: BackupRequest, progress: Progress) -> BackupResult:
        if request.quiesce and not self.quiesce:
            raise ProviderError(
                f"provider {self.name!r} is not configured to quiesce (set quiesce: true)", retryable=False
            )
        return self.nas.take_backup(request, progress)

    def repair(self, vm: VMRef) -> list[str]:
        """Remove the snapshots killed backups left on the VM (every backup does this first)."""
        return self.snapshots.repair(vm)

    def release_leftovers(self, hosts: Iterable[HostRef], in_flight: frozenset[str]) -> list[str]:
        """Remove this product's snapshots on every VM of the given vCenters, except those of
        the restore points still being backed up. A vCenter that cannot be reached is
        logged and skipped: the next reconcile, or the VM's next backup, removes them."""
        # Snapshots are named after the repository's name of the point.
        keep = frozenset(point_name(p) for p in in_flight)
        removed = []
        for host in hosts:
            if host.hypervisor != "vmware":
                continue
            try:
                settings = self._host_settings(host) if host.connection else self.hosts.get(host.id)
                if settings is None:
                    continue
                api = VSphere(sessions.get(settings), settings.datacenter, self.task_timeout_s)
                removed += self.snapshots.sweep(api, keep)
            except ProviderError as exc:
                log.warning("host %s: leftover snapshots not removed: %s", host.id, exc.message)
        return removed

    def delete_backup(self, point: RestorePointRef, *, forced: bool) -> None:
        self.nas.delete_backup(point, forced=forced)

    def abandon_backup(self, restore_point_id: str, attempt: int) -> None:
        self.nas.abandon_backup(restore_point_id, attempt)

    def list_restore_points(self) -> list[StoredPoint]:
        return self.nas.list_restore_points()

    def restore_vm(self, point: RestorePointRef, target: VMRef, progress: Progress) -> VMRef | None:
        if target.id != point.vm.id:
            # The framework's restore to a new VM: a new id, a new name.
            return self.restores.new_vm(point, target, progress)
        if self._vsphere(target).find_vm(target) is None:
            # The VM was deleted since: bring it back as it was.
            return self.restores.new_vm(point, target, progress)
        self.restores.in_place(point, target, progress)
        return None

    def restore_volume(
        self, point: RestorePointRef, volume: VolumeRef, target: VMRef, progress: Progress
    ) -> VolumeRef:
        return self.restores.volume(point, volume, target, progress)

    def verify(self, point: RestorePointRef) -> None:
        self.nas.verify(point)
