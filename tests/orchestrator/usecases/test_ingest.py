"""Ingestion against libvirt's real test driver (``virsh``, the fixture node in
tests/providers/kvm/fixtures): unmanaged VMs, imports with their disks, NICs and
controllers, and what is refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.domain.errors import Conflict, InvalidArgument, PermissionDenied
from orchestrator.domain.models import JobState, VirtualMachine, Volume, utcnow
from orchestrator.usecases import assignments, backups, ingest, inventory, jobs, schedules
from tests.conftest import World
from tests.providers.kvm.fixtures.rebuilt_node import rebuilt_node
from tests.providers.kvm.test_domains import virsh  # noqa: F401  (the fixture: a failure in CI without virsh)

NODE = Path(__file__).parents[2] / "providers" / "kvm" / "fixtures" / "node.xml"
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
        row = ingest.set_connection(s, "kvm1", LOCAL).host
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


# -- re-discovery ----------------------------------------------------------------------------------

RESTORED = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d05"
ROOT, DATA = "/var/lib/libvirt/images/web1-root.qcow2", "/var/lib/libvirt/images/web1-data.raw"


@pytest.fixture
def managed(connected: World) -> World:
    """web1 imported for alice, on the gold offering, with a restore point and a schedule."""
    job = run(connected, lambda s: ingest.import_vm(s, host="kvm1", uuid=WEB1, account="alice"))
    assert job["state"] is JobState.SUCCEEDED, job["error"]
    with connected.core.scope(connected.alice) as s:
        assignments.assign(s, WEB1, connected.gold_id)
        schedules.create(s, vm_id=WEB1, interval_type="daily", schedule="30:00")
    backup = run(connected, lambda s: backups.create_backup(s, WEB1))
    assert backup["state"] is JobState.SUCCEEDED, backup["error"]
    return connected


def reconnect(world: World, uri: str) -> None:
    with world.core.scope(world.admin) as s:
        ingest.set_connection(s, "kvm1", {"transport": "local", "libvirt_uri": uri})


def web1_paths(world: World) -> dict[str, str]:
    with world.core.db.session() as session:
        volumes = session.scalars(select(Volume).where(Volume.vm_id == WEB1, Volume.removed_at.is_(None)))
        return {v.type.value: v.path for v in volumes}


def history(world: World) -> tuple[list[str], str | None, list[str]]:
    """web1's restore points, offering and schedules, as a user sees them."""
    with world.core.scope(world.alice) as s:
        points = [p.id for p in backups.list_backups(s, vm_id=WEB1).items]
        offering = inventory.show_vm(s, WEB1).backup_offering_id
        kept = [row.id for row in schedules.list_schedules(s, WEB1)]
    return points, offering, kept


def test_a_vm_rebuilt_with_a_new_uuid_and_new_images_is_relinked(managed: World, tmp_path: Path) -> None:
    before = history(managed)
    assert (len(before[0]), before[1], len(before[2])) == (1, managed.gold_id, 1)
    new_root = "/var/lib/libvirt/images/restored/web1-root.qcow2"
    new_data = "/var/lib/libvirt/images/restored/web1-data.qcow2"
    reconnect(
        managed,
        rebuilt_node(
            tmp_path / "node",
            uuid=RESTORED,
            images={"vda": new_root, "vdb": new_data},
            formats={"vdb": "qcow2"},
        ),
    )

    job = run(managed, lambda s: ingest.discover(s, "kvm1"))

    assert job["state"] is JobState.SUCCEEDED, job["error"]
    (relinked,) = job["result"]["relinked"]
    assert (relinked["vm_id"], relinked["domain"]) == (WEB1, {"from": WEB1, "to": RESTORED})
    assert sorted((v["from"], v["to"]) for v in relinked["volumes"]) == [(DATA, new_data), (ROOT, new_root)]
    assert job["result"]["not_relinked"] == []
    # The rebuilt domain is web1, not a new unmanaged VM.
    assert [vm["uuid"] for vm in job["result"]["unmanaged"]] == [DB1]
    assert web1_paths(managed) == {"ROOT": new_root, "DATADISK": new_data}
    with managed.core.db.session() as session:
        vm = session.get(VirtualMachine, WEB1)
        assert vm is not None
        assert (vm.details["domain"], vm.details["instance_name"]) == (RESTORED, "web1")
        assert RESTORED in vm.details["xml"]
        assert {v.format for v in vm.live_volumes if v.path == new_data} == {"qcow2"}
    assert history(managed) == before
    # Stable: the next discovery finds nothing to follow, and the new UUID cannot be imported twice.
    again = run(managed, lambda s: ingest.discover(s, "kvm1"))
    assert again["result"]["relinked"] == []
    with (
        pytest.raises(Conflict, match="already in the inventory as web1"),
        managed.core.scope(managed.admin) as s,
    ):
        ingest.import_vm(s, host="kvm1", uuid=RESTORED, account="bob")


def test_the_dispatcher_rediscovers_connected_hosts_once_per_interval(managed: World, tmp_path: Path) -> None:
    new_root = "/var/lib/libvirt/images/restored/web1-root.qcow2"
    reconnect(managed, rebuilt_node(tmp_path / "node", uuid=RESTORED, images={"vda": new_root}))

    # Never discovered (only imported from): due now, and its rebuilt VM is followed.
    (first,) = ingest.rediscover_due(managed.core)
    with managed.core.scope(managed.admin) as s:
        job = jobs.show(s, first)
    assert job.state is JobState.SUCCEEDED, job.error
    assert [r["vm_id"] for r in job.result["relinked"]] == [WEB1]
    assert web1_paths(managed)["ROOT"] == new_root
    # Not again within the interval; again once it has passed.
    assert ingest.rediscover_due(managed.core) == []
    later = utcnow() + timedelta(seconds=managed.core.settings.rediscover_seconds + 60)
    assert len(ingest.rediscover_due(managed.core, now=later)) == 1


def test_new_images_under_the_same_uuid_are_followed_by_device(managed: World, tmp_path: Path) -> None:
    moved = "/var/lib/libvirt/images/web1-data-restored.raw"
    reconnect(managed, rebuilt_node(tmp_path / "node", images={"vdb": moved}))

    job = run(managed, lambda s: ingest.discover(s, "kvm1"))

    (relinked,) = job["result"]["relinked"]
    assert relinked["domain"] == {"from": WEB1, "to": WEB1}
    assert [(v["from"], v["to"]) for v in relinked["volumes"]] == [(DATA, moved)]
    assert web1_paths(managed) == {"ROOT": ROOT, "DATADISK": moved}
    with managed.core.db.session() as session:
        vm = session.get(VirtualMachine, WEB1)
        assert vm is not None
        assert "domain" not in vm.details  # its own id is its domain's UUID still


@pytest.mark.parametrize(
    ("rebuilt", "reason"),
    [
        ({"without": ("vdb",)}, f"({DATA}) was on vdb, which domain web1 has no disk for"),
        # vda now holds the data volume's image: never two volumes on one image.
        (
            {"images": {"vda": DATA, "vdb": "/var/lib/libvirt/images/web1-new.raw"}},
            f"({ROOT}) was on vda, whose image {DATA} is another volume's",
        ),
    ],
    ids=["device-gone", "image-taken"],
)
def test_a_rebuilt_domain_that_cannot_be_followed_is_reported_not_guessed(
    managed: World, tmp_path: Path, rebuilt: dict, reason: str
) -> None:
    reconnect(managed, rebuilt_node(tmp_path / "node", uuid=RESTORED, **rebuilt))

    job = run(managed, lambda s: ingest.discover(s, "kvm1"))

    assert job["result"]["relinked"] == []
    (refused,) = job["result"]["not_relinked"]
    assert (refused["vm_id"], refused["domain"]) == (WEB1, RESTORED)
    assert reason in refused["reason"]
    assert web1_paths(managed) == {"ROOT": ROOT, "DATADISK": DATA}
    with managed.core.db.session() as session:
        vm = session.get(VirtualMachine, WEB1)
        assert vm is not None
        assert "domain" not in vm.details


def test_a_domain_named_like_a_vm_but_managed_as_another_is_not_taken(managed: World, tmp_path: Path) -> None:
    # web1's domain is gone; the domain now named web1 was imported as a VM of its own.
    reconnect(managed, rebuilt_node(tmp_path / "node", uuid=RESTORED))
    imported = run(managed, lambda s: ingest.import_vm(s, host="kvm1", uuid=RESTORED, account="bob"))
    assert imported["state"] is JobState.SUCCEEDED, imported["error"]

    job = run(managed, lambda s: ingest.discover(s, "kvm1"))

    assert job["result"]["relinked"] == []
    assert web1_paths(managed) == {"ROOT": ROOT, "DATADISK": DATA}
    with managed.core.db.session() as session:
        vm = session.get(VirtualMachine, WEB1)
        assert vm is not None
        assert "domain" not in vm.details


def test_discovery_refreshes_the_state_of_managed_vms(managed: World) -> None:
    with managed.core.scope(managed.admin) as s:
        assert inventory.update_vm(s, WEB1, state="Stopped").state.value == "Stopped"

    job = run(managed, lambda s: ingest.discover(s, "kvm1"))

    assert job["state"] is JobState.SUCCEEDED, job["error"]
    assert job["result"]["state_changed"] == [
        {"vm_id": WEB1, "name": "web1", "state": {"from": "Stopped", "to": "Running"}}
    ]
    with managed.core.scope(managed.alice) as s:
        assert inventory.show_vm(s, WEB1).state.value == "Running"
    assert run(managed, lambda s: ingest.discover(s, "kvm1"))["result"]["state_changed"] == []
