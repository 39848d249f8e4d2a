"""The vsphere backup driver against a running vCenter simulator: snapshots, reads and writes
through the datastore HTTP interface, restores in place, to a new VM and of one disk, the
snapshots of killed workers, changed-block tracking, and a vCenter that goes away."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.domain.errors import ProviderError
from providers.base import BackupRequest, Capability, RestorePointRef, VMRef
from providers.nas.manifest import Manifest
from providers.vsphere.connection import VCenterSettings, sessions
from providers.vsphere.driver import VSphereProvider
from tests.peers.vcsim import Vcsim
from tests.providers.vsphere import cbt_fake
from tests.providers.vsphere.simvm import MiB, Sim

CHUNK = 256 * 1024
VM0, VM1 = "DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1"


def config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "repository": str(tmp_path / "repo"),
        "chunk_size": CHUNK,
        "fsync": False,
        "quiesce": True,
        **extra,
    }


def ignore(done: int, total: int) -> None:
    pass


def take(provider: VSphereProvider, vm: VMRef, point_id: str, parent: RestorePointRef | None = None):
    result = provider.take_backup(BackupRequest(point_id, vm, "daily", parent=parent, quiesce=True), ignore)
    return result, RestorePointRef(point_id, result.external_id, result.backup_type, vm)


def manifest(provider: VSphereProvider, point_id: str) -> Manifest:
    return next(m for m in provider.nas.list_points() if m.restore_point_id == point_id)


def pattern(size: int, seed: int) -> bytes:
    """Random halves and zero quarters: data, dedup-able zeros, and holes in a flat file."""
    rng = random.Random(seed)
    return rng.randbytes(size // 2) + bytes(size // 4) + rng.randbytes(size - size // 2 - size // 4)


@pytest.fixture
def sim(vcenter: Vcsim) -> Iterator[Sim]:
    s = Sim(vcenter)
    yield s
    s.close()


@pytest.fixture
def provider(tmp_path: Path) -> VSphereProvider:
    return VSphereProvider("vs", config(tmp_path), tmp_path)


def test_capabilities_say_what_the_driver_does(tmp_path: Path) -> None:
    plain = VSphereProvider("vs", config(tmp_path, quiesce=False), tmp_path)
    assert {
        Capability.INCREMENTAL,
        Capability.RESTORE_TO_NEW_VM,
        Capability.RESTORE_VOLUME,
        Capability.STOP_VM,
        Capability.MULTI_VOLUME_CONSISTENT,
        Capability.LIST_RESTORE_POINTS,
        Capability.VERIFY,
    } <= plain.capabilities
    assert Capability.QUIESCE not in plain.capabilities
    assert Capability.FILE_RESTORE not in plain.capabilities
    assert Capability.QUIESCE in VSphereProvider("vs", config(tmp_path), tmp_path).capabilities
    with pytest.raises(Exception, match="not used by the vsphere driver"):
        VSphereProvider("vs", config(tmp_path, snapshot="reflink"), tmp_path)


def test_backup_then_restore_in_place_is_byte_exact(sim: Sim, provider: VSphereProvider) -> None:
    machine = sim.vm(VM0)
    original = pattern(16 * MiB, 1)
    path = sim.disk_paths(machine)[0]
    sim.write_disk(machine, path, original)
    vm = sim.ref(machine)

    result, point = take(provider, vm, "rp-1")

    assert result.backup_type == "FULL"
    assert result.protected_size == 16 * MiB
    stored = manifest(provider, "rp-1")
    assert stored.consistency == "vsphere+quiesce"
    assert stored.volumes[0].source["read"] == "full: changed-block tracking was just turned on"
    # The snapshot is gone, and tracking was turned on for the next backups.
    assert sim.snapshot_names(machine) == []
    assert machine.config.changeTrackingEnabled is True
    provider.verify(point)

    sim.put(path.removesuffix(".vmdk") + "-flat.vmdk", pattern(16 * MiB, 2))
    assert machine.runtime.powerState == "poweredOn"
    provider.restore_vm(point, vm, ignore)

    assert sim.local(path.removesuffix(".vmdk") + "-flat.vmdk").read_bytes() == original
    # Powered off for the write, on again after.
    assert machine.runtime.powerState == "poweredOn"


def test_a_failed_quiesce_falls_back_to_crash_consistent_only_when_allowed(
    vcenter: Vcsim, sim: Sim, tmp_path: Path
) -> None:
    machine = sim.vm(VM0)
    sim.write_disk(machine, sim.disk_paths(machine)[0], pattern(4 * MiB, 11))
    vm = sim.ref(machine)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    undo = cbt_fake.refuse_quiesce(
        sessions.get(VCenterSettings.from_config(vcenter.connection())).service_instance()._stub
    )
    try:
        strict = VSphereProvider("strict", config(tmp_path / "a"), tmp_path / "a")
        with pytest.raises(
            ProviderError, match=f"taking snapshot backup-orchestrator:rp-1 of VM {VM0}: ToolsUnavailable"
        ):
            take(strict, vm, "rp-1")
        assert strict.list_restore_points() == []

        lenient = VSphereProvider("lenient", config(tmp_path / "b", quiesce_fallback=True), tmp_path / "b")
        take(lenient, vm, "rp-2")
    finally:
        undo()
    assert manifest(lenient, "rp-2").consistency == "vsphere"
    assert sim.snapshot_names(machine) == []


def test_restore_in_place_refuses_a_vm_whose_disks_changed(sim: Sim, provider: VSphereProvider) -> None:
    machine = sim.vm(VM0)
    path = sim.disk_paths(machine)[0]
    sim.write_disk(machine, path, pattern(8 * MiB, 1))
    vm = sim.ref(machine)
    _, point = take(provider, vm, "rp-1")
    sim.write_disk(machine, path, pattern(4 * MiB, 2))

    with pytest.raises(
        ProviderError, match=r"its disks differ from restore point rp-1: .* holds 4194304 bytes"
    ):
        provider.restore_vm(point, vm, ignore)
    assert machine.runtime.powerState == "poweredOn"


def test_restore_to_a_new_vm_recreates_its_hardware_and_disks(sim: Sim, provider: VSphereProvider) -> None:
    machine = sim.vm(VM0)
    sim.add_disk(machine, 8 * MiB)
    first, second = pattern(8 * MiB, 3), pattern(12 * MiB, 4)
    sim.fill(machine, dict(zip(sim.disk_paths(machine), [first, second], strict=True)))
    vm = sim.ref(machine)
    _, point = take(provider, vm, "rp-1")

    new_id = str(uuid.uuid4())
    target = VMRef(
        new_id,
        "restored",
        vm.zone_id,
        vm.host_id,
        tuple(v.__class__(**{**v.__dict__, "id": f"new-{v.device_id}"}) for v in vm.volumes),
        {**vm.details},
        vm.host,
    )
    restored = provider.restore_vm(point, target, ignore)

    assert restored is not None
    assert restored.id == new_id
    created = sim.vm("restored")
    assert created.config.instanceUuid == new_id
    assert restored.details["moref"] == created._moId
    assert [v.id for v in restored.volumes] == ["new-0", "new-1"]
    disks = [d for d in created.config.hardware.device if d.__class__.__name__.endswith("VirtualDisk")]
    assert sorted(d.capacityInKB * 1024 for d in disks) == [8 * MiB, 12 * MiB]
    # Each new disk holds its source disk's bytes (same device, same size).
    sources = [sim.local(v.path.removesuffix(".vmdk") + "-flat.vmdk").read_bytes() for v in vm.volumes]
    assert sorted(sources) == sorted([first, second])
    assert [
        sim.local(v.path.removesuffix(".vmdk") + "-flat.vmdk").read_bytes() for v in restored.volumes
    ] == sources
    nics = [d for d in created.config.hardware.device if hasattr(d, "macAddress")]
    assert len(nics) == len(vm.details["nics"])
    # The original is untouched.
    assert sim.snapshot_names(machine) == []
    assert machine.runtime.powerState == "poweredOn"


def test_a_failed_restore_to_a_new_vm_leaves_no_vm(
    sim: Sim, provider: VSphereProvider, tmp_path: Path
) -> None:
    machine = sim.vm(VM0)
    sim.write_disk(machine, sim.disk_paths(machine)[0], pattern(4 * MiB, 12))
    vm = sim.ref(machine)
    _, point = take(provider, vm, "rp-1")
    for chunk in (tmp_path / "repo" / "chunks").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"damaged")
    target = VMRef(str(uuid.uuid4()), "broken", vm.zone_id, vm.host_id, vm.volumes, dict(vm.details), vm.host)

    with pytest.raises(ProviderError, match="chunk"):
        provider.restore_vm(point, target, ignore)

    with pytest.raises(StopIteration):
        sim.vm("broken")


def test_one_disk_restored_and_attached_to_another_vm(sim: Sim, provider: VSphereProvider) -> None:
    source = sim.vm(VM0)
    data = pattern(8 * MiB, 5)
    sim.write_disk(source, sim.disk_paths(source)[0], data)
    vm = sim.ref(source)
    _, point = take(provider, vm, "rp-1")
    other = sim.vm(VM1)
    before = len(other.config.hardware.device)

    volume = provider.restore_volume(point, vm.volumes[0], sim.ref(other), ignore)

    attached = [
        d for d in other.config.hardware.device if getattr(d.backing, "fileName", None) == volume.path
    ]
    assert len(other.config.hardware.device) == before + 1
    assert len(attached) == 1
    assert attached[0].capacityInKB * 1024 == 8 * MiB
    assert volume.path.startswith(f"[LocalDS_0] {VM1}/")
    assert volume.size == 8 * MiB
    assert sim.local(volume.path.removesuffix(".vmdk") + "-flat.vmdk").read_bytes() == data


def test_a_failed_disk_restore_leaves_no_file_behind(
    sim: Sim, provider: VSphereProvider, tmp_path: Path
) -> None:
    source = sim.vm(VM0)
    sim.write_disk(source, sim.disk_paths(source)[0], pattern(8 * MiB, 13))
    vm = sim.ref(source)
    _, point = take(provider, vm, "rp-1")
    chunks = sorted(c for c in (tmp_path / "repo" / "chunks").rglob("*") if c.is_file())
    # The last chunks are damaged: the upload has begun when the restore fails.
    for chunk in chunks[len(chunks) // 2 :]:
        chunk.write_bytes(b"damaged")
    other = sim.vm(VM1)
    before = len(other.config.hardware.device)

    with pytest.raises(ProviderError, match="chunk"):
        provider.restore_volume(point, vm.volumes[0], sim.ref(other), ignore)

    assert len(other.config.hardware.device) == before
    assert [f.name for f in sim.local(f"[LocalDS_0] {VM1}/x").parent.iterdir() if "restored" in f.name] == []


KILLED_BACKUP = """
import sys, time, json
from pathlib import Path
from providers.base import BackupRequest, VMRef, HostRef
from providers.vsphere.driver import VSphereProvider

config, raw, host = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
vm = VMRef.from_dict(raw)
vm = VMRef(vm.id, vm.name, vm.zone_id, vm.host_id, vm.volumes, vm.details, HostRef(**host))
provider = VSphereProvider("vs", config, Path(sys.argv[4]))

def slow(done, total):
    if done:
        print("reading", flush=True)
        time.sleep(30)

provider.take_backup(BackupRequest("rp-killed", vm, "daily"), slow)
"""


def _kill_mid_read(tmp_path: Path, vm: VMRef) -> None:
    host = {"id": vm.host.id, "hypervisor": vm.host.hypervisor, "connection": dict(vm.host.connection)}
    args = [
        json.dumps(config(tmp_path, quiesce=False)),
        json.dumps(vm.to_dict()),
        json.dumps(host),
        str(tmp_path),
    ]
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLED_BACKUP, *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[3],
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "reading"
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        if worker.stdout:
            worker.stdout.close()


def test_snapshot_of_a_killed_worker_is_removed(sim: Sim, provider: VSphereProvider, tmp_path: Path) -> None:
    machine = sim.vm(VM0)
    sim.write_disk(machine, sim.disk_paths(machine)[0], pattern(8 * MiB, 6))
    vm = sim.ref(machine)

    _kill_mid_read(tmp_path, vm)
    assert sim.snapshot_names(machine) == ["backup-orchestrator:rp-killed"]

    # The reconciler keeps the snapshots of backups still running...
    assert provider.release_leftovers([vm.host], frozenset({"rp-killed"})) == []
    assert sim.snapshot_names(machine) == ["backup-orchestrator:rp-killed"]
    # ...and removes those no running job needs.
    assert provider.release_leftovers([vm.host], frozenset()) == [f"{VM0}: backup-orchestrator:rp-killed"]
    assert sim.snapshot_names(machine) == []

    # The next backup of the VM removes what a killed one left before taking its own.
    _kill_mid_read(tmp_path, vm)
    assert sim.snapshot_names(machine) == ["backup-orchestrator:rp-killed"]
    take(provider, vm, "rp-2")
    assert sim.snapshot_names(machine) == []


def test_vcenter_gone_mid_backup_is_retryable_and_commits_nothing(
    vcenter: Vcsim, sim: Sim, provider: VSphereProvider
) -> None:
    machine = sim.vm(VM0)
    sim.write_disk(machine, sim.disk_paths(machine)[0], pattern(16 * MiB, 7))
    vm = sim.ref(machine)

    def stop_vcenter(done: int, total: int) -> None:
        if done:
            os.kill(vcenter.pid, signal.SIGKILL)
            time.sleep(0.1)

    with pytest.raises(ProviderError) as failed:
        provider.take_backup(BackupRequest("rp-gone", vm, "daily"), stop_vcenter)

    assert failed.value.retryable
    assert "vCenter 127.0.0.1" in failed.value.message
    assert "Traceback" not in failed.value.message
    assert provider.list_restore_points() == []


# -- changed-block tracking, on hand-written QueryChangedDiskAreas answers -----------------------


@pytest.fixture
def tracking(vcenter: Vcsim) -> Iterator[cbt_fake.ChangeTracking]:
    state = cbt_fake.ChangeTracking()
    session = sessions.get(VCenterSettings.from_config(vcenter.connection()))
    undo = cbt_fake.install(session.service_instance()._stub, state)
    yield state
    undo()


def test_incremental_reads_only_the_changed_areas(
    sim: Sim, provider: VSphereProvider, tracking: cbt_fake.ChangeTracking
) -> None:
    machine = sim.vm(VM0)
    size = 16 * MiB
    data = bytearray(pattern(size, 8))
    path = sim.disk_paths(machine)[0]
    sim.write_disk(machine, path, bytes(data))
    flat = path.removesuffix(".vmdk") + "-flat.vmdk"
    vm = sim.ref(machine)
    _, full = take(provider, vm, "rp-1")
    first = manifest(provider, "rp-1").volumes[0]
    assert first.source["change_id"] == tracking.change_id

    # The guest writes 2 % of the disk, in two places (one across a chunk boundary).
    changes = [(3 * MiB + 4096, 64 * 1024), (11 * MiB - 128 * 1024, 256 * 1024)]
    for start, length in changes:
        data[start : start + length] = random.Random(start).randbytes(length)
    sim.put(flat, bytes(data))
    previous, tracking.change_id = tracking.change_id, tracking.change_id.replace("/1", "/2")
    tracking.changed[previous] = changes
    tracking.part = 8 * MiB

    _, incremental = take(provider, vm, "rp-2", parent=full)

    second = manifest(provider, "rp-2")
    assert second.backup_type == "INCREMENTAL"
    assert second.volumes[0].source == {
        "change_id": tracking.change_id,
        "read": f"changed areas since {previous}",
        "disk_key": first.source["disk_key"],
        "fetched_bytes": 3 * CHUNK,
    }
    # Asked with the recorded change id, from where each answer ended.
    assert [(q["start"], q["change_id"]) for q in tracking.queries] == [(0, previous), (8 * MiB, previous)]
    # Only the chunks the changed areas touch were read: 1 + 2 chunks of 256 KiB.
    assert second.stats["read_bytes"] == 3 * CHUNK
    assert second.stats["unchanged_chunks"] == size // CHUNK - 3

    sim.put(flat, pattern(size, 9))
    provider.restore_vm(incremental, vm, ignore)
    assert sim.local(flat).read_bytes() == bytes(data)


def test_a_refused_change_id_falls_back_to_a_full_read(
    sim: Sim, provider: VSphereProvider, tracking: cbt_fake.ChangeTracking
) -> None:
    machine = sim.vm(VM0)
    sim.write_disk(machine, sim.disk_paths(machine)[0], pattern(8 * MiB, 10))
    vm = sim.ref(machine)
    _, full = take(provider, vm, "rp-1")
    tracking.refused.add(tracking.change_id)

    take(provider, vm, "rp-2", parent=full)

    second = manifest(provider, "rp-2").volumes[0]
    assert second.source["read"].startswith(f"full: change id {tracking.change_id} refused (")
    assert "FileFault" in second.source["read"]
    assert manifest(provider, "rp-2").stats["unchanged_chunks"] == 0
