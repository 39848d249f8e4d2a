"""The ``vsphere`` provider: vSphere snapshots and the datastore HTTP interface feed the NAS
data mover (dedup, compression, checksums, encryption) with each VM's disks.

Composition for the data, like the ``kvm`` provider: a ``NasProvider`` built from this provider's
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

from orchestrator.domain.errors import ProviderError
from providers.base import (
    HostRef,
    Progress,
    RestorePointRef,
    VMRef,
)
from providers.nas.hypervisor_backed import HypervisorBackedProvider
from providers.nas.manifest import point_name
from providers.vsphere.api import VSphere
from providers.vsphere.connection import VCenterSettings, sessions
from providers.vsphere.restore import VSphereRestore
from providers.vsphere.snapshot import VSphereOptions, VSphereSnapshot

log = logging.getLogger(__name__)

VSPHERE_KEYS = frozenset({"quiesce_fallback", "cbt", "task_timeout_s"})


class VSphereProvider(HypervisorBackedProvider[VCenterSettings]):
    """vSphere VMs into a NAS repository, all disks of a VM from one snapshot."""

    driver = "vsphere"
    freezes_disks = "a vSphere snapshot covers every disk"
    hosts_shape = '{"<host id>": {"url": ..., "username": ..., ...}, ...}'
    restores: VSphereRestore
    own_keys = VSPHERE_KEYS

    def __init__(self, name: str, config: Mapping[str, Any], data_dir: Path) -> None:
        super().__init__(name, config, data_dir)
        fields = self.fields
        self.options = VSphereOptions(
            quiesce_fallback=fields.flag("quiesce_fallback"), cbt=fields.flag("cbt", True)
        )
        self.task_timeout_s = fields.number("task_timeout_s", 900.0, above=0, what="a number of seconds > 0")
        self.snapshots = VSphereSnapshot(self._vsphere, self.options)
        self.nas = self.repository(self.snapshots)
        self.restores = VSphereRestore(self.snapshots, self.nas, self._vsphere)

    @classmethod
    def read_host(cls, connection: Mapping[str, Any]) -> VCenterSettings:
        return VCenterSettings.from_config(connection)

    # -- vCenters

    def _vsphere(self, vm: VMRef) -> VSphere:
        settings = self.host_settings(vm)
        datacenter = vm.details.get("datacenter") or settings.datacenter
        return VSphere(sessions.get(settings), datacenter, self.task_timeout_s)

    # -- operations

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
                settings = self.recorded_settings(host) if host.connection else self.hosts.get(host.id)
                if settings is None:
                    continue
                api = VSphere(sessions.get(settings), settings.datacenter, self.task_timeout_s)
                removed += self.snapshots.sweep(api, keep)
            except ProviderError as exc:
                log.warning("host %s: leftover snapshots not removed: %s", host.id, exc.message)
        return removed

    def restore_vm(self, point: RestorePointRef, target: VMRef, progress: Progress) -> VMRef | None:
        if target.id != point.vm.id:
            # The framework's restore to a new VM: a new id, a new name.
            return self.restores.new_vm(point, target, progress)
        if self._vsphere(target).find_vm(target) is None:
            # The VM was deleted since: bring it back as it was.
            return self.restores.new_vm(point, target, progress)
        self.restores.in_place(point, target, progress)
        return None
