"""Crash safety: no manifest, no restore point; verify names what is damaged."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import ProviderError
from providers.nas import store
from providers.nas.store import Repository
from tests.providers.nas.conftest import MiB, ignore, make_raw, stored_chunks, take, vm_of, volume


class Crash(Exception):
    pass


def test_crash_between_chunks_and_manifest_leaves_no_restore_point(nas, disks, repo, monkeypatch):
    disk = make_raw(disks / "root.raw")
    vm = vm_of(volume(disk))
    provider = nas()
    _, good = take(provider, vm, "rp-good")
    make_raw(disk, seed=7)  # new content: new chunks to write

    def crash(*args, **kwargs):
        raise Crash("power lost before the manifest")

    monkeypatch.setattr(Repository, "write_manifest", crash)
    with pytest.raises(Crash):
        take(provider, vm, "rp-crashed")
    monkeypatch.undo()

    assert [m.id for m in provider.list_points()] == ["rp-good"]
    assert not (repo / "points" / "rp-crashed.manifest").exists()
    assert list((repo / "locks").iterdir()) == []  # the lock went with the failed job
    report = provider.check(read_data=True)
    assert report.ok, report
    provider.verify(good)

    # The retry reuses the chunks the crashed attempt left behind.
    before = len(stored_chunks(repo))
    result, retried = take(provider, vm, "rp-crashed")
    assert len(stored_chunks(repo)) == before
    assert result.size == 0
    provider.verify(retried)


def test_leftover_temporary_files_are_not_chunks(nas, disks, repo):
    disk = make_raw(disks / "root.raw")
    provider = nas()
    _, point = take(provider, vm_of(volume(disk)), "rp-1")
    (repo / "chunks" / "ab" / ".tmp-half-written").write_bytes(b"partial")
    (repo / "points" / ".tmp-half-manifest").write_bytes(b"partial")

    assert [m.id for m in provider.list_points()] == ["rp-1"]
    assert provider.check(read_data=True).ok
    provider.verify(point)


def _corrupt(path, offset=-10):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verify_names_a_corrupted_chunk(nas, disks, repo):
    disk = make_raw(disks / "root.raw", size=4 * MiB)
    vm = vm_of(volume(disk))
    provider = nas()
    _, point = take(provider, vm, "rp-1")
    victim = sorted(stored_chunks(repo))[0]

    _corrupt(victim)

    with pytest.raises(ProviderError, match=r"restore point rp-1 is damaged") as err:
        provider.verify(point)
    assert victim.name[:16] in err.value.message
    assert "ROOT-0 (device 0)" in err.value.message
    assert not err.value.retryable
    report = provider.check(read_data=True)
    assert victim.name in report.damaged
    assert "rp-1" in report.bad_points


def test_verify_names_a_missing_chunk(nas, disks, repo):
    disk = make_raw(disks / "root.raw")
    provider = nas()
    _, point = take(provider, vm_of(volume(disk)), "rp-1")
    victim = sorted(stored_chunks(repo))[-1]
    victim.unlink()

    with pytest.raises(ProviderError, match=rf"chunk {victim.name[:16]}… at byte \d+: is missing"):
        provider.verify(point)
    assert not provider.check().ok  # found without reading data, too


def test_a_damaged_chunk_fails_the_restore_and_keeps_the_target(nas, disks, repo):
    disk = make_raw(disks / "root.raw")
    vm = vm_of(volume(disk))
    provider = nas()
    _, point = take(provider, vm, "rp-1")
    _corrupt(sorted(stored_chunks(repo))[0])
    disk.write_bytes(b"the current disk")

    with pytest.raises(ProviderError, match=r"does not match its id|fails its checksum"):
        provider.restore_vm(point, vm, ignore)

    assert disk.read_bytes() == b"the current disk"
    assert sorted(p.name for p in disks.iterdir()) == ["root.raw"]  # no temporary left behind


def test_verify_of_an_unknown_point_is_an_error(nas, disks):
    disk = make_raw(disks / "root.raw")
    vm = vm_of(volume(disk))
    provider = nas()
    _, point = take(provider, vm, "rp-1")
    provider.delete_backup(point, forced=False)
    provider.delete_backup(point, forced=False)  # idempotent

    with pytest.raises(ProviderError, match="not in repository"):
        provider.verify(point)


def test_crash_before_chunks_are_named_leaves_only_temporary_files(nas, disks, repo, monkeypatch):
    disk = make_raw(disks / "root.raw")
    vm = vm_of(volume(disk))
    provider = nas()

    def crash(*args, **kwargs):
        raise Crash("power lost before the chunks were named")

    monkeypatch.setattr(Repository, "publish", crash)
    with pytest.raises(Crash):
        take(provider, vm, "rp-1")
    monkeypatch.undo()

    assert stored_chunks(repo) == []  # nothing a later backup could deduplicate against
    assert list((repo / "chunks").glob("*/.tmp-*"))
    assert provider.list_points() == []
    _, point = take(provider, vm, "rp-1")
    provider.verify(point)
    report = provider.gc(grace_s=0)
    assert report.removed_tmp > 0
    assert not list((repo / "chunks").glob("*/.tmp-*"))
    provider.verify(point)


@pytest.mark.parametrize("fsync", [True, False])
def test_new_chunks_are_written_back_early_and_named_after_the_flush(nas, disks, repo, monkeypatch, fsync):
    disk = make_raw(disks / "root.raw")
    provider = nas(fsync=fsync)
    events: list[str] = []
    real_open, real_writeback = Repository.open_sync, store.start_writeback
    real_flush, real_publish = Repository.flush, Repository.publish

    def open_sync(self):
        events.append("open")
        return real_open(self)

    def writeback(fd):
        events.append("writeback")
        real_writeback(fd)

    def flush(self, sync):
        events.append("flush")
        real_flush(self, sync)

    def publish(self, tmp, chunk_id):
        events.append("publish")
        real_publish(self, tmp, chunk_id)

    monkeypatch.setattr(Repository, "open_sync", open_sync)
    monkeypatch.setattr(store, "start_writeback", writeback)
    monkeypatch.setattr(Repository, "flush", flush)
    monkeypatch.setattr(Repository, "publish", publish)
    _, point = take(provider, vm_of(volume(disk)), "rp-1")

    new = len(stored_chunks(repo))
    assert new > 0
    # The flush goes through a handle opened before the first write (so it hears of every
    # write-back error), and the early write-back is a hint only: no name before the flush.
    writebacks = ["writeback"] * (new if fsync else 0)
    assert events == ["open", *writebacks, "flush"] + ["publish"] * new + ["flush"]
    provider.verify(point)
