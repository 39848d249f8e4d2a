"""A vSphere snapshot of all of a VM's disks, read through the datastore HTTP interface.

``capture`` first removes every snapshot a killed backup left on the VM, turns changed-block
tracking on where it is off (configured), takes one snapshot without memory, quiesced by
VMware Tools when asked (crash-consistent when that fails and the configuration allows,
recorded as such), and hands the NAS data mover a reader per disk: the disk's base data
file, ``-flat.vmdk``, which the snapshot keeps read-only while the VM writes to a delta.
The snapshot is removed when the reading is done, failed or not.

Changed-block tracking: each disk's reader records the disk's ``changeId`` as of the
snapshot on the restore point. The next backup asks ``QueryChangedDiskAreas`` for the areas
changed since that id and reads only those; the other chunks are the parent's. Without a
recorded id, with tracking just turned on, or when vCenter refuses the id (tracking was
reset), the whole disk is read and deduplicated, and the restore point says why.
"""

from __future__ import annotations

import bisect
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pyVmomi import vim

from orchestrator.domain.errors import ProviderError
from providers.base import VMRef, VolumeRef
from providers.nas.chunker import ImageReader, zeros
from providers.nas.snapshot import Capture, SnapshotSource, SourceImage
from providers.vsphere.api import SNAPSHOT_PREFIX, Disk, VSphere
from providers.vsphere.datastore import DatastorePath, Datastores

log = logging.getLogger(__name__)

CONSISTENCY_QUIESCED = "vsphere+quiesce"
CONSISTENCY_CRASH = "vsphere"
CONSISTENCY_STOPPED = "stopped"


@dataclass(frozen=True)
class VSphereOptions:
    # Take a crash-consistent snapshot when quiescing fails (no VMware Tools, a freeze that
    # timed out); otherwise such a backup fails and says why.
    quiesce_fallback: bool = False
    # Turn changed-block tracking on and read only the changed areas of incrementals.
    cbt: bool = True


class DiskReader(ImageReader):
    """A snapshot's base disk data file, read in ranges; what lies beyond the file's end (a
    thin or short file) reads as zeros. Its ``state`` (kept on the restore point) adds the
    bytes it fetched."""

    def __init__(
        self,
        datastores: Datastores,
        path: DatastorePath,
        size: int,
        file_size: int,
        changed: list[tuple[int, int]] | None,
        state: Mapping[str, Any],
    ) -> None:
        self.datastores = datastores
        self.path = path
        self.size = size
        self.file_size = file_size
        # None: every area may have changed (a full read).
        self._changed = None if changed is None else _merged(changed)
        self._starts = [start for start, _ in self._changed or ()]
        self._state = dict(state)
        self.fetched = 0
        self._lock = threading.Lock()

    @property
    def state(self) -> Mapping[str, Any]:
        return MappingProxyType({**self._state, "fetched_bytes": self.fetched})

    def unchanged(self, offset: int, length: int) -> bool:
        if self._changed is None:
            return False
        # The areas are merged, sorted and disjoint: only the last one starting before the
        # range's end can reach into it.
        i = bisect.bisect_right(self._starts, offset + length - 1) - 1
        return i < 0 or sum(self._changed[i]) <= offset

    def read(self, offset: int, length: int) -> bytes | None:
        if offset >= self.file_size:
            return None
        want = min(length, self.file_size - offset)
        data = self.datastores.read(self.path, offset, want)
        with self._lock:
            self.fetched += len(data)
        return data + zeros(length - len(data)) if len(data) < length else data


def _merged(areas: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, length in sorted(areas):
        if merged and start <= sum(merged[-1]):
            last_start, last_length = merged[-1]
            merged[-1] = (last_start, max(last_length, start + length - last_start))
        elif length > 0:
            merged.append((start, length))
    return merged


def volume_disk(vm: VMRef, volume: VolumeRef, disks: list[Disk]) -> Disk | None:
    """The disk of ``volume``: by the device key discovery recorded for its path, else by path."""
    recorded = vm.details.get("disks") or ()
    key = next(
        (d.get("key") for d in recorded if isinstance(d, Mapping) and d.get("path") == volume.path), None
    )
    by_key = next((d for d in disks if key is not None and d.key == key), None)
    return by_key or next((d for d in disks if d.file == volume.path), None)


class VSphereSnapshot(SnapshotSource):
    """Point-in-time reads of a VM's disks through one vSphere snapshot."""

    def __init__(self, connect: Callable[[VMRef], VSphere], options: VSphereOptions) -> None:
        self.connect = connect
        self.options = options

    # -- what killed workers left

    def repair(self, vm: VMRef) -> list[str]:
        """Remove every snapshot this product took of the VM (the backups that took them
        are over: backups of one VM do not overlap); returns their names."""
        api = self.connect(vm)
        moref = api.find_vm(vm)
        return [] if moref is None else self._release(api, moref, vm.name)

    def _release(
        self, api: VSphere, moref: str, vm_name: str, keep: frozenset[str] = frozenset()
    ) -> list[str]:
        removed = []
        for snap in api.snapshots(moref, f"reading the snapshots of VM {vm_name}"):
            if snap.point_id is None or snap.point_id in keep:
                continue
            api.remove_snapshot(moref, snap.moref, f"removing snapshot {snap.name} of VM {vm_name}")
            log.info("removed snapshot %s left on VM %s", snap.name, vm_name)
            removed.append(snap.name)
        return removed

    def sweep(self, api: VSphere, keep: frozenset[str]) -> list[str]:
        """Remove this product's snapshots on every VM of the vCenter, except those of the
        restore points in ``keep`` (backups still running); returns what was removed."""
        removed = []
        for moref, name, snap in api.our_snapshots():
            if snap.point_id in keep:
                continue
            api.remove_snapshot(moref, snap.moref, f"removing snapshot {snap.name} of VM {name}")
            log.info("removed snapshot %s left on VM %s", snap.name, name)
            removed.append(f"{name}: {snap.name}")
        return removed

    # -- capture

    @contextmanager
    def capture(self, vm: VMRef, point_id: str, *, quiesce: bool = False) -> Iterator[Capture]:
        api = self.connect(vm)
        try:
            with self._captured(api, vm, point_id, quiesce) as capture:
                yield capture
        finally:
            api.close()

    @contextmanager
    def _captured(self, api: VSphere, vm: VMRef, point_id: str, quiesce: bool) -> Iterator[Capture]:
        moref = api.require_vm(vm)
        # Whatever a killed worker left on this VM first: never stack snapshots.
        self._release(api, moref, vm.name)
        props = api.vm_props(
            moref, ["runtime.powerState", "config.changeTrackingEnabled"], f"reading VM {vm.name}"
        )
        tracking: bool | str = bool(props.get("config.changeTrackingEnabled"))
        if self.options.cbt and not tracking:
            tracking = self._track(api, moref, vm)
        running = props.get("runtime.powerState") == "poweredOn"
        snapshot, consistency = self._snapshot(api, moref, vm, point_id, quiesce and running)
        if not running:
            consistency = CONSISTENCY_STOPPED
        try:
            disks = api.snapshot_disks(snapshot, f"reading the disks of snapshot {point_id} of VM {vm.name}")
            images = {v.id: self._image(api, moref, snapshot, vm, v, disks, tracking) for v in vm.volumes}
            yield Capture(images, consistency)
        except BaseException as exc:
            try:
                api.remove_snapshot(moref, snapshot, f"removing snapshot {point_id} of VM {vm.name}")
            except ProviderError as cleanup:  # the original failure stays the job's error
                log.error("removing the snapshot of a failed backup of %s: %s", vm.name, cleanup.message)
                exc.add_note(
                    f"and removing its snapshot failed ({cleanup.message}); the next backup removes it"
                )
            raise
        else:
            api.remove_snapshot(moref, snapshot, f"removing snapshot {point_id} of VM {vm.name}")

    def _track(self, api: VSphere, moref: str, vm: VMRef) -> str:
        """Turn changed-block tracking on; why this backup reads every disk in full."""
        try:
            api.reconfigure(
                moref,
                vim.vm.ConfigSpec(changeTrackingEnabled=True),
                f"turning on changed-block tracking of VM {vm.name}",
            )
        except ProviderError as exc:
            if exc.retryable:
                raise
            # E.g. a VM with snapshots of its own: the backup goes on, reading in full.
            log.warning("VM %s: changed-block tracking not turned on: %s", vm.name, exc.message)
            return f"changed-block tracking could not be turned on ({exc.message})"
        return "changed-block tracking was just turned on"

    def _snapshot(self, api: VSphere, moref: str, vm: VMRef, point_id: str, quiesce: bool) -> tuple[str, str]:
        name = f"{SNAPSHOT_PREFIX}{point_id}"
        description = (
            f"Taken by the backup orchestrator for restore point {point_id} on {socket.gethostname()} "
            f"(pid {os.getpid()}); removed when that backup ends, or by the next backup of this VM."
        )
        what = f"taking snapshot {name} of VM {vm.name}"
        if quiesce:
            try:
                return api.create_snapshot(
                    moref, name, description, quiesce=True, what=what
                ), CONSISTENCY_QUIESCED
            except ProviderError as exc:
                if exc.retryable or not self.options.quiesce_fallback:
                    raise
                log.warning(
                    "VM %s: quiescing failed, taking a crash-consistent snapshot: %s", vm.name, exc.message
                )
        return api.create_snapshot(moref, name, description, quiesce=False, what=what), CONSISTENCY_CRASH

    def _image(
        self,
        api: VSphere,
        moref: str,
        snapshot: str,
        vm: VMRef,
        volume: VolumeRef,
        disks: list[Disk],
        tracking: bool | str,
    ) -> SourceImage:
        disk = volume_disk(vm, volume, disks)
        if disk is None:
            known = ", ".join(d.file for d in disks) or "none"
            raise ProviderError(
                f"VM {vm.name}: volume {volume.path} is not a disk of the VM (its disks: {known}); "
                "re-discover it",
                retryable=False,
            )
        if disk.delta:
            raise ProviderError(
                f"VM {vm.name}: disk {disk.file} is a snapshot's delta (the VM has snapshots of its own); "
                "the vsphere driver reads flat base disks: consolidate or remove those snapshots",
                retryable=False,
            )
        data = DatastorePath.parse(disk.file).flat()

        def open_reader(parent: Mapping[str, Any]) -> ImageReader:
            return self._reader(api, moref, snapshot, vm, disk, data, tracking, parent)

        return SourceImage(str(data), "raw", open=open_reader)

    def _reader(
        self,
        api: VSphere,
        moref: str,
        snapshot: str,
        vm: VMRef,
        disk: Disk,
        data: DatastorePath,
        tracking: bool | str,
        parent: Mapping[str, Any],
    ) -> DiskReader:
        datastores = api.datastores()
        file_size = datastores.size(data)
        if file_size is None:
            raise ProviderError(
                f"VM {vm.name}: disk {disk.file} has no data file {data} (the vsphere driver reads flat "
                "VMFS/NFS disks)",
                retryable=False,
            )
        changed, how = self._changes(api, moref, snapshot, vm, disk, tracking, parent)
        state = {"change_id": disk.change_id, "read": how, "disk_key": disk.key}
        return DiskReader(datastores, data, disk.capacity, file_size, changed, state)

    def _changes(
        self,
        api: VSphere,
        moref: str,
        snapshot: str,
        vm: VMRef,
        disk: Disk,
        tracking: bool | str,
        parent: Mapping[str, Any],
    ) -> tuple[list[tuple[int, int]] | None, str]:
        """The areas to read (None: all) and how the restore point says it was read.
        ``tracking``: True when it was on before this backup, else why it was not."""
        if not self.options.cbt:
            return None, "full"
        if tracking is not True:
            return None, f"full: {tracking or 'changed-block tracking is off'}"
        previous = parent.get("change_id")
        if not previous:
            return None, "full: no change id recorded for the disk"
        if not disk.change_id:
            return None, "full: vCenter gives the disk no change id"
        try:
            areas = api.changed_areas(
                moref,
                snapshot,
                disk,
                str(previous),
                f"reading the changed areas of disk {disk.file} of VM {vm.name}",
            )
        except ProviderError as exc:
            if exc.retryable:
                raise
            # Tracking was reset (a disk moved, a snapshot reverted): the old id means nothing.
            log.warning("VM %s disk %s: full read, change id refused: %s", vm.name, disk.file, exc.message)
            return None, f"full: change id {previous} refused ({exc.message})"
        return areas, f"changed areas since {previous}"
