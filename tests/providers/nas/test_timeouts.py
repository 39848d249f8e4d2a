"""A repository (or disk) that stops answering fails the job in bounded time."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest

from orchestrator.domain.errors import ProviderError
from providers.nas.iopool import IoPool, IoTimeout, run_bounded
from providers.nas.store import Repository
from tests.providers.nas.conftest import ignore, make_raw, take, vm_of, volume

TIMEOUT = 0.5


@pytest.fixture
def hang(monkeypatch):
    """Make a Repository method block like a hung NFS mount, until the test ends."""
    released = threading.Event()

    def install(name: str) -> None:
        def blocked(*args, **kwargs):
            released.wait(30)
            raise OSError("the mount came back too late")

        monkeypatch.setattr(Repository, name, blocked)

    yield install
    released.set()


def test_backup_to_a_hung_repository_fails_within_the_timeout(nas, disks, repo, hang):
    disk = make_raw(disks / "root.raw")
    provider = nas(io_timeout_s=TIMEOUT)
    hang("stage_chunk")

    started = time.monotonic()
    with pytest.raises(IoTimeout, match=r"no answer within 0.5 s while backing up ROOT-0") as err:
        take(provider, vm_of(volume(disk)), "rp-1")

    assert time.monotonic() - started < 5 * TIMEOUT + 1
    assert err.value.retryable
    assert not (repo / "points" / "rp-1.manifest").exists()


def test_restore_from_a_hung_repository_fails_within_the_timeout(nas, disks, hang):
    disk = make_raw(disks / "root.raw")
    vm = vm_of(volume(disk))
    provider = nas(io_timeout_s=TIMEOUT)
    _, point = take(provider, vm, "rp-1")
    disk.write_bytes(b"current")
    hang("get_chunk")

    started = time.monotonic()
    with pytest.raises(ProviderError, match="no answer within"):
        provider.restore_vm(point, vm, ignore)

    assert time.monotonic() - started < 5 * TIMEOUT + 1
    assert disk.read_bytes() == b"current"


def test_a_repository_file_that_never_answers(nas, disks, repo):
    """A FIFO stands in for a file on a dead NFS server: opening it blocks for ever."""
    repo.mkdir()
    fifo = repo / "config.json"
    os.mkfifo(fifo)
    provider = nas(io_timeout_s=TIMEOUT)
    try:
        started = time.monotonic()
        with pytest.raises(IoTimeout, match="opening the repository"):
            take(provider, vm_of(volume(make_raw(disks / "root.raw"))), "rp-1")
        assert time.monotonic() - started < 5 * TIMEOUT + 1
    finally:
        # Let the stuck reader go (a writer that closes at once gives it end-of-file).
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_a_hung_program_is_killed_at_its_deadline():
    started = time.monotonic()
    with pytest.raises(IoTimeout, match="did not finish"):
        run_bounded(["sleep", "30"], 0.3, "waiting")
    assert time.monotonic() - started < 2


def test_pool_never_waits_for_a_stuck_thread():
    stuck = threading.Event()
    with IoPool(1, 0.2, "test") as pool:
        future = pool.submit(stuck.wait, 30)
        with pytest.raises(IoTimeout):
            pool.wait(future, "waiting")
    stuck.set()
