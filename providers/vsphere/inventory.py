"""A vCenter's VMs as discovery describes them, read with the PropertyCollector in a few
round trips whatever the number of VMs.

Reading ``vm.config.hardware.device`` VM by VM costs one SOAP call per property per VM: minutes
for a few thousand VMs on a remote vCenter. Instead every object is read through a ContainerView:
one RetrievePropertiesEx for the datacenters, one for a datacenter's hosts, clusters, datastores
and networks, and one for the VMs (continued page by page when vCenter pages the answer), each
asking only the properties discovery needs, and parsed without pyVmomi's object model
(``bulk``). Device backings name datastores and port groups by moref; the second read resolves
them without another call per VM.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from pyVmomi import vim

from orchestrator.domain.errors import ProviderError
from providers.hypervisor import DiscoveredVM
from providers.vsphere import bulk
from providers.vsphere.bulk import Props, child, fields, flag, is_a, number, text
from providers.vsphere.connection import VCenterSession

VM_PROPERTIES = (
    "name",
    "config.instanceUuid",
    "config.uuid",
    "config.template",
    "config.guestFullName",
    "config.guestId",
    "config.files.vmPathName",
    "config.changeTrackingEnabled",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.hardware.device",
    "runtime.powerState",
    "runtime.host",
    "resourcePool",
    "parent",
    "guest.toolsRunningStatus",
)

# Most specific first: a subclass must match before its parent class does.
CONTROLLERS: tuple[tuple[type[Any], str, str], ...] = (
    (vim.vm.device.ParaVirtualSCSIController, "scsi", "pvscsi"),
    (vim.vm.device.VirtualLsiLogicSASController, "scsi", "lsilogic-sas"),
    (vim.vm.device.VirtualLsiLogicController, "scsi", "lsilogic"),
    (vim.vm.device.VirtualBusLogicController, "scsi", "buslogic"),
    (vim.vm.device.VirtualSCSIController, "scsi", "scsi"),
    (vim.vm.device.VirtualAHCIController, "sata", "ahci"),
    (vim.vm.device.VirtualSATAController, "sata", "sata"),
    (vim.vm.device.VirtualNVMEController, "nvme", "nvme"),
    (vim.vm.device.VirtualIDEController, "ide", "ide"),
)
NIC_MODELS: tuple[tuple[type[Any], str], ...] = (
    (vim.vm.device.VirtualE1000e, "e1000e"),
    (vim.vm.device.VirtualE1000, "e1000"),
    (vim.vm.device.VirtualVmxnet3, "vmxnet3"),
    (vim.vm.device.VirtualVmxnet2, "vmxnet2"),
    (vim.vm.device.VirtualVmxnet, "vmxnet"),
    (vim.vm.device.VirtualPCNet32, "pcnet32"),
    (vim.vm.device.VirtualSriovEthernetCard, "sriov"),
)
DVPORT_BACKING = vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo
OPAQUE_BACKING = vim.vm.device.VirtualEthernetCard.OpaqueNetworkBackingInfo


@dataclass(frozen=True)
class Scope:
    """Which VMs a vCenter host record covers: a datacenter (the first one when unnamed) and,
    optionally, one of its clusters."""

    datacenter: str | None
    cluster: str | None


def read_vms(session: VCenterSession, scope: Scope) -> list[DiscoveredVM]:
    """Every VM (templates left out) of ``scope``, in discovery's shape, sorted by name."""
    content = session.service_instance().content
    dc_name, dc = _datacenter(session, content, scope.datacenter)
    root: vim.ManagedEntity = dc
    if scope.cluster is not None:
        root = _cluster(session, content, dc, scope.cluster)
    names = _names(session, content, dc, dc_name)
    found = []
    for _, moref, props in _retrieve(session, content, root, {"VirtualMachine": VM_PROPERTIES}):
        if flag(props.get("config.template")) or not text(props.get("config.instanceUuid")):
            continue  # templates run nothing; a VM without config is inaccessible
        found.append(_vm(moref, props, names, scope.cluster))
    return sorted(found, key=lambda vm: vm["name"])


def _retrieve(
    session: VCenterSession,
    content: vim.ServiceInstanceContent,
    root: vim.ManagedEntity,
    wanted: Mapping[str, Sequence[str]],
) -> Iterator[tuple[str, str, Props]]:
    """The objects of the ``wanted`` types under ``root`` with their properties, through a
    container view made for the read and destroyed after it."""
    if content.viewManager is None:
        raise ProviderError("vCenter offers no view manager", retryable=False)
    kinds = [bulk.vim_class(kind) for kind in wanted]
    view = content.viewManager.CreateContainerView(root, kinds, True)
    try:
        yield from bulk.retrieve(session, content, view, wanted)
    finally:
        view.DestroyView()


def _entity(content: vim.ServiceInstanceContent, kind: str, moref: str) -> Any:
    # A reference on the session's connection, as pyVmomi makes them for its own answers.
    return bulk.vim_class(kind)(moref, content.rootFolder._stub)


def _datacenter(
    session: VCenterSession, content: vim.ServiceInstanceContent, name: str | None
) -> tuple[str, vim.Datacenter]:
    found = _retrieve(session, content, content.rootFolder, {"Datacenter": ("name",)})
    dcs = {text(p["name"]) or moref: moref for _, moref, p in found}
    if name is None:
        if not dcs:
            raise ProviderError("vCenter has no datacenter", retryable=False)
        name = min(dcs)
    if name not in dcs:
        known = ", ".join(sorted(dcs)) or "none"
        raise ProviderError(f"datacenter {name!r} not found (vCenter has: {known})", retryable=False)
    dc: vim.Datacenter = _entity(content, "Datacenter", dcs[name])
    return name, dc


def _cluster(
    session: VCenterSession, content: vim.ServiceInstanceContent, dc: vim.Datacenter, name: str
) -> vim.ManagedEntity:
    found = _retrieve(session, content, dc, {"ComputeResource": ("name",)})
    clusters = {text(p["name"]) or moref: (kind, moref) for kind, moref, p in found}
    if name not in clusters:
        known = ", ".join(sorted(clusters)) or "none"
        raise ProviderError(
            f"cluster {name!r} not found in the datacenter (it has: {known})", retryable=False
        )
    return _entity(content, *clusters[name])


@dataclass(frozen=True)
class Names:
    """What the VMs' references point at, read in bulk: moref → name (and more)."""

    datacenter: str
    hosts: dict[str, str]
    host_cluster: dict[str, str | None]
    datastores: dict[str, tuple[str, str]]  # moref → (name, summary.url)
    networks: dict[str, str]
    portgroups: dict[str, tuple[str, int | None]]  # port group key → (name, VLAN)


def _names(
    session: VCenterSession, content: vim.ServiceInstanceContent, dc: vim.Datacenter, dc_name: str
) -> Names:
    """Hosts, clusters, datastores, networks and port groups of the datacenter in one call."""
    wanted = {
        "HostSystem": ("name", "parent"),
        "ClusterComputeResource": ("name",),
        "Datastore": ("name", "summary.url"),
        # Port groups are networks too: their name comes with the networks'.
        "Network": ("name",),
        "DistributedVirtualPortgroup": ("key", "config.defaultPortConfig"),
    }
    objects = list(_retrieve(session, content, dc, wanted))
    by_kind: dict[str, dict[str, Props]] = {}
    for kind, moref, props in objects:
        by_kind.setdefault(kind, {})[moref] = props
    clusters = {moref: text(p.get("name")) for moref, p in by_kind.get("ClusterComputeResource", {}).items()}
    hosts = by_kind.get("HostSystem", {})
    portgroups = {
        text(p.get("key")) or moref: (text(p.get("name")) or moref, _vlan(p.get("config.defaultPortConfig")))
        for moref, p in by_kind.get("DistributedVirtualPortgroup", {}).items()
    }
    networks = {
        moref: text(p.get("name")) or moref
        for kind, moref, p in objects
        if kind in ("Network", "DistributedVirtualPortgroup", "OpaqueNetwork")
    }
    return Names(
        datacenter=dc_name,
        hosts={moref: text(p.get("name")) or moref for moref, p in hosts.items()},
        host_cluster={moref: clusters.get(text(p.get("parent")) or "") for moref, p in hosts.items()},
        datastores={
            moref: (text(p.get("name")) or moref, text(p.get("summary.url")) or "")
            for moref, p in by_kind.get("Datastore", {}).items()
        },
        networks=networks,
        portgroups=portgroups,
    )


def _vlan(port_config: ET.Element | None) -> int | None:
    """The port group's VLAN when it sets one (not a trunk or private VLAN)."""
    vlan = child(port_config, "vlan")
    if vlan is not None and is_a(vlan, vim.dvs.VmwareDistributedVirtualSwitch.VlanIdSpec):
        return number(vlan, "vlanId")
    return None


def _vm(moref: str, p: Props, names: Names, cluster: str | None) -> DiscoveredVM:
    devices: dict[str, list[ET.Element]] = {"controller": [], "disk": [], "nic": []}
    for device in p.get("config.hardware.device", ()):
        if (kind := _device_kind(bulk.xsi_type(device))) is not None:
            devices[kind].append(device)
    controllers = [c for d in devices["controller"] if (c := _controller(d)) is not None]
    by_key = {c["key"]: c for c in controllers}
    host = text(p.get("runtime.host")) or ""
    power = text(p.get("runtime.powerState")) or ""
    guest_id = text(p.get("config.guestId"))
    vm: dict[str, Any] = {
        "uuid": text(p["config.instanceUuid"]),
        "name": text(p["name"]),
        "state": "Running" if power == "poweredOn" else "Stopped",
        "vcpus": number(p.get("config.hardware.numCPU")) or 0,
        "memory_bytes": (number(p.get("config.hardware.memoryMB")) or 0) * 2**20,
        "has_guest_agent": text(p.get("guest.toolsRunningStatus")) == "guestToolsRunning",
        "xml": "",
        "moref": moref,
        "bios_uuid": text(p.get("config.uuid")),
        "guest_os": text(p.get("config.guestFullName")) or guest_id,
        "guest_id": guest_id,
        "datacenter": names.datacenter,
        "cluster": cluster or names.host_cluster.get(host),
        "esx_host": names.hosts.get(host),
        "resource_pool": text(p.get("resourcePool")),
        "folder": text(p.get("parent")),
        "vmx_path": text(p.get("config.files.vmPathName")),
        "power_state": power,
        "cbt_enabled": bool(flag(p.get("config.changeTrackingEnabled"))),
        "controllers": controllers,
        "disks": [_disk(d, by_key, names) for d in devices["disk"]],
        "nics": [_nic(d, names) for d in devices["nic"]],
    }
    return vm  # type: ignore[return-value]  # a superset of a DiscoveredVM


@cache
def _device_kind(type_name: str) -> str | None:
    """What discovery makes of a device type: a controller, a disk, a NIC, or nothing (a VM
    has a dozen devices, most of them none of these)."""
    if _controller_kind(type_name) is not None:
        return "controller"
    cls = bulk.find_class(type_name)
    if cls is not None and issubclass(cls, vim.vm.device.VirtualDisk):
        return "disk"
    if cls is not None and issubclass(cls, vim.vm.device.VirtualEthernetCard):
        return "nic"
    return None


@cache
def _controller_kind(type_name: str) -> tuple[str, str] | None:
    """(bus, model) of a controller type; None for any other device (a VM has a dozen)."""
    cls = bulk.find_class(type_name)
    return next(((bus, model) for kind, bus, model in CONTROLLERS if cls and issubclass(cls, kind)), None)


@cache
def _nic_model(type_name: str) -> str:
    cls = bulk.find_class(type_name)
    return next((model for kind, model in NIC_MODELS if cls and issubclass(cls, kind)), type_name)


def _controller(device: ET.Element) -> dict[str, Any] | None:
    found = _controller_kind(bulk.xsi_type(device))
    if found is None:
        return None
    bus, model = found
    f = fields(device)
    return {"type": bus, "model": model, "index": number(f.get("busNumber")), "key": number(f.get("key"))}


def _disk(device: ET.Element, controllers: dict[int | None, dict[str, Any]], names: Names) -> dict[str, Any]:
    f = fields(device)
    backing = fields(f.get("backing"))
    controller_key = number(f.get("controllerKey"))
    controller = controllers.get(controller_key)
    bus = controller["type"] if controller else None
    unit = number(f.get("unitNumber"))
    key = number(f.get("key"))
    datastore = names.datastores.get(text(backing.get("datastore")) or "", ("", ""))
    # vCenter may leave capacityInBytes unset on older disks; capacityInKB is always there.
    size = number(f.get("capacityInBytes")) or (number(f.get("capacityInKB")) or 0) * 1024
    return {
        "target": f"{bus}{controller['index']}:{unit}" if controller else f"disk{key}",
        "bus": bus,
        "device": "disk",
        "path": text(backing.get("fileName")) or None,
        "format": "vmdk",
        "size_bytes": size or None,
        "key": key,
        "controller_key": controller_key,
        "unit": unit,
        "datastore": datastore[0] or None,
        "datastore_url": datastore[1] or None,
        "disk_uuid": text(backing.get("uuid")),
        "thin": flag(backing.get("thinProvisioned")),
    }


def _nic(device: ET.Element, names: Names) -> dict[str, Any]:
    f = fields(device)
    backing_element = f.get("backing")
    backing = fields(backing_element)
    portgroup_key: str | None = None
    vlan: int | None = None
    source: str | None
    if backing_element is not None and is_a(backing_element, DVPORT_BACKING):
        kind = "dvportgroup"
        portgroup_key = text(fields(backing.get("port")).get("portgroupKey"))
        source, vlan = names.portgroups.get(portgroup_key or "", (portgroup_key, None))
    elif backing_element is not None and is_a(backing_element, OPAQUE_BACKING):
        kind, source = "opaque", text(backing.get("opaqueNetworkId"))
    else:
        kind = "network"
        source = names.networks.get(text(backing.get("network")) or "") or text(backing.get("deviceName"))
    return {
        "mac": text(f.get("macAddress")),
        "kind": kind,
        "source": source,
        "model": _nic_model(bulk.xsi_type(device)),
        "key": number(f.get("key")),
        "vlan": vlan,
        "portgroup_key": portgroup_key,
    }
