"""A multi-volume backup where a volume fails: the others are kept as a partial point."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import ProviderError
from providers.base import BackupRequest, FailedVolume
from providers.nas.chunker import RawReader
from tests.providers.nas.conftest import MiB, ignore, make_raw, sha256, take, vm_of, volume


@pytest.fixture
def two_disks(disks):
    root = make_raw(disks / "root.raw", size=2 * MiB, sparse_tail=False)
    data = make_raw(disks / "data.raw", size=2 * MiB, seed=5, sparse_tail=False)
    return root, data


def test_an_image_that_cannot_be_opened_leaves_a_partial_point(nas, disks, two_disks, tmp_path):
    root, _ = two_disks
    broken = disks / "broken.qcow2"
    broken.write_bytes(b"QFI\xfb" + bytes(508))  # a qcow2 header qemu-img cannot make sense of
    vm = vm_of(volume(root), volume(broken, 1))
    provider = nas()

    result, point = take(provider, vm, "rp-1")

    (failed,) = result.failed_volumes
    assert (failed.id, failed.name, failed.device_id) == ("vol-1", "DATA-1", 1)
    assert str(broken) in failed.error
    assert result.protected_size == root.stat().st_size
    (manifest,) = provider.list_points()
    assert [v.id for v in manifest.volumes] == ["vol-0"]
    provider.verify(point)

    with pytest.raises(ProviderError, match=r"partial \(it lacks DATA-1 \(device 1\)\)"):
        provider.restore_vm(point, vm, ignore)
    with pytest.raises(ProviderError, match="volume DATA-1 \\(device 1\\) failed in restore point rp-1"):
        provider.restore_volume(point, vm.volumes[1], vm, ignore)
    restored = provider.restore_volume(point, vm.volumes[0], vm, ignore)
    assert sha256(restored.path) == sha256(root)
    # A re-delivered job gets the same partial answer, not a whole point.
    again = provider.take_backup(BackupRequest(point.id, point.vm, "nas-daily"), ignore)
    assert again.failed_volumes == (failed,)


def test_a_read_error_drops_that_volume_only(nas, two_disks, monkeypatch):
    root, data = two_disks
    real_read = RawReader.read

    def read(self, offset, length):
        if self.path == data and offset >= MiB:
            raise OSError(5, "Input/output error")
        return real_read(self, offset, length)

    monkeypatch.setattr(RawReader, "read", read)
    result, _ = take(nas(), vm_of(volume(root), volume(data, 1)), "rp-1")

    assert [v.label for v in result.failed_volumes] == ["DATA-1 (device 1)"]
    assert "Input/output error" in result.failed_volumes[0].error
    assert isinstance(result.failed_volumes[0], FailedVolume)


def test_when_every_volume_fails_there_is_no_restore_point(nas, two_disks, monkeypatch):
    root, data = two_disks

    def read(self, offset, length):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(RawReader, "read", read)
    provider = nas()
    with pytest.raises(ProviderError, match="no volume of vm-vm-1 could be read") as err:
        take(provider, vm_of(volume(root), volume(data, 1)), "rp-1")
    assert not err.value.retryable
    assert provider.list_points() == []
