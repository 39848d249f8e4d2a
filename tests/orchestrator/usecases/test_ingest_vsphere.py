"""Ingestion from a vCenter (the running simulator): the connection's password sealed and
never shown, unmanaged VMs listed, imports onto the pools their datastores map to, a VM
re-registered under a new moref followed by its instance UUID, and power states refreshed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim
from sqlalchemy import select

from api import views
from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.models import AuditEvent, Host, Job, JobState, VirtualMachine
from orchestrator.usecases import ingest, inventory, jobs
from providers.vsphere.connection import VCenterSettings, sessions
from providers.vsphere.host import VSphereHost
from tests.conftest import World
from tests.peers import vcsim
from tests.providers.vsphere.conftest import vcenter, vcsim_binary  # noqa: F401  (the fixtures)

VM0, VM1 = "DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1"


def run(world: World, make: Any) -> dict[str, Any]:
    with world.core.scope(world.admin) as s:
        job_id = make(s).id
    with world.core.scope(world.admin) as s:
        job = jobs.show(s, job_id)
        return {"state": job.state, "result": job.result, "error": job.error}


@pytest.fixture
def vc(world: World, vcenter: vcsim.Vcsim) -> World:  # noqa: F811
    """zone1 gains vCenter host vc1, connected to the simulator, with no pool yet."""
    with world.core.scope(world.admin) as s:
        inventory.create_host(s, zone="zone1", name="vc1", hypervisor="vmware")
        ingest.set_connection(s, "vc1", vcenter.connection(datacenter="DC0", cluster="DC0_C0"))
    return world


@pytest.fixture
def pooled(vc: World) -> World:
    with vc.core.scope(vc.admin) as s:
        inventory.create_pool(s, zone="zone1", name="LocalDS_0", path="/vmfs/volumes/local0")
    return vc


def unmanaged(world: World) -> dict[str, dict[str, Any]]:
    job = run(world, lambda s: ingest.discover(s, "vc1"))
    assert job["state"] is JobState.SUCCEEDED, job["error"]
    return {vm["name"]: vm for vm in job["result"]["unmanaged"]}


def test_the_password_is_stored_sealed_and_never_shown(vc: World, vcenter: vcsim.Vcsim) -> None:  # noqa: F811
    unmanaged(vc)
    with vc.core.db.session() as session:
        host = session.scalars(select(Host).where(Host.name == "vc1")).one()
        stored = json.dumps(host.connection)
        shown = json.dumps(views.host(host))
        audit = json.dumps([e.details for e in session.scalars(select(AuditEvent))])
        results = json.dumps([(j.result, j.error, j.params) for j in session.scalars(select(Job))])
    assert isinstance(host.connection["password"], dict)  # sealed
    for text in (stored, shown, audit, results):
        assert vcenter.password not in text
    assert json.loads(shown)["connection"]["password"] == "********"
    # Sending the placeholder back keeps the stored password: discovery still logs in.
    with vc.core.scope(vc.admin) as s:
        ingest.set_connection(s, "vc1", {**vcenter.connection(), "password": "********"})
    sessions.close_all()
    assert set(unmanaged(vc)) == {VM0, VM1}


def test_discovery_lists_the_clusters_vms_with_disks_and_nics(vc: World) -> None:
    found = unmanaged(vc)

    assert set(found) == {VM0, VM1}
    vm = found[VM0]
    assert (vm["state"], vm["vcpus"], vm["guest_os"], vm["cluster"]) == ("Running", 1, "otherGuest", "DC0_C0")
    assert [(d["target"], d["datastore"], d["path"]) for d in vm["disks"]] == [
        ("scsi0:0", "LocalDS_0", f"[LocalDS_0] {VM0}/disk1.vmdk")
    ]
    assert [(n["kind"], n["source"], n["model"]) for n in vm["nics"]] == [
        ("dvportgroup", "DC0_DVPG0", "e1000")
    ]
    assert "xml" not in vm


@pytest.mark.parametrize("by", ["name", "url"])
def test_import_puts_each_disk_on_the_pool_its_datastore_maps_to(vc: World, by: str) -> None:
    found = unmanaged(vc)
    url = found[VM0]["disks"][0]["datastore_url"]
    with vc.core.scope(vc.admin) as s:
        # A pool named as the datastore, or one whose path is the datastore's URL path.
        pool = inventory.create_pool(
            s, zone="zone1", name="LocalDS_0" if by == "name" else "fast", path="/x" if by == "name" else url
        ).id
    uuid = found[VM0]["uuid"]

    job = run(vc, lambda s: ingest.import_vm(s, host="vc1", uuid=uuid, account="alice"))

    assert job["state"] is JobState.SUCCEEDED, job["error"]
    with vc.core.db.session() as session:
        vm = session.get(VirtualMachine, uuid)
        assert vm is not None
        assert (vm.name, vm.host.name, vm.account.name, vm.state.value) == (VM0, "vc1", "alice", "Running")
        [volume] = vm.live_volumes
        assert (volume.type.value, volume.path, volume.format, volume.pool_id, volume.size) == (
            "ROOT",
            f"[LocalDS_0] {VM0}/disk1.vmdk",
            "vmdk",
            pool,
            2**20,
        )
        assert vm.details["moref"] == found[VM0]["moref"]
        assert vm.details["vmx_path"] == f"[LocalDS_0] {VM0}/{VM0}.vmx"
        assert (vm.details["datacenter"], vm.details["disks"][0]["key"]) == (
            "DC0",
            found[VM0]["disks"][0]["key"],
        )
    assert set(unmanaged(vc)) == {VM1}


def test_a_datastore_no_pool_maps_refuses_the_import_naming_it(vc: World) -> None:
    # Never discovered: only the job can tell, and it fails saying why.
    with vc.core.scope(vc.admin) as s:
        host = inventory.find_host(s, "vc1")
    found = hypervisor_vms(vc, host.id)
    job = run(vc, lambda s: ingest.import_vm(s, host="vc1", uuid=found[VM0], account="alice"))
    assert job["state"] is JobState.FAILED
    assert "is on datastore LocalDS_0" in job["error"]
    assert "register a pool named 'LocalDS_0'" in job["error"]
    # Once discovered, the import is refused at once (a 4xx), naming the datastore.
    unmanaged(vc)
    with pytest.raises(InvalidArgument, match="datastore LocalDS_0") as refused, vc.core.scope(vc.admin) as s:
        ingest.import_vm(s, host="vc1", uuid=found[VM0], account="alice")
    assert refused.value.field == "datastore"
    with vc.core.db.session() as session:
        assert session.get(VirtualMachine, found[VM0]) is None


def hypervisor_vms(world: World, host_id: str) -> dict[str, str]:
    """Name → instance UUID as the host's driver sees them, without a discovery job."""
    with world.core.db.session() as session:
        host = session.get(Host, host_id)
        assert host is not None
        connection = world.core.sealer.unseal_config(dict(host.connection))
    return {vm["name"]: vm["uuid"] for vm in VSphereHost(connection).discover()}


# -- re-discovery ----------------------------------------------------------------------------------


def reregister(vcenter: vcsim.Vcsim, moref: str, vmx_path: str, disk_path: str) -> None:  # noqa: F811
    """Power the VM off, unregister it and register its .vmx again (a new moref, the same
    instance UUID), its disk now at ``disk_path``: the simulator reads no .vmx, so the disk is
    added back as vCenter would read it from the file."""
    si = sessions.get(VCenterSettings.from_config(vcenter.connection())).service_instance()
    vm = vim.VirtualMachine(moref, si._stub)
    pool, folder, name = vm.resourcePool, vm.parent, vm.name
    WaitForTask(vm.PowerOffVM_Task())
    vm.UnregisterVM()
    task = folder.RegisterVM_Task(path=vmx_path, name=name, asTemplate=False, pool=pool)
    WaitForTask(task)
    again = task.info.result
    controller = vim.vm.device.ParaVirtualSCSIController(key=-1, busNumber=0, sharedBus="noSharing")
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName=disk_path, diskMode="persistent", thinProvisioned=True
    )
    disk = vim.vm.device.VirtualDisk(
        key=-2, controllerKey=-1, unitNumber=0, capacityInKB=2048, backing=backing
    )
    changes = [
        vim.vm.device.VirtualDeviceSpec(operation="add", device=controller),
        vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk),
    ]
    WaitForTask(again.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=changes)))


def test_a_vm_registered_again_under_a_new_moref_is_relinked_by_instance_uuid(
    pooled: World,
    vcenter: vcsim.Vcsim,  # noqa: F811
) -> None:
    found = unmanaged(pooled)[VM0]
    uuid = found["uuid"]
    assert run(pooled, lambda s: ingest.import_vm(s, host="vc1", uuid=uuid, account="alice"))["state"] is (
        JobState.SUCCEEDED
    )
    moved = f"[LocalDS_0] {VM0}/disk1-restored.vmdk"
    reregister(vcenter, found["moref"], found["vmx_path"], moved)

    job = run(pooled, lambda s: ingest.discover(s, "vc1"))

    assert job["state"] is JobState.SUCCEEDED, job["error"]
    [relinked] = job["result"]["relinked"]
    assert (relinked["vm_id"], relinked["domain"]) == (uuid, {"from": uuid, "to": uuid})
    assert relinked["moref"]["from"] == found["moref"]
    new_moref = relinked["moref"]["to"]
    assert new_moref != found["moref"]
    assert [(v["from"], v["to"]) for v in relinked["volumes"]] == [(found["disks"][0]["path"], moved)]
    # Powered off on the way: the inventory says so now.
    assert job["result"]["state_changed"] == [
        {"vm_id": uuid, "name": VM0, "state": {"from": "Running", "to": "Stopped"}}
    ]
    assert [vm["name"] for vm in job["result"]["unmanaged"]] == [VM1]
    with pooled.core.db.session() as session:
        vm = session.get(VirtualMachine, uuid)
        assert vm is not None
        assert (vm.state.value, vm.details["moref"], vm.details["disks"][0]["path"]) == (
            "Stopped",
            new_moref,
            moved,
        )
        assert [(v.path, v.size) for v in vm.live_volumes] == [(moved, 2048 * 1024)]
    # Stable: the next discovery has nothing to follow.
    assert run(pooled, lambda s: ingest.discover(s, "vc1"))["result"]["relinked"] == []
