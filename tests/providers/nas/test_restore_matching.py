"""Restores land on the right disks, by volume id then device id, and never fake success."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import ProviderError
from providers.nas import restore
from providers.nas.manifest import Manifest
from tests.providers.nas.conftest import ignore, make_qcow2, make_raw, sha256, take, vm_of, volume


def test_volumes_land_by_device_id_whatever_order_they_were_created_in(nas, disks, tmp_path):
    root = make_raw(disks / "root.raw", seed=1)
    data = make_raw(disks / "data.raw", seed=2)
    expected = {0: sha256(root), 1: sha256(data)}
    # Created data disk first: the list order is not the device order.
    vm = vm_of(volume(data, 1), volume(root, 0))
    provider = nas()
    _, point = take(provider, vm, "rp-1")

    new = tmp_path / "new-vm"
    new.mkdir()
    target = vm_of(
        volume(make_raw(new / "b.raw", seed=8), 0, vid="new-root"),
        volume(make_raw(new / "a.raw", seed=9), 1, vid="new-data"),
        vm_id="vm-2",
    )
    provider.restore_vm(point, target, ignore)

    assert sha256(new / "b.raw") == expected[0]
    assert sha256(new / "a.raw") == expected[1]


def test_volume_id_wins_over_device_id(nas, disks):
    root = make_raw(disks / "root.raw", seed=1)
    data = make_raw(disks / "data.raw", seed=2)
    expected = {root: sha256(root), data: sha256(data)}
    vm = vm_of(volume(root, 0, vid="a"), volume(data, 1, vid="b"))
    provider = nas()
    _, point = take(provider, vm, "rp-1")
    root.write_bytes(b"")
    data.write_bytes(b"")

    # The same volumes, since re-attached in the other order.
    provider.restore_vm(point, vm_of(volume(data, 0, vid="b"), volume(root, 1, vid="a")), ignore)

    assert sha256(root) == expected[root]
    assert sha256(data) == expected[data]


def test_restore_to_a_vm_lacking_a_volume_writes_nothing(nas, disks, tmp_path):
    root = make_raw(disks / "root.raw", seed=1)
    data = make_qcow2(disks / "data.qcow2", seed=2)
    provider = nas()
    _, point = take(provider, vm_of(volume(root, 0), volume(data, 1)), "rp-1")
    other = tmp_path / "other"
    other.mkdir()
    target = vm_of(volume(make_raw(other / "only.raw", seed=3), 0, vid="x"), vm_id="vm-2")
    before = sha256(other / "only.raw")

    with pytest.raises(ProviderError, match=r"no volume with id vol-1 or device id 1; nothing was restored"):
        provider.restore_vm(point, target, ignore)
    assert sha256(other / "only.raw") == before
    assert [p.name for p in other.iterdir()] == ["only.raw"]


def test_a_restore_that_wrote_nothing_never_reports_success(nas, disks, monkeypatch):
    disk = make_raw(disks / "root.raw")
    vm = vm_of(volume(disk))
    provider = nas()
    _, point = take(provider, vm, "rp-1")

    monkeypatch.setattr(restore, "write_volume", lambda *a, **k: 0)
    with pytest.raises(ProviderError, match="restored 0 of"):
        provider.restore_vm(point, vm, ignore)


def test_a_restore_point_without_volumes_is_refused(nas, disks):
    disk = make_raw(disks / "root.raw")
    vm = vm_of(volume(disk))
    provider = nas()
    take(provider, vm, "rp-1")
    manifest = provider.list_points()[0]
    empty = Manifest(**{**manifest.__dict__, "volumes": ()})

    with pytest.raises(ProviderError, match="holds no volumes"):
        restore.match_volumes(empty, vm)


def test_restore_replaces_the_image_atomically_and_keeps_its_mode(nas, disks):
    disk = make_raw(disks / "root.raw")
    disk.chmod(0o604)
    before = sha256(disk)
    vm = vm_of(volume(disk))
    provider = nas()
    _, point = take(provider, vm, "rp-1")
    disk.write_bytes(b"x" * 100)

    provider.restore_vm(point, vm, ignore)

    assert sha256(disk) == before
    assert disk.stat().st_mode & 0o777 == 0o604
    assert [p.name for p in disks.iterdir()] == ["root.raw"]
