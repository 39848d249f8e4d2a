"""Attempts of one backup job against the repository: an older attempt that wakes up after
a newer one started commits nothing, and removing an abandoned attempt never removes a
point a newer attempt wrote or took over."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import ProviderError
from providers.base import BackupRequest, StoredPoint
from providers.nas.store import Repository
from tests.providers.nas.conftest import ignore, make_raw, vm_of, volume


def request(vm, attempt: int) -> BackupRequest:
    return BackupRequest("rp-1", vm, "nas-daily", attempt=attempt)


def test_an_attempt_overtaken_while_it_runs_is_not_committed(nas, disks):
    vm = vm_of(volume(make_raw(disks / "root.raw")))
    provider = nas()
    newer: list[int] = []

    def newer_attempt_takes_over(done: int, total: int) -> None:
        if done and not newer:  # attempt 2 runs to its end while attempt 1 is under way
            newer.append(provider.take_backup(request(vm, 2), ignore).size)

    with pytest.raises(ProviderError, match="superseded by attempt 2"):
        provider.take_backup(request(vm, 1), newer_attempt_takes_over)
    assert provider.list_restore_points() == [StoredPoint("rp-1", "rp-1", vm.id)]
    provider.abandon_backup("rp-1", 1)  # what the engine asks of the stale attempt
    assert [p.restore_point_id for p in provider.list_restore_points()] == ["rp-1"]


def test_abandon_removes_the_attempts_own_commit(nas, disks):
    vm = vm_of(volume(make_raw(disks / "root.raw")))
    provider = nas()
    provider.take_backup(request(vm, 1), ignore)  # committed, then its worker lost the job
    provider.abandon_backup("rp-1", 1)
    assert provider.list_restore_points() == []
    provider.take_backup(request(vm, 2), ignore)  # the new attempt writes it afresh
    assert len(provider.list_restore_points()) == 1


def test_abandon_keeps_a_point_a_newer_attempt_took_over(nas, disks):
    vm = vm_of(volume(make_raw(disks / "root.raw")))
    provider = nas()
    first = provider.take_backup(request(vm, 1), ignore)
    again = provider.take_backup(request(vm, 2), ignore)  # finds it done and records it
    provider.abandon_backup("rp-1", 1)
    assert again == first
    assert len(provider.list_restore_points()) == 1


def test_abandon_puts_back_a_point_a_newer_attempt_took_over_meanwhile(nas, disks, monkeypatch):
    vm = vm_of(volume(make_raw(disks / "root.raw")))
    provider = nas()
    provider.take_backup(request(vm, 1), ignore)
    delete = Repository.delete_manifest

    def newer_attempt_starts_meanwhile(repo: Repository, point_id: str) -> bool:
        gone = delete(repo, point_id)
        repo.start_writing(point_id, 2)  # and may read the manifest before it was deleted
        return gone

    monkeypatch.setattr(Repository, "delete_manifest", newer_attempt_starts_meanwhile)
    provider.abandon_backup("rp-1", 1)
    assert len(provider.list_restore_points()) == 1
