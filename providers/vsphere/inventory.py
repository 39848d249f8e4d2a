"""A vCenter's VMs as discovery describes them, read with the PropertyCollector in a few
round trips whatever the number of VMs.

Reading ``vm.config.hardware.device`` VM by VM costs one SOAP call per property per VM: minutes
for a few thousand VMs. Instead every object is read through a ContainerView: one
RetrievePropertiesEx for the datacenter, one for its hosts, clusters, datastores and networks,
and one for the VMs (continued page by page when vCenter pages the answer), each asking only
the properties discovery needs. Device backings name datastores and port groups by moref; the
second read resolves them without another call per VM.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim, vmodl

from orchestrator.domain.errors import ProviderError
from providers.hypervisor import DiscoveredVM

PC = vmodl.query.PropertyCollector
# Objects per page of the VM read: large enough that a few thousand VMs take a few pages,
# small enough that one page (each VM's device list) stays a few megabytes.
PAGE_SIZE = 500

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


@dataclass(frozen=True)
class Scope:
    """Which VMs a vCenter host record covers: a datacenter (the first one when unnamed) and,
    optionally, one of its clusters."""

    datacenter: str | None
    cluster: str | None


@dataclass(frozen=True)
class Names:
    """What the VMs' references point at, read in bulk: moref → name (and more)."""

    datacenter: str
    hosts: dict[str, str]
    host_cluster: dict[str, str | None]
    datastores: dict[str, tuple[str, str]]  # moref → (name, summary.url)
    networks: dict[str, str]
    portgroups: dict[str, tuple[str, int | None]]  # port group key → (name, VLAN)


def read_vms(si: vim.ServiceInstance, scope: Scope) -> list[DiscoveredVM]:
    """Every VM (templates left out) of ``scope``, in discovery's shape, sorted by name."""
    content = si.content
    dc_name, dc = _datacenter(content, scope.datacenter)
    root: vim.ManagedEntity = dc
    cluster_name = None
    if scope.cluster is not None:
        root = _cluster(content, dc, scope.cluster)
        cluster_name = scope.cluster
    names = _names(content, dc, dc_name)
    found = []
    for ref, props in _retrieve(content, root, vim.VirtualMachine, VM_PROPERTIES):
        if props.get("config.template") or not props.get("config.instanceUuid"):
            continue  # templates run nothing; a VM without config is inaccessible
        found.append(_vm(ref, props, names, cluster_name))
    return sorted(found, key=lambda vm: vm["name"])


def _datacenter(content: vim.ServiceInstanceContent, name: str | None) -> tuple[str, vim.Datacenter]:
    found = _retrieve(content, content.rootFolder, vim.Datacenter, ("name",))
    dcs = {str(p["name"]): ref for ref, p in found}
    if name is None:
        if not dcs:
            raise ProviderError("vCenter has no datacenter", retryable=False)
        name = min(dcs)
    if name not in dcs:
        known = ", ".join(sorted(dcs)) or "none"
        raise ProviderError(f"datacenter {name!r} not found (vCenter has: {known})", retryable=False)
    return name, dcs[name]


def _cluster(content: vim.ServiceInstanceContent, dc: vim.Datacenter, name: str) -> vim.ManagedEntity:
    clusters = {str(p["name"]): ref for ref, p in _retrieve(content, dc, vim.ComputeResource, ("name",))}
    if name not in clusters:
        raise ProviderError(
            f"cluster {name!r} not found in the datacenter (it has: {', '.join(sorted(clusters)) or 'none'})",
            retryable=False,
        )
    return clusters[name]


def _names(content: vim.ServiceInstanceContent, dc: vim.Datacenter, dc_name: str) -> Names:
    """Hosts, clusters, datastores, networks and port groups of the datacenter in one call."""
    wanted: dict[type[Any], Sequence[str]] = {
        vim.HostSystem: ("name", "parent"),
        vim.ClusterComputeResource: ("name",),
        vim.Datastore: ("name", "summary.url"),
        vim.Network: ("name",),
        vim.dvs.DistributedVirtualPortgroup: ("key", "config.defaultPortConfig"),
    }
    objects = list(_retrieve_many(content, dc, wanted))
    clusters = {
        ref._moId: str(p["name"]) for ref, p in objects if isinstance(ref, vim.ClusterComputeResource)
    }
    hosts = {ref._moId: p for ref, p in objects if isinstance(ref, vim.HostSystem)}
    portgroups = {
        str(p["key"]): (str(p["name"]), _vlan(p.get("config.defaultPortConfig")))
        for ref, p in objects
        if isinstance(ref, vim.dvs.DistributedVirtualPortgroup)
    }
    return Names(
        datacenter=dc_name,
        hosts={moid: str(p["name"]) for moid, p in hosts.items()},
        host_cluster={moid: clusters.get(_moid(p.get("parent"))) for moid, p in hosts.items()},
        datastores={
            ref._moId: (str(p["name"]), str(p.get("summary.url") or ""))
            for ref, p in objects
            if isinstance(ref, vim.Datastore)
        },
        networks={ref._moId: str(p["name"]) for ref, p in objects if isinstance(ref, vim.Network)},
        portgroups=portgroups,
    )


def _vlan(port_config: Any) -> int | None:
    """The port group's VLAN when it sets one (not a trunk or private VLAN)."""
    vlan = getattr(port_config, "vlan", None)
    if isinstance(vlan, vim.dvs.VmwareDistributedVirtualSwitch.VlanIdSpec):
        return int(vlan.vlanId)
    return None


def _retrieve(
    content: vim.ServiceInstanceContent, root: vim.ManagedEntity, kind: type[Any], paths: Sequence[str]
) -> Iterator[tuple[Any, dict[str, Any]]]:
    return _retrieve_many(content, root, {kind: paths})


def _retrieve_many(
    content: vim.ServiceInstanceContent, root: vim.ManagedEntity, wanted: dict[type[Any], Sequence[str]]
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Each object of the ``wanted`` types under ``root`` with its properties: a ContainerView
    and one RetrievePropertiesEx, continued while vCenter pages the answer."""
    if content.viewManager is None or content.propertyCollector is None:
        raise ProviderError("vCenter offers no view manager or property collector", retryable=False)
    view = content.viewManager.CreateContainerView(root, list(wanted), True)
    try:
        spec = PC.FilterSpec(
            objectSet=[
                PC.ObjectSpec(
                    obj=view,
                    skip=True,
                    selectSet=[PC.TraversalSpec(name="view", type=vim.view.ContainerView, path="view")],
                )
            ],
            propSet=[PC.PropertySpec(type=kind, pathSet=list(paths)) for kind, paths in wanted.items()],
        )
        collector = content.propertyCollector
        page = collector.RetrievePropertiesEx([spec], PC.RetrieveOptions(maxObjects=PAGE_SIZE))
        while page is not None:
            for obj in page.objects:
                yield obj.obj, {p.name: p.val for p in obj.propSet}
            page = collector.ContinueRetrievePropertiesEx(page.token) if page.token else None
    finally:
        view.DestroyView()


def _moid(ref: Any) -> str:
    return str(ref._moId) if ref is not None else ""


def _vm(ref: Any, p: dict[str, Any], names: Names, cluster: str | None) -> DiscoveredVM:
    devices = list(p.get("config.hardware.device") or ())
    controllers = [c for d in devices if (c := _controller(d)) is not None]
    by_key = {c["key"]: c for c in controllers}
    host = _moid(p.get("runtime.host"))
    power = str(p.get("runtime.powerState") or "")
    vm: dict[str, Any] = {
        "uuid": str(p["config.instanceUuid"]),
        "name": str(p["name"]),
        "state": "Running" if power == "poweredOn" else "Stopped",
        "vcpus": int(p.get("config.hardware.numCPU") or 0),
        "memory_bytes": int(p.get("config.hardware.memoryMB") or 0) * 2**20,
        "has_guest_agent": p.get("guest.toolsRunningStatus") == "guestToolsRunning",
        "xml": "",
        "moref": ref._moId,
        "bios_uuid": p.get("config.uuid"),
        "guest_os": p.get("config.guestFullName") or p.get("config.guestId"),
        "guest_id": p.get("config.guestId"),
        "datacenter": names.datacenter,
        "cluster": cluster or names.host_cluster.get(host),
        "esx_host": names.hosts.get(host),
        "resource_pool": _moid(p.get("resourcePool")) or None,
        "folder": _moid(p.get("parent")) or None,
        "vmx_path": p.get("config.files.vmPathName"),
        "power_state": power,
        "cbt_enabled": bool(p.get("config.changeTrackingEnabled")),
        "controllers": controllers,
        "disks": [_disk(d, by_key, names) for d in devices if isinstance(d, vim.vm.device.VirtualDisk)],
        "nics": [_nic(d, names) for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)],
    }
    return vm  # type: ignore[return-value]  # a superset of a DiscoveredVM


def _controller(device: Any) -> dict[str, Any] | None:
    for kind, bus, model in CONTROLLERS:
        if isinstance(device, kind):
            return {"type": bus, "model": model, "index": int(device.busNumber), "key": int(device.key)}
    return None


def _disk(device: Any, controllers: dict[int, dict[str, Any]], names: Names) -> dict[str, Any]:
    backing = device.backing
    controller = controllers.get(device.controllerKey)
    bus = controller["type"] if controller else None
    unit = device.unitNumber
    datastore = names.datastores.get(_moid(getattr(backing, "datastore", None)), ("", ""))
    # vCenter may leave capacityInBytes unset on older disks; capacityInKB is always there.
    size = device.capacityInBytes or (device.capacityInKB or 0) * 1024
    return {
        "target": f"{bus}{controller['index']}:{unit}" if controller else f"disk{device.key}",
        "bus": bus,
        "device": "disk",
        "path": getattr(backing, "fileName", None) or None,
        "format": "vmdk",
        "size_bytes": int(size) or None,
        "key": int(device.key),
        "controller_key": device.controllerKey,
        "unit": unit,
        "datastore": datastore[0] or None,
        "datastore_url": datastore[1] or None,
        "disk_uuid": getattr(backing, "uuid", None),
        "thin": getattr(backing, "thinProvisioned", None),
    }


def _nic(device: Any, names: Names) -> dict[str, Any]:
    backing = device.backing
    portgroup_key: str | None = None
    vlan: int | None = None
    source: str | None
    if isinstance(backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
        kind = "dvportgroup"
        portgroup_key = str(backing.port.portgroupKey)
        source, vlan = names.portgroups.get(portgroup_key, (portgroup_key, None))
    elif isinstance(backing, vim.vm.device.VirtualEthernetCard.OpaqueNetworkBackingInfo):
        kind, source = "opaque", backing.opaqueNetworkId
    else:
        kind = "network"
        network = getattr(backing, "network", None)
        source = names.networks.get(_moid(network)) or getattr(backing, "deviceName", None)
    model = next((m for cls, m in NIC_MODELS if isinstance(device, cls)), type(device).__name__)
    return {
        "mac": device.macAddress,
        "kind": kind,
        "source": source,
        "model": model,
        "key": int(device.key),
        "vlan": vlan,
        "portgroup_key": portgroup_key,
    }
