"""A simulator's VM as the inventory hands it to the backup driver (``details`` in the shape
discovery records, volumes at their datastore paths), and its disks' data written and read
the way an operator's tools would: through the datastore HTTP interface and the simulator's
datastore folders."""

from __future__ import annotations

import http.client
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from providers.base import HostRef, VMRef, VolumeRef
from tests.peers.vcsim import Vcsim

MiB = 2**20
HOST_ID = "vcenter-1"
_MODELS = {
    vim.vm.device.ParaVirtualSCSIController: ("scsi", "pvscsi"),
    vim.vm.device.VirtualLsiLogicController: ("scsi", "lsilogic"),
    vim.vm.device.VirtualLsiLogicSASController: ("scsi", "lsilogic-sas"),
    vim.vm.device.VirtualIDEController: ("ide", "ide"),
}


class Sim:
    """A pyVmomi session with the simulator, for the tests' own look at it."""

    def __init__(self, sim: Vcsim) -> None:
        self.sim = sim
        host, port = sim.address.split(":")
        self.context = ssl.create_default_context(cafile=str(sim.ca_file))
        self.host, self.port = host, int(port)
        self.si = SmartConnect(
            host=host, port=self.port, user=sim.username, pwd=sim.password, sslContext=self.context
        )

    def close(self) -> None:
        Disconnect(self.si)

    def vm(self, name: str) -> vim.VirtualMachine:
        content = self.si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        try:
            return next(v for v in view.view if v.name == name)
        finally:
            view.Destroy()

    def wait(self, task: vim.Task) -> Any:
        while task.info.state not in ("success", "error"):
            time.sleep(0.02)
        assert task.info.state == "success", task.info.error
        return task.info.result

    def datastore_dir(self, name: str = "LocalDS_0") -> Path:
        content = self.si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.Datastore], True)
        try:
            ds = next(d for d in view.view if d.name == name)
            return Path(ds.summary.url.removeprefix("ds://"))
        finally:
            view.Destroy()

    def local(self, ds_path: str) -> Path:
        """The simulator's file behind ``[ds] dir/file`` (its datastores are local folders)."""
        ds, rel = ds_path[1:].split("] ", 1)
        return self.datastore_dir(ds) / rel

    def put(self, ds_path: str, data: bytes) -> None:
        ds, rel = ds_path[1:].split("] ", 1)
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context)
        cookie = str(self.si._stub.cookie).split(";", 1)[0]
        connection.request(
            "PUT",
            f"/folder/{quote(rel)}?dcPath=DC0&dsName={quote(ds)}",
            body=data,
            headers={"Cookie": cookie},
        )
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status in (200, 201), response.status

    def disk_paths(self, vm: vim.VirtualMachine) -> list[str]:
        """The VM's disks, by device key (the simulator reorders its device list)."""
        disks = sorted(
            (d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)),
            key=lambda d: d.key,
        )
        return [str(d.backing.fileName) for d in disks]

    def write_disk(self, vm: vim.VirtualMachine, path: str, data: bytes) -> None:
        """Give the VM's disk at ``path`` this content, and that size."""
        self.fill(vm, {path: data})

    def fill(self, vm: vim.VirtualMachine, contents: dict[str, bytes]) -> None:
        """Give the VM's disks (by path) these contents and sizes. The simulator empties every
        disk file of a VM it reconfigures: all disks get their sizes before their data."""
        for path, data in contents.items():
            disk = next(d for d in vm.config.hardware.device if getattr(d.backing, "fileName", None) == path)
            if disk.capacityInKB != len(data) // 1024:
                disk.capacityInKB = len(data) // 1024
                change = vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)
                self.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[change])))
        for path, data in contents.items():
            self.put(path.removesuffix(".vmdk") + "-flat.vmdk", data)

    def add_disk(self, vm: vim.VirtualMachine, size: int) -> None:
        controller = next(
            d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualSCSIController)
        )
        used = {d.unitNumber for d in vm.config.hardware.device if d.controllerKey == controller.key}
        disk = vim.vm.device.VirtualDisk(
            key=-1,
            controllerKey=controller.key,
            unitNumber=next(u for u in range(16) if u != 7 and u not in used),
            capacityInKB=size // 1024,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                diskMode="persistent", fileName="[LocalDS_0]"
            ),
        )
        change = vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)
        self.wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[change])))

    def snapshot_names(self, vm: vim.VirtualMachine) -> list[str]:
        pc = self.si.RetrieveContent().propertyCollector
        spec = vim.PropertyCollector.FilterSpec(
            objectSet=[vim.PropertyCollector.ObjectSpec(obj=vm)],
            propSet=[vim.PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=["snapshot"])],
        )
        names: list[str] = []

        def walk(trees: Any) -> None:
            for tree in trees or ():
                names.append(tree.name)
                walk(tree.childSnapshotList)

        for item in pc.RetrieveContents([spec]):
            for prop in item.propSet:
                walk(prop.val.rootSnapshotList)
        return names

    def _nic(self, device: Any) -> dict[str, Any]:
        nic = {
            "mac": device.macAddress,
            "model": "e1000" if isinstance(device, vim.vm.device.VirtualE1000) else "vmxnet3",
            "key": device.key,
            "vlan": None,
        }
        backing = device.backing
        if isinstance(backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
            key = backing.port.portgroupKey
            name = vim.dvs.DistributedVirtualPortgroup(key, self.si._stub).name
            return {**nic, "kind": "dvportgroup", "source": name, "portgroup_key": key}
        return {**nic, "kind": "network", "source": backing.deviceName, "portgroup_key": None}

    def ref(self, vm: vim.VirtualMachine, vm_id: str | None = None) -> VMRef:
        """The VM in the shape discovery records (the keys the backup driver reads)."""
        config = vm.config
        devices = config.hardware.device
        controllers = []
        for device in devices:
            kind = _MODELS.get(type(device))
            if kind is not None:
                controllers.append(
                    {"type": kind[0], "model": kind[1], "index": device.busNumber, "key": device.key}
                )
        by_key = {c["key"]: c for c in controllers}
        disks = []
        for device in devices:
            if not isinstance(device, vim.vm.device.VirtualDisk):
                continue
            controller = by_key[device.controllerKey]
            path = device.backing.fileName
            disks.append(
                {
                    "target": f"{controller['type']}{controller['index']}:{device.unitNumber}",
                    "bus": controller["type"],
                    "device": "disk",
                    "path": path,
                    "format": "vmdk",
                    "size_bytes": device.capacityInKB * 1024,
                    "key": device.key,
                    "controller_key": device.controllerKey,
                    "unit": device.unitNumber,
                    "datastore": path[1:].split("]", 1)[0],
                    "thin": bool(getattr(device.backing, "thinProvisioned", False)),
                }
            )
        nics = [self._nic(d) for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)]
        details = {
            "moref": vm._moId,
            "datacenter": "DC0",
            "folder": vm.parent._moId,
            "resource_pool": vm.resourcePool._moId,
            "guest_id": config.guestId,
            "vcpus": config.hardware.numCPU,
            "memory_bytes": config.hardware.memoryMB * MiB,
            "vmx_path": config.files.vmPathName,
            "controllers": controllers,
            "disks": disks,
            "nics": nics,
        }
        volumes = tuple(
            VolumeRef(
                id=f"{vm_id or config.instanceUuid}-vol-{n}",
                name=f"{'ROOT' if n == 0 else 'DATA'}-{n}",
                type="ROOT" if n == 0 else "DATADISK",
                device_id=n,
                size=d["size_bytes"],
                path=d["path"],
                format="vmdk",
                pool_id="pool-ds0",
            )
            for n, d in enumerate(disks)
        )
        host = HostRef(HOST_ID, "vmware", self.sim.connection())
        return VMRef(vm_id or config.instanceUuid, vm.name, "zone-1", HOST_ID, volumes, details, host)
