"""The vCenter calls the backup driver makes, on the process's session for that vCenter.

Objects are kept as managed object ids and rebuilt on the session's current stub at each
call: a session that logged in again must not be handed objects bound to the old one.
Properties are read through the PropertyCollector (an unset property, such as the snapshot
tree of a VM without snapshots, is then simply absent), and tasks are waited for by
polling their ``info.state`` and ``info.error`` the same way: reading a whole ``TaskInfo``
fails on some servers whose ``entity`` pyVmomi cannot parse.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pyVmomi import vim, vmodl

from orchestrator.domain.errors import ProviderError
from providers.base import VMRef
from providers.vsphere.connection import VCenterSession, describe_fault
from providers.vsphere.datastore import Datastores

T = TypeVar("T")

# Snapshots this product takes are named so: whatever a killed worker left is found by it.
SNAPSHOT_PREFIX = "backup-orchestrator:"
_POLL_S = 0.05
_POLL_MAX_S = 1.0


@dataclass(frozen=True)
class SnapshotInfo:
    moref: str
    name: str
    description: str
    created: datetime | None

    @property
    def point_id(self) -> str | None:
        """The restore point it was taken for, when this product took it."""
        return self.name[len(SNAPSHOT_PREFIX) :] if self.name.startswith(SNAPSHOT_PREFIX) else None


@dataclass(frozen=True)
class Disk:
    """A virtual disk as the VM (or one of its snapshots) has it."""

    key: int
    file: str
    capacity: int
    controller_key: int
    unit: int
    change_id: str | None
    # A delta disk (a snapshot's redo log) names its parent: it is not flat data.
    delta: bool


def _spec(obj: Any, kind: type, paths: Sequence[str]) -> vmodl.query.PropertyCollector.FilterSpec:
    return vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=obj, skip=False)],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=list(paths))],
    )


def read(si: vim.ServiceInstance, obj: Any, kind: type, paths: Sequence[str]) -> dict[str, Any]:
    """The properties of one object that are set."""
    found = si.content.propertyCollector.RetrieveContents([_spec(obj, kind, paths)])
    return {prop.name: prop.val for item in found for prop in item.propSet}


def _walk(trees: Sequence[Any]) -> Iterator[Any]:
    for tree in trees or ():
        yield tree
        yield from _walk(tree.childSnapshotList)


def _snapshots(info: Any) -> list[SnapshotInfo]:
    if info is None:
        return []
    return [
        SnapshotInfo(t.snapshot._moId, t.name, t.description or "", t.createTime)
        for t in _walk(info.rootSnapshotList)
    ]


def disks_of(devices: Sequence[Any] | None) -> list[Disk]:
    disks = []
    for device in devices or ():
        if not isinstance(device, vim.vm.device.VirtualDisk):
            continue
        backing = device.backing
        capacity = device.capacityInBytes or (device.capacityInKB or 0) * 1024
        disks.append(
            Disk(
                key=device.key,
                file=getattr(backing, "fileName", "") or "",
                capacity=int(capacity),
                controller_key=int(device.controllerKey or 0),
                unit=int(device.unitNumber or 0),
                change_id=getattr(backing, "changeId", None),
                delta=getattr(backing, "parent", None) is not None,
            )
        )
    return disks


class VSphere:
    """One vCenter as a VM's host record names it, with its datacenter."""

    def __init__(self, session: VCenterSession, datacenter: str | None, task_timeout_s: float) -> None:
        self.session = session
        self._datacenter = datacenter
        self.task_timeout_s = task_timeout_s
        self._datastores: Datastores | None = None

    @property
    def host(self) -> str:
        return self.session.settings.host

    def call(self, what: str, fn: Callable[[vim.ServiceInstance], T]) -> T:
        return self.session.call(what, fn)

    def datacenter(self) -> str:
        if self._datacenter is None:
            names = self.call(
                "listing datacenters",
                lambda si: [
                    c.name for c in si.content.rootFolder.childEntity if isinstance(c, vim.Datacenter)
                ],
            )
            if not names:
                raise ProviderError(f"vCenter {self.host} has no datacenter", retryable=False)
            self._datacenter = names[0]
        return self._datacenter

    def datastores(self) -> Datastores:
        if self._datastores is None:
            self._datastores = Datastores(self.session.settings, self.datacenter(), self.session.cookie)
        return self._datastores

    def close(self) -> None:
        """Close the datastore connections (the session stays, for the process's next job)."""
        if self._datastores is not None:
            self._datastores.close()

    def delete_file(self, path: str, what: str) -> None:
        def start(si: vim.ServiceInstance) -> vim.Task:
            datacenter = next(
                c
                for c in si.content.rootFolder.childEntity
                if isinstance(c, vim.Datacenter) and c.name == self.datacenter()
            )
            assert si.content.fileManager is not None  # every vCenter has one
            return si.content.fileManager.DeleteDatastoreFile_Task(name=path, datacenter=datacenter)

        self.wait(self.call(what, start), what)

    # -- virtual machines

    def find_vm(self, vm: VMRef) -> str | None:
        """The moref of the VM: by its instance UUID (the inventory's id, kept across
        re-registration), else by the moref discovery recorded."""

        def find(si: vim.ServiceInstance) -> str | None:
            index = si.content.searchIndex
            found = index.FindByUuid(None, vm.id, True, True) if index is not None else None
            if found is not None:
                return str(found._moId)
            moref = vm.details.get("moref")
            if not moref:
                return None
            try:
                read(si, vim.VirtualMachine(moref, si._stub), vim.VirtualMachine, ["name"])
            except vmodl.fault.ManagedObjectNotFound:
                return None
            return str(moref)

        return self.call(f"finding VM {vm.name}", find)

    def require_vm(self, vm: VMRef) -> str:
        moref = self.find_vm(vm)
        if moref is None:
            raise ProviderError(
                f"VM {vm.name}: vCenter {self.host} has no VM with instance UUID {vm.id}"
                + (f" or id {vm.details['moref']}" if vm.details.get("moref") else ""),
                retryable=False,
            )
        return moref

    def vm_props(self, moref: str, paths: Sequence[str], what: str) -> dict[str, Any]:
        return self.call(
            what, lambda si: read(si, vim.VirtualMachine(moref, si._stub), vim.VirtualMachine, paths)
        )

    def disks(self, moref: str, what: str) -> list[Disk]:
        return disks_of(self.vm_props(moref, ["config.hardware.device"], what).get("config.hardware.device"))

    def power_state(self, moref: str, what: str) -> str:
        return str(self.vm_props(moref, ["runtime.powerState"], what).get("runtime.powerState"))

    def power(self, moref: str, on: bool, what: str) -> None:
        def start(si: vim.ServiceInstance) -> vim.Task:
            machine = vim.VirtualMachine(moref, si._stub)
            return machine.PowerOnVM_Task() if on else machine.PowerOffVM_Task()

        self.wait(self.call(what, start), what)

    def destroy_vm(self, moref: str, what: str) -> None:
        self.wait(self.call(what, lambda si: vim.VirtualMachine(moref, si._stub).Destroy_Task()), what)

    def reconfigure(self, moref: str, spec: vim.vm.ConfigSpec, what: str) -> None:
        self.wait(self.call(what, lambda si: vim.VirtualMachine(moref, si._stub).ReconfigVM_Task(spec)), what)

    def create_vm(self, folder: str, pool: str, spec: vim.vm.ConfigSpec, what: str) -> str:
        def start(si: vim.ServiceInstance) -> vim.Task:
            return vim.Folder(folder, si._stub).CreateVM_Task(
                config=spec, pool=vim.ResourcePool(pool, si._stub)
            )

        created = self.wait(self.call(what, start), what)
        return str(created._moId)

    def port_group(self, key: str | None, name: str, what: str) -> tuple[str, str] | None:
        """(key, switch UUID) of a distributed port group, by key, else by name."""

        def find(si: vim.ServiceInstance) -> tuple[str, str] | None:
            content = si.content
            assert content.viewManager is not None  # every vCenter has one
            view = content.viewManager.CreateContainerView(
                content.rootFolder, [vim.dvs.DistributedVirtualPortgroup], True
            )
            try:
                groups = list(view.view)
            finally:
                view.Destroy()
            group = next((g for g in groups if key and g._moId == key), None) or next(
                (g for g in groups if g.name == name), None
            )
            if group is None:
                return None
            props = read(
                si, group, vim.dvs.DistributedVirtualPortgroup, ["key", "config.distributedVirtualSwitch"]
            )
            switch = read(
                si, props["config.distributedVirtualSwitch"], vim.DistributedVirtualSwitch, ["uuid"]
            )
            return str(props["key"]), str(switch["uuid"])

        return self.call(what, find)

    # -- snapshots

    def snapshots(self, moref: str, what: str) -> list[SnapshotInfo]:
        return _snapshots(self.vm_props(moref, ["snapshot"], what).get("snapshot"))

    def create_snapshot(self, moref: str, name: str, description: str, *, quiesce: bool, what: str) -> str:
        def start(si: vim.ServiceInstance) -> vim.Task:
            machine = vim.VirtualMachine(moref, si._stub)
            return machine.CreateSnapshot_Task(
                name=name, description=description, memory=False, quiesce=quiesce
            )

        return str(self.wait(self.call(what, start), what)._moId)

    def snapshot_disks(self, snapshot: str, what: str) -> list[Disk]:
        found = self.call(
            what,
            lambda si: read(
                si, vim.vm.Snapshot(snapshot, si._stub), vim.vm.Snapshot, ["config.hardware.device"]
            ),
        )
        return disks_of(found.get("config.hardware.device"))

    def remove_snapshot(self, moref: str, snapshot: str, what: str) -> None:
        """Remove one snapshot (its changes merged into the disks) and wait until the VM's
        snapshot tree no longer has it."""
        task = self.call(
            what, lambda si: vim.vm.Snapshot(snapshot, si._stub).RemoveSnapshot_Task(removeChildren=False)
        )
        self._poll(task, what, done=lambda: all(s.moref != snapshot for s in self.snapshots(moref, what)))

    def changed_areas(
        self, moref: str, snapshot: str, disk: Disk, change_id: str, what: str
    ) -> list[tuple[int, int]]:
        """(start, length) of every area of ``disk`` that changed since ``change_id``, as of
        ``snapshot``: QueryChangedDiskAreas answers for a part of the disk at a time (its
        ``startOffset`` and ``length``), asked again from where the last answer ended."""

        def query(si: vim.ServiceInstance) -> list[tuple[int, int]]:
            machine = vim.VirtualMachine(moref, si._stub)
            areas: list[tuple[int, int]] = []
            start = 0
            while start < disk.capacity:
                info = machine.QueryChangedDiskAreas(
                    snapshot=vim.vm.Snapshot(snapshot, si._stub),
                    deviceKey=disk.key,
                    startOffset=start,
                    changeId=change_id,
                )
                areas += [(int(a.start), int(a.length)) for a in info.changedArea or ()]
                end = int(info.startOffset) + int(info.length)
                if end <= start:
                    raise ProviderError(
                        f"vCenter {self.host}: {what}: no progress at byte {start}", retryable=False
                    )
                start = end
            return sorted(areas)

        return self.call(what, query)

    # -- tasks

    def wait(self, task: vim.Task, what: str) -> Any:
        """The task's result once it succeeded; ProviderError naming ``what`` and the fault."""
        return self._poll(task, what)

    def _poll(self, task: vim.Task, what: str, done: Callable[[], bool] | None = None) -> Any:
        task_id = str(task._moId)
        deadline = time.monotonic() + self.task_timeout_s
        pause = _POLL_S
        paths = ["info.state", "info.error"]
        while True:
            info = self.call(what, lambda si: read(si, vim.Task(task_id, si._stub), vim.Task, paths))
            state = info.get("info.state")
            if state == "error":
                raise ProviderError(
                    f"vCenter {self.host}: {what}: {describe_fault(info['info.error'])}", retryable=False
                )
            if state == "success" and (done is None or done()):
                if done is not None:
                    return None
                result = self.call(
                    what, lambda si: read(si, vim.Task(task_id, si._stub), vim.Task, ["info.result"])
                )
                return result.get("info.result")
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"vCenter {self.host}: {what}: not done after {self.task_timeout_s:g} s (task {task_id})"
                )
            time.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_S)

    # -- the whole vCenter

    def our_snapshots(self) -> list[tuple[str, str, SnapshotInfo]]:
        """(VM moref, VM name, snapshot) of every snapshot this product took, on every VM the
        session sees, in one PropertyCollector round trip."""

        def collect(si: vim.ServiceInstance) -> list[tuple[str, str, SnapshotInfo]]:
            content = si.content
            assert content.viewManager is not None  # every vCenter has one
            view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
            try:
                spec = vmodl.query.PropertyCollector.FilterSpec(
                    objectSet=[
                        vmodl.query.PropertyCollector.ObjectSpec(
                            obj=view,
                            skip=True,
                            selectSet=[
                                vmodl.query.PropertyCollector.TraversalSpec(
                                    name="vms", type=vim.view.ContainerView, path="view", skip=False
                                )
                            ],
                        )
                    ],
                    propSet=[
                        vmodl.query.PropertyCollector.PropertySpec(
                            type=vim.VirtualMachine, pathSet=["name", "snapshot"]
                        )
                    ],
                )
                found = []
                for item in content.propertyCollector.RetrieveContents([spec]):
                    props = {p.name: p.val for p in item.propSet}
                    for snap in _snapshots(props.get("snapshot")):
                        if snap.point_id is not None:
                            found.append((str(item.obj._moId), str(props.get("name")), snap))
                return found
            finally:
                view.Destroy()

        return self.call("listing snapshots", collect)
