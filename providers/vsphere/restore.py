"""Restores through vCenter: disks written with the datastore interface's HTTP PUT.

In place: the VM's disks checked against the restore point (the same disks, the same sizes,
no snapshot of its own), the VM powered off when it runs, each disk's data file replaced,
and the VM powered on again if it was running.

To a new VM: the VM is created in the original's folder and resource pool, on its
datastore, with the hardware the restore point recorded (controllers, disks of the same
sizes on the same bus and unit, network adapters on the same networks), then its new disks'
data files are written. It gets the framework's new id as its instance UUID.

One disk to another VM: the data file and a descriptor for it are uploaded beside the
target VM's files, and the disk is added to the VM on a free unit of its first SCSI
controller.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pyVmomi import vim

from orchestrator.domain.errors import ProviderError
from providers.base import Progress, RestorePointRef, VMRef, VolumeRef
from providers.nas.driver import NasProvider, Sink, require_whole, stored_volume
from providers.nas.manifest import Manifest, VolumeManifest
from providers.nas.restore import match_volumes
from providers.vsphere.api import Disk, VSphere
from providers.vsphere.datastore import DatastorePath
from providers.vsphere.snapshot import VSphereSnapshot

log = logging.getLogger(__name__)

SECTOR = 512
_SCSI_UNITS = [u for u in range(16) if u != 7]  # unit 7 is the controller's own
_CONTROLLERS: dict[str, type] = {
    "pvscsi": vim.vm.device.ParaVirtualSCSIController,
    "lsilogic": vim.vm.device.VirtualLsiLogicController,
    "lsilogic-sas": vim.vm.device.VirtualLsiLogicSASController,
    "buslogic": vim.vm.device.VirtualBusLogicController,
    "ahci": vim.vm.device.VirtualAHCIController,
    "nvme": vim.vm.device.VirtualNVMEController,
}
_NICS: dict[str, type] = {
    "e1000": vim.vm.device.VirtualE1000,
    "e1000e": vim.vm.device.VirtualE1000e,
    "vmxnet3": vim.vm.device.VirtualVmxnet3,
    "vmxnet2": vim.vm.device.VirtualVmxnet2,
    "pcnet32": vim.vm.device.VirtualPCNet32,
}


def descriptor(flat_name: str, size: int) -> bytes:
    """A VMFS flat disk's descriptor naming its data file."""
    sectors = size // SECTOR
    cylinders = max(1, sectors // (255 * 63))
    return (
        '# Disk DescriptorFile\nversion=1\nencoding="UTF-8"\nCID=fffffffe\nparentCID=ffffffff\n'
        'createType="vmfs"\n\n# Extent description\n'
        f'RW {sectors} VMFS "{flat_name}"\n\n# The Disk Data Base\n#DDB\n\n'
        'ddb.adapterType = "lsilogic"\n'
        f'ddb.geometry.cylinders = "{cylinders}"\nddb.geometry.heads = "255"\nddb.geometry.sectors = "63"\n'
        f'ddb.uuid = "{" ".join(f"{b:02x}" for b in uuid.uuid4().bytes)}"\n'
        'ddb.virtualHWVersion = "13"\n'
    ).encode()


class VSphereRestore:
    def __init__(
        self, snapshots: VSphereSnapshot, nas: NasProvider, connect: Callable[[VMRef], VSphere]
    ) -> None:
        self.snapshots = snapshots
        self.nas = nas
        self.connect = connect

    def _sink(self, api: VSphere, path: DatastorePath) -> Sink:
        def write(volume: VolumeManifest, data: Iterator[bytes]) -> None:
            api.datastores().write(path, data, volume.size)
            log.info("wrote %s (%d bytes) of restore point to %s", volume.label, volume.size, path)

        return write

    # -- in place

    def in_place(self, point: RestorePointRef, target: VMRef, progress: Progress) -> None:
        api = self.connect(target)
        try:
            self._in_place(api, point, target, progress)
        finally:
            api.close()

    def _in_place(self, api: VSphere, point: RestorePointRef, target: VMRef, progress: Progress) -> None:
        moref = api.require_vm(target)
        # A snapshot a killed backup left would keep the VM running on a delta over the restore.
        self.snapshots.repair(target)
        what = f"reading VM {target.name}"
        was_on = api.power_state(moref, what) == "poweredOn"
        stopped = False

        def plan(manifest: Manifest) -> list[tuple[VolumeManifest, Sink]]:
            nonlocal stopped
            require_whole(manifest)
            disks = api.disks(moref, what)
            pairs = []
            problems = []
            for stored, volume in match_volumes(manifest, target):
                disk = next((d for d in disks if d.file == volume.path), None)
                if disk is None:
                    problems.append(f"{volume.path} is not one of its disks")
                elif disk.delta:
                    problems.append(f"{volume.path} runs on a snapshot's delta ({disk.file})")
                elif disk.capacity != stored.size:
                    problems.append(
                        f"{volume.path} holds {disk.capacity} bytes, the restore point {stored.size}"
                    )
                else:
                    pairs.append((stored, self._sink(api, DatastorePath.parse(disk.file).flat())))
            if problems:
                raise ProviderError(
                    f"VM {target.name}: its disks differ from restore point {point.id}: "
                    + "; ".join(problems)
                    + ". Nothing was changed",
                    retryable=False,
                )
            if was_on:
                api.power(moref, False, f"powering off VM {target.name}")
                stopped = True
            return pairs

        try:
            self.nas.stream_restore(point, plan, progress)
        except ProviderError as exc:
            state = "powered off" if stopped else "as it was"
            raise ProviderError(
                f"restoring VM {target.name} in place failed: {exc.message}. The VM is {state}"
                + (
                    "; some disks may already hold the restore point, restore again before powering it on"
                    if stopped
                    else ""
                ),
                retryable=exc.retryable,
            ) from None
        if was_on:
            api.power(moref, True, f"powering on VM {target.name}")

    # -- to a new VM

    def new_vm(self, point: RestorePointRef, target: VMRef, progress: Progress) -> VMRef:
        api = self.connect(target)
        try:
            return self._new_vm(api, point, target, progress)
        finally:
            api.close()

    def _new_vm(self, api: VSphere, point: RestorePointRef, target: VMRef, progress: Progress) -> VMRef:
        source = point.vm.details
        folder, pool = source.get("folder"), source.get("resource_pool")
        if not folder or not pool:
            raise ProviderError(
                f"restore point {point.id} does not record the folder and resource pool of VM "
                f"{point.vm.name}; it cannot be restored to a new VM",
                retryable=False,
            )
        created: dict[str, Any] = {}

        def plan(manifest: Manifest) -> list[tuple[VolumeManifest, Sink]]:
            require_whole(manifest)
            pairs = match_volumes(manifest, point.vm)
            spec, placed = _new_vm_spec(api, point.vm, target, pairs)
            moref = api.create_vm(str(folder), str(pool), spec, f"creating VM {target.name}")
            created["moref"] = moref
            disks = api.disks(moref, f"reading new VM {target.name}")
            sinks = []
            for stored, (controller, unit) in placed:
                disk = _disk_at(disks, controller, unit, api, moref)
                created.setdefault("disks", {})[stored.id] = disk
                sinks.append((stored, self._sink(api, DatastorePath.parse(disk.file).flat())))
            return sinks

        try:
            self.nas.stream_restore(point, plan, progress)
        except BaseException as exc:
            if "moref" in created:
                # A new VM with disks half written is no restore: it goes.
                try:
                    api.destroy_vm(created["moref"], f"removing VM {target.name} of a failed restore")
                except ProviderError as cleanup:
                    exc.add_note(f"and removing the new VM {target.name} failed: {cleanup.message}")
            raise
        moref = created["moref"]
        return _restored_ref(api, moref, point, target, created["disks"])

    # -- one volume to another VM

    def volume(
        self, point: RestorePointRef, volume: VolumeRef, target: VMRef, progress: Progress
    ) -> VolumeRef:
        api = self.connect(target)
        try:
            return self._volume(api, point, volume, target, progress)
        finally:
            api.close()

    def _volume(
        self, api: VSphere, point: RestorePointRef, volume: VolumeRef, target: VMRef, progress: Progress
    ) -> VolumeRef:
        moref = api.require_vm(target)
        props = api.vm_props(
            moref, ["config.files.vmPathName", "config.hardware.device"], f"reading VM {target.name}"
        )
        home = DatastorePath.parse(str(props.get("config.files.vmPathName")))
        # Checked before anything is uploaded.
        controller, unit = _free_scsi_unit(props.get("config.hardware.device") or (), target.name)
        new_id = str(uuid.uuid4())
        stem = DatastorePath.parse(volume.path).relative.rsplit("/", 1)[-1].removesuffix(".vmdk")
        name = f"{stem}-restored-{new_id[:8]}"
        disk_path, flat = home.sibling(f"{name}.vmdk"), home.sibling(f"{name}-flat.vmdk")
        found: dict[str, VolumeManifest] = {}

        def plan(manifest: Manifest) -> list[tuple[VolumeManifest, Sink]]:
            stored = stored_volume(manifest, volume)
            if stored.size % SECTOR:
                raise ProviderError(f"{stored.label} is not a whole number of sectors", retryable=False)
            found["stored"] = stored
            return [(stored, self._sink(api, flat))]

        try:
            self.nas.stream_restore(point, plan, progress)
            stored = found["stored"]
            text = descriptor(flat.relative.rsplit("/", 1)[-1], stored.size)
            api.datastores().write(disk_path, iter([text]), len(text))
            disk = vim.vm.device.VirtualDisk(
                key=-1,
                controllerKey=controller,
                unitNumber=unit,
                capacityInKB=stored.size // 1024,
                backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                    diskMode="persistent", fileName=str(disk_path)
                ),
            )
            api.reconfigure(
                moref,
                vim.vm.ConfigSpec(
                    deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=disk)]
                ),
                f"attaching {disk_path} to VM {target.name}",
            )
        except BaseException as exc:
            # Files nothing uses would stay on the datastore, unnamed by any inventory.
            for path in (disk_path, flat):
                try:
                    if found and api.datastores().size(path) is not None:
                        api.delete_file(str(path), f"removing {path} of a failed restore")
                except ProviderError as cleanup:
                    exc.add_note(f"and removing {path} failed: {cleanup.message}")
            raise
        return VolumeRef(
            id=new_id,
            name=f"{stored.name}-restored",
            type="DATADISK",
            device_id=max((v.device_id for v in target.volumes), default=0) + 1,
            size=stored.size,
            path=str(disk_path),
            format="vmdk",
            pool_id=volume.pool_id,
        )


def _free_scsi_unit(devices: Sequence[Any], vm_name: str) -> tuple[int, int]:
    """(controller key, unit) of the first free unit on the VM's SCSI controllers."""
    used = {(d.controllerKey, d.unitNumber) for d in devices if getattr(d, "controllerKey", None) is not None}
    for controller in devices:
        if isinstance(controller, vim.vm.device.VirtualSCSIController):
            free = next((u for u in _SCSI_UNITS if (controller.key, u) not in used), None)
            if free is not None:
                return controller.key, free
    raise ProviderError(
        f"VM {vm_name} has no SCSI controller with a free unit to attach a disk to", retryable=False
    )


def _recorded_disk(vm: VMRef, volume: VolumeRef) -> Mapping[str, Any]:
    disk = next((d for d in vm.details.get("disks") or () if d.get("path") == volume.path), None)
    if disk is None:
        raise ProviderError(
            f"restore point of VM {vm.name} does not record the disk {volume.path} (controller, unit)",
            retryable=False,
        )
    return disk


def _new_vm_spec(
    api: VSphere, source: VMRef, target: VMRef, pairs: Sequence[tuple[VolumeManifest, VolumeRef]]
) -> tuple[vim.vm.ConfigSpec, list[tuple[VolumeManifest, tuple[int, int]]]]:
    """The new VM's configuration, and where each restored volume goes (controller bus
    number, unit): the new disks' files are found there once vCenter made them."""
    details = source.details
    changes = []
    keys: dict[int, int] = {}
    buses: dict[int, int] = {}
    for n, controller in enumerate(details.get("controllers") or (), start=1):
        kind = _CONTROLLERS.get(str(controller.get("model")))
        if kind is None:
            continue  # IDE controllers come with every VM
        key = -n
        keys[int(controller["key"])] = key
        buses[key] = int(controller.get("index", 0))
        device = kind(key=key, busNumber=int(controller.get("index", 0)))
        if isinstance(device, vim.vm.device.VirtualSCSIController):
            device.sharedBus = vim.vm.device.VirtualSCSIController.Sharing.noSharing
        changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=device))
    placed = []
    first_ds = None
    for n, (stored, volume) in enumerate(pairs, start=1):
        disk = _recorded_disk(source, volume)
        controller = keys.get(int(disk.get("controller_key", 0)))
        if controller is None:
            raise ProviderError(
                f"disk {volume.path} of VM {source.name} is on a {disk.get('bus')} controller the restore "
                "cannot create",
                retryable=False,
            )
        datastore = disk.get("datastore") or DatastorePath.parse(volume.path).datastore
        first_ds = first_ds or datastore
        device = vim.vm.device.VirtualDisk(
            key=-100 - n,
            controllerKey=controller,
            unitNumber=int(disk["unit"]),
            capacityInKB=stored.size // 1024,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                diskMode="persistent", fileName=f"[{datastore}]", thinProvisioned=bool(disk.get("thin"))
            ),
        )
        changes.append(
            vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=device)
        )
        placed.append((stored, (buses[controller], int(disk["unit"]))))
    for n, nic in enumerate(details.get("nics") or (), start=1):
        kind = _NICS.get(str(nic.get("model")), vim.vm.device.VirtualVmxnet3)
        backing = _nic_backing(api, nic, target.name)
        if backing is None:
            continue
        # A new MAC: the original VM may still run with its own.
        device = kind(key=-200 - n, backing=backing, addressType="generated")
        changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=device))
    spec = vim.vm.ConfigSpec(
        name=target.name,
        instanceUuid=target.id,
        guestId=details.get("guest_id") or "otherGuest64",
        numCPUs=int(details.get("vcpus") or 1),
        memoryMB=max(4, int(details.get("memory_bytes") or 0) // (1 << 20)),
        files=vim.vm.FileInfo(vmPathName=f"[{first_ds}]"),
        deviceChange=changes,
    )
    return spec, placed


def _nic_backing(api: VSphere, nic: Mapping[str, Any], vm_name: str) -> Any:
    """The NIC's network as the new VM joins it: a standard network by name, a distributed
    port group by key and switch; None (logged) for one it cannot join (an opaque network)."""
    if nic.get("kind") == "network":
        return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=str(nic.get("source")))
    if nic.get("kind") == "dvportgroup":
        key = nic.get("portgroup_key")
        found = api.port_group(
            str(key) if key else None, str(nic.get("source")), f"finding port group {nic.get('source')}"
        )
        if found is not None:
            port = vim.dvs.PortConnection(portgroupKey=found[0], switchUuid=found[1])
            return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port)
    log.warning("new VM %s: NIC on %s %s not recreated", vm_name, nic.get("kind"), nic.get("source"))
    return None


def _disk_at(disks: list[Disk], bus: int, unit: int, api: VSphere, moref: str) -> Disk:
    controllers = {
        d.key: d.busNumber
        for d in api.vm_props(moref, ["config.hardware.device"], "reading the new VM's controllers").get(
            "config.hardware.device", ()
        )
        if isinstance(d, vim.vm.device.VirtualController)
        and not isinstance(d, vim.vm.device.VirtualIDEController)
    }
    found = next((d for d in disks if controllers.get(d.controller_key) == bus and d.unit == unit), None)
    if found is None:
        raise ProviderError(
            f"vCenter {api.host}: the new VM has no disk at bus {bus} unit {unit}", retryable=False
        )
    return found


def _restored_ref(
    api: VSphere, moref: str, point: RestorePointRef, target: VMRef, disks: Mapping[str, Disk]
) -> VMRef:
    """The new VM as the inventory should know it: its volumes at their new paths."""
    props = api.vm_props(
        moref, ["config.instanceUuid", "config.uuid", "config.files.vmPathName"], "reading the new VM"
    )
    by_device = {v.device_id: v for v in target.volumes}
    volumes = []
    recorded = []
    for source in point.vm.volumes:
        disk = disks.get(source.id)
        mine = by_device.get(source.device_id)
        if disk is None or mine is None:
            continue
        volumes.append(replace(mine, path=disk.file, format="vmdk"))
        old = _recorded_disk(point.vm, source)
        recorded.append({**old, "path": disk.file, "key": disk.key, "controller_key": disk.controller_key})
    details = {
        **target.details,
        "moref": moref,
        "bios_uuid": props.get("config.uuid"),
        "vmx_path": props.get("config.files.vmPathName"),
        "disks": recorded,
    }
    if props.get("config.instanceUuid") != target.id:
        log.warning(
            "new VM %s got instance UUID %s, not %s", target.name, props.get("config.instanceUuid"), target.id
        )
    # The framework's id stays the VM's id: it made the inventory record under it.
    return VMRef(
        id=target.id,
        name=target.name,
        zone_id=target.zone_id,
        host_id=target.host_id,
        volumes=tuple(volumes),
        details=details,
    )
