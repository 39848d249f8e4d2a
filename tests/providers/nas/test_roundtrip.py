"""Byte-exact round trips of raw and qcow2 images, whole VM and single volume."""

from __future__ import annotations

import subprocess

import pytest

from providers import registry
from providers.base import BackupRequest, Capability
from providers.nas import NasProvider
from tests.providers.nas.conftest import (
    MiB,
    Progress,
    guest_bytes,
    ignore,
    make_qcow2,
    make_raw,
    sha256,
    take,
    vm_of,
    volume,
)


def test_entry_point_finds_the_driver():
    assert registry.driver_class("nas") is NasProvider


def test_capabilities_and_offerings(nas):
    provider = nas()
    assert provider.capabilities == {
        Capability.INCREMENTAL,
        Capability.DELETE_SINGLE_RESTORE_POINT,
        Capability.RESTORE_VOLUME,
        Capability.RESTORE_TO_NEW_VM,
        Capability.VERIFY,
        Capability.MULTI_VOLUME_CONSISTENT,
        Capability.LIST_RESTORE_POINTS,
    }
    assert {o.external_id for o in provider.list_offerings(None)} >= {"nas-daily", "nas-hourly"}
    custom = nas(offerings=[{"id": "gold", "name": "Gold"}])
    assert [o.external_id for o in custom.list_offerings("zone-1")] == ["gold"]


@pytest.mark.parametrize("level", [1, -4, 0], ids=["default", "fastest", "uncompressed"])
def test_raw_round_trip_is_byte_exact(nas, disks, tmp_path, level):
    disk = make_raw(disks / "root.raw")
    before = sha256(disk)
    vm = vm_of(volume(disk))
    provider = nas(compression_level=level)
    _, point = take(provider, vm, "rp-1")

    disk.write_bytes(b"destroyed")
    provider.restore_vm(point, vm, ignore)

    assert sha256(disk) == before
    assert disk.stat().st_size == 4 * MiB


@pytest.mark.parametrize("compressed", [False, True], ids=["mapped", "converted"])
def test_qcow2_round_trip_keeps_guest_content(nas, disks, tmp_path, compressed):
    disk = make_qcow2(disks / "root.qcow2", compressed=compressed)
    expected = guest_bytes(disk, "qcow2", tmp_path)
    original = tmp_path / "original.qcow2"
    original.write_bytes(disk.read_bytes())
    vm = vm_of(volume(disk))
    provider = nas()
    _, point = take(provider, vm, "rp-1")

    disk.unlink()
    provider.restore_vm(point, vm, ignore)

    info = subprocess.run(["qemu-img", "info", str(disk)], capture_output=True, text=True, check=True)
    assert "file format: qcow2" in info.stdout
    assert (
        subprocess.run(["qemu-img", "compare", str(original), str(disk)], capture_output=True).returncode == 0
    )
    assert guest_bytes(disk, "qcow2", tmp_path) == expected


def test_qcow2_with_backing_file_is_read_as_the_guest_sees_it(nas, disks, tmp_path):
    base = make_qcow2(disks / "template.qcow2", seed=5)
    top = disks / "vm.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", base.name, str(top)],
        check=True,
        capture_output=True,
        cwd=disks,
    )
    subprocess.run(
        ["qemu-io", "-c", "write -P 0x5a 512k 64k", "-c", "write -z 1536k 256k", str(top)],
        check=True,
        capture_output=True,
    )
    expected = guest_bytes(top, "qcow2", tmp_path)
    vm = vm_of(volume(top))
    provider = nas()
    _, point = take(provider, vm, "rp-1")

    top.unlink()
    provider.restore_vm(point, vm, ignore)

    assert guest_bytes(top, "qcow2", tmp_path) == expected
    info = subprocess.run(["qemu-img", "info", str(top)], capture_output=True, text=True, check=True)
    assert "backing file" not in info.stdout  # restored standalone


def test_multi_volume_vm_round_trip(nas, disks):
    root = make_raw(disks / "root.raw", seed=1)
    data = make_qcow2(disks / "data.qcow2", seed=2)
    hashes = {root: sha256(root)}
    vm = vm_of(volume(root, 0), volume(data, 1))
    provider = nas()
    result, point = take(provider, vm, "rp-1")
    assert result.protected_size == 8 * MiB
    assert result.backup_type == "FULL"

    root.write_bytes(b"x")
    data.unlink()
    provider.restore_vm(point, vm, ignore)

    assert sha256(root) == hashes[root]
    assert subprocess.run(["qemu-img", "check", str(data)], capture_output=True).returncode == 0


def test_restore_volume_writes_a_new_image_beside_the_original(nas, disks):
    root = make_raw(disks / "root.raw", seed=1)
    data = make_raw(disks / "data.raw", seed=2)
    vm = vm_of(volume(root, 0), volume(data, 1))
    provider = nas()
    _, point = take(provider, vm, "rp-1")

    restored = provider.restore_volume(point, vm.volumes[1], vm, ignore)

    assert restored.path != str(data)
    assert restored.device_id == 2
    assert restored.size == 4 * MiB
    assert restored.format == "raw"
    assert sha256(restored.path) == sha256(data)


def test_restore_volume_to_a_configured_directory(nas, disks, tmp_path):
    data = make_qcow2(disks / "data.qcow2")
    vm = vm_of(volume(data, 0))
    provider = nas(restore_dir=str(tmp_path / "elsewhere"))
    _, point = take(provider, vm, "rp-1")

    restored = provider.restore_volume(point, vm.volumes[0], vm, ignore)

    assert restored.path.startswith(str(tmp_path / "elsewhere"))
    assert (
        subprocess.run(["qemu-img", "compare", str(data), restored.path], capture_output=True).returncode == 0
    )


def test_progress_rises_to_the_total(nas, disks):
    disk = make_raw(disks / "root.raw")
    progress = Progress()
    nas().take_backup(BackupRequest("rp-1", vm_of(volume(disk)), "nas-daily"), progress)

    done = [d for d, _ in progress.calls]
    assert done == sorted(done)
    assert progress.calls[-1] == (4 * MiB, 4 * MiB)
    assert len(progress.calls) > 4


def test_a_redelivered_backup_is_not_taken_twice(nas, disks, repo):
    disk = make_raw(disks / "root.raw")
    vm = vm_of(volume(disk))
    provider = nas()
    first, _ = take(provider, vm, "rp-1")
    disk.write_bytes(b"changed since")  # a second run must not see this

    again, _ = take(provider, vm, "rp-1")

    assert again == first
    assert len(list((repo / "points").iterdir())) == 1


def test_source_disks_are_never_modified(nas, disks):
    raw = make_raw(disks / "root.raw")
    qcow = make_qcow2(disks / "data.qcow2")
    before = {p: (sha256(p), p.stat().st_mtime_ns) for p in (raw, qcow)}
    vm = vm_of(volume(raw, 0), volume(qcow, 1))
    provider = nas()
    _, point = take(provider, vm, "rp-1")
    take(provider, vm, "rp-2", parent=point)
    provider.verify(point)
    provider.restore_volume(point, vm.volumes[1], vm, ignore)

    assert {p: (sha256(p), p.stat().st_mtime_ns) for p in (raw, qcow)} == before
    assert sorted(p.name for p in disks.iterdir() if not p.name.startswith("data-restored")) == [
        "data.qcow2",
        "root.raw",
    ]
