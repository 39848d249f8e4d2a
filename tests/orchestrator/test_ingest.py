"""Ingestion against libvirt's real test driver (``virsh``, the fixture node in
tests/providers/kvm/fixtures): unmanaged VMs, imports with their disks, NICs and
controllers, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator import ingest, inventory, jobs
from orchestrator.errors import Conflict, InvalidArgument, PermissionDenied
from orchestrator.models import JobState, VirtualMachine, Volume
from tests.conftest import World
from tests.providers.kvm.test_domains import virsh  # noqa: F401  (the fixture: a failure in CI without virsh)

NODE = Path(__file__).parents[1] / "providers" / "kvm" / "fixtures" / "node.xml"
WEB1 = "6e0d9a84-3b1f-4c1e-9a57-0c3a2f1e7b01"
DB1 = "b3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c02"
LOCAL = {"transport": "local", "libvirt_uri": f"test://{NODE}"}


@pytest.fixture
def connected(world: World, virsh: str) -> World:  # noqa: F811
    with world.core.scope(world.admin) as s:
        ingest.set_connection(s, "kvm1", LOCAL)
        inventory.create_pool(s, zone="zone1", name="images", path="/var/lib/libvirt/images")
    return world


def run(world: World, make) -> dict:
    with world.core.scope(world.admin) as s:
        job_id = make(s).id
    with world.core.scope(world.admin) as s:
        job = jobs.show(s, job_id)
        return {"state": job.state, "result": job.result, "error": job.error}


def test_connection_settings_are_checked_and_shown_without_secrets(world: World) -> None:
    with pytest.raises(InvalidArgument) as bad, world.core.scope(world.admin) as s:
        ingest.set_connection(s, "kvm1", {"transport": "ssh", "address": "10.0.0.5"})
    assert bad.value.field.startswith("connection.")
    with world.core.scope(world.admin) as s:
        row = ingest.set_connection(s, "kvm1", LOCAL)
    assert row.connection == LOCAL


def test_discovery_lists_unmanaged_vms_with_disks_nics_and_controllers(connected: World) -> None:
    job = run(connected, lambda s: ingest.discover(s, "kvm1"))

    assert job["state"] is JobState.SUCCEEDED
    found = {vm["uuid"]: vm for vm in job["result"]["unmanaged"]}
    assert set(found) == {WEB1, DB1}
    web1 = found[WEB1]
    assert (web1["name"], web1["state"], web1["vcpus"]) == ("web1", "running", 2)
    assert [(d["target"], d["device"], d["format"]) for d in web1["disks"]] == [
        ("vda", "disk", "qcow2"),
        ("vdb", "disk", "raw"),
        ("sda", "cdrom", "raw"),
    ]
    assert [(n["kind"], n["source"], n["model"]) for n in web1["nics"]] == [
        ("network", "default", "virtio"),
        ("bridge", "br0", "e1000"),
    ]
    assert {c["type"] for c in web1["controllers"]} >= {"scsi", "virtio-serial"}
    assert "xml" not in web1  # the listing stays small; an import keeps the XML


def test_import_brings_the_vm_in_with_its_volumes_on_the_right_pools(connected: World) -> None:
    job = run(connected, lambda s: ingest.import_vm(s, host="kvm1", uuid=WEB1, account="alice"))

    assert job["state"] is JobState.SUCCEEDED, job["error"]
    with connected.core.db.session() as session:
        vm = session.get(VirtualMachine, WEB1)
        assert vm is not None
        assert (vm.name, vm.state.value, vm.account.name, vm.host.name) == (
            "web1",
            "Running",
            "alice",
            "kvm1",
        )
        volumes = list(session.scalars(select(Volume).where(Volume.vm_id == WEB1).order_by(Volume.device_id)))
        assert [(v.type.value, v.path, v.format) for v in volumes] == [
            ("ROOT", "/var/lib/libvirt/images/web1-root.qcow2", "qcow2"),
            ("DATADISK", "/var/lib/libvirt/images/web1-data.raw", "raw"),
        ]
        assert {v.pool.name for v in volumes} == {"images"}
        assert [n["mac"] for n in vm.details["nics"]] == ["52:54:00:6b:3c:01", "52:54:00:6b:3c:02"]
        assert vm.details["instance_name"] == "web1"
        assert "<domain" in vm.details["xml"]
    # It is managed now: the next discovery leaves it out, and a second import is refused.
    again = run(connected, lambda s: ingest.discover(s, "kvm1"))
    assert [vm["uuid"] for vm in again["result"]["unmanaged"]] == [DB1]
    with (
        pytest.raises(Conflict, match="already in the inventory"),
        connected.core.scope(connected.admin) as s,
    ):
        ingest.import_vm(s, host="kvm1", uuid=WEB1, account="bob")


def test_a_disk_on_no_known_pool_fails_the_import_and_says_where(world: World, virsh: str) -> None:  # noqa: F811
    with world.core.scope(world.admin) as s:
        ingest.set_connection(s, "kvm1", LOCAL)  # but no pool holds /var/lib/libvirt/images

    job = run(world, lambda s: ingest.import_vm(s, host="kvm1", uuid=DB1, account="alice"))

    assert job["state"] is JobState.FAILED
    assert "disk sda of db1 (/var/lib/libvirt/images/db1-root.qcow2) is on no storage pool" in job["error"]
    with world.core.db.session() as session:
        assert session.get(VirtualMachine, DB1) is None


def test_an_unknown_vm_fails_the_import(connected: World) -> None:
    job = run(connected, lambda s: ingest.import_vm(s, host="kvm1", uuid="no-such-uuid", account="alice"))
    assert job["state"] is JobState.FAILED
    assert "has no virtual machine no-such-uuid" in job["error"]


def test_users_cannot_discover_or_import(connected: World) -> None:
    with pytest.raises(PermissionDenied), connected.core.scope(connected.alice) as s:
        ingest.discover(s, "kvm1")
    with pytest.raises(PermissionDenied), connected.core.scope(connected.alice) as s:
        ingest.import_vm(s, host="kvm1", uuid=WEB1, account="alice")


def test_a_host_without_connection_settings_is_refused(world: World) -> None:
    with pytest.raises(Conflict, match="no connection settings"), world.core.scope(world.admin) as s:
        ingest.discover(s, "kvm1")
