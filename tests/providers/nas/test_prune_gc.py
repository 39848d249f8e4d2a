"""Retention rules (PBS semantics, dry run) and garbage collection of unreferenced chunks."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

import pytest

from orchestrator.domain.errors import ProviderError
from orchestrator.domain.retention import RetentionPolicy
from providers.nas.locks import SHARED, RepositoryLock
from providers.nas.store import Repository
from tests.providers.nas.conftest import (
    CHUNK,
    MiB,
    ignore,
    make_raw,
    sha256,
    stored_chunks,
    take,
    vm_of,
    volume,
)

DAY = 86400
TIMES = [  # oldest first
    "2024-02-20T10:00",
    "2024-03-01T10:00",
    "2024-03-07T10:00",
    "2024-03-08T20:00",
    "2024-03-09T06:00",
    "2024-03-09T18:00",
    "2024-03-10T12:00",
    "2024-03-10T18:00",
]
POLICY = RetentionPolicy(keep_last=2, keep_daily=2, keep_weekly=1, keep_monthly=2)
# keep-last: 10th 18:00 and 12:00; daily (10th covered): 9th 18:00, 8th; weekly (ISO week
# 10 covered): 1st March; monthly (March covered): 20th February.
KEPT = {"2024-03-10T18:00", "2024-03-10T12:00", "2024-03-09T18:00", "2024-03-08T20:00", "2024-03-01T10:00"}
KEPT |= {"2024-02-20T10:00"}


def _name(stamp: str) -> str:
    return "rp-" + stamp.replace(":", "")


@pytest.fixture
def history(nas, disks):
    """One VM backed up at TIMES, each point with a chunk of its own (chunk 0), plus another VM."""
    disk = make_raw(disks / "root.raw", size=2 * MiB, sparse_tail=False)
    vm = vm_of(volume(disk))
    provider = nas()
    points = {}
    parent = None
    for i, stamp in enumerate(TIMES):
        with open(disk, "r+b") as f:
            f.write(os.urandom(CHUNK) if i else f.read(CHUNK))
        provider.clock = lambda stamp=stamp: datetime.fromisoformat(stamp).replace(tzinfo=UTC)
        _, parent = take(provider, vm, _name(stamp), parent=parent)
        points[stamp] = (parent, sha256(disk))
    other = make_raw(disks / "other.raw", size=1 * MiB, seed=3)
    provider.clock = lambda: datetime(2023, 1, 1, tzinfo=UTC)
    take(provider, vm_of(volume(other), vm_id="vm-other"), "rp-other")
    return provider, vm, points


def _age_all_chunks(repo, seconds):
    old = time.time() - seconds
    for path in stored_chunks(repo):
        os.utime(path, (old, old))


def test_plan_follows_pbs_rules_per_vm(history):
    provider, _, _ = history

    plan = provider.prune(POLICY, dry_run=True)

    assert {p.id for p in plan.keep} == {_name(s) for s in KEPT} | {"rp-other"}
    assert {p.id for p in plan.remove} == {_name("2024-03-09T06:00"), _name("2024-03-07T10:00")}


def test_dry_run_deletes_nothing(history, repo):
    provider, _, _ = history
    before = sorted((repo / "points").iterdir())

    plan = provider.prune(POLICY, dry_run=True)

    assert plan.dry_run
    assert plan.remove
    assert sorted((repo / "points").iterdir()) == before


def test_empty_policy_keeps_everything(history):
    provider, _, _ = history
    assert provider.prune(RetentionPolicy(), dry_run=False).remove == []
    assert len(provider.list_points()) == len(TIMES) + 1


def test_prune_then_gc_keeps_every_kept_point_whole(history, repo, disks):
    provider, vm, points = history
    provider.prune(POLICY, dry_run=False)
    assert {m.id for m in provider.list_points()} == {_name(s) for s in KEPT} | {"rp-other"}

    # Young chunks are never collected, whatever references them.
    young = provider.gc()
    assert young.removed_chunks == 0
    assert young.kept_in_grace == 2

    _age_all_chunks(repo, 2 * DAY)
    dry = provider.gc(dry_run=True)
    assert dry.removed_chunks == 2
    assert len(stored_chunks(repo)) == dry.stored_chunks

    report = provider.gc()
    assert report.removed_chunks == 2  # chunk 0 of each of the two pruned points
    assert report.removed_bytes > 0
    assert len(stored_chunks(repo)) == report.stored_chunks - 2
    assert provider.check(read_data=True).ok
    for stamp in KEPT:
        point, digest = points[stamp]
        provider.verify(point)
        provider.restore_vm(point, vm, ignore)
        assert sha256(disks / "root.raw") == digest


def test_deleting_any_single_point_leaves_the_others_whole(history, repo, disks):
    provider, vm, points = history
    middle, _ = points["2024-03-08T20:00"]
    provider.delete_backup(middle, forced=False)
    _age_all_chunks(repo, 2 * DAY)
    provider.gc()
    for stamp, (point, digest) in points.items():
        if stamp != "2024-03-08T20:00":
            provider.restore_vm(point, vm, ignore)
            assert sha256(disks / "root.raw") == digest


def test_gc_frees_only_chunks_older_than_the_grace_period(history, repo):
    provider, _, _ = history
    provider.prune(POLICY, dry_run=False)
    unreferenced = {p.name for p in stored_chunks(repo)} - {
        c for m in provider.list_points() for c in m.chunk_ids()
    }
    assert len(unreferenced) == 2
    one_old = sorted(unreferenced)[0]
    old = time.time() - 2 * DAY
    os.utime(repo / "chunks" / one_old[:2] / one_old, (old, old))

    report = provider.gc(grace_s=DAY)

    assert report.removed_chunks == 1
    assert report.kept_in_grace == 1
    assert not (repo / "chunks" / one_old[:2] / one_old).exists()


def test_gc_refuses_while_a_manifest_is_unreadable(history, repo):
    provider, _, _ = history
    provider.prune(POLICY, dry_run=False)
    _age_all_chunks(repo, 2 * DAY)
    manifest = repo / "points" / f"{_name('2024-03-10T18:00')}.manifest"
    manifest.write_bytes(manifest.read_bytes()[:-5])
    count = len(stored_chunks(repo))

    with pytest.raises(ProviderError, match="garbage collection refused"):
        provider.gc()
    assert len(stored_chunks(repo)) == count


def test_gc_waits_for_a_running_backup_and_never_races_it(nas, disks, repo, monkeypatch):
    disk = make_raw(disks / "root.raw", size=2 * MiB)
    provider = nas(lock_wait_s=0.3)
    entered, release = threading.Event(), threading.Event()
    real_put = Repository.stage_chunk

    def slow_put(self, chunk_id, data, staging):
        entered.set()
        release.wait(10)
        return real_put(self, chunk_id, data, staging)

    monkeypatch.setattr(Repository, "stage_chunk", slow_put)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(r=take(provider, vm_of(volume(disk)), "rp-1")))
    worker.start()
    assert entered.wait(10)
    lock_files = list((repo / "locks").iterdir())
    assert [p.name.split("-")[0] for p in lock_files] == ["shared"]  # the backup is registered

    with pytest.raises(ProviderError, match=r"busy \(shared lock for backup of vm-vm-1 as rp-1\)"):
        provider.gc(grace_s=0)
    release.set()
    worker.join(10)

    assert "r" in outcome
    provider.gc(grace_s=0)
    provider.verify(outcome["r"][1])


def test_backup_waits_out_gc_and_stale_locks_are_cleared(nas, disks, repo):
    disk = make_raw(disks / "root.raw", size=1 * MiB)
    provider = nas(lock_wait_s=0.2, lock_stale_s=60)
    take(provider, vm_of(volume(disk)), "rp-1")
    gc_lock = RepositoryLock(repo / "locks", "exclusive", "garbage collection", stale_after=60, wait=0)
    gc_lock.acquire()
    try:
        with pytest.raises(ProviderError, match="busy") as err:
            take(provider, vm_of(volume(disk)), "rp-2")
        assert err.value.retryable
    finally:
        gc_lock.release()

    # A dead worker's lock: not touched for longer than lock_stale_s.
    dead = RepositoryLock(repo / "locks", SHARED, "backup of a crashed worker", stale_after=60, wait=0)
    dead._create()
    os.utime(dead.path, (time.time() - 3600, time.time() - 3600))
    provider.gc(grace_s=0)
    assert not dead.path.exists()
