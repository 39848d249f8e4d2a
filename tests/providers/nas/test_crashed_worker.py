"""A worker killed -9 in the middle of a backup: its lock and its staged chunks.

The worker is a real process taking a real backup; it is killed once half the image is
staged. Garbage collection must not wait out the stale-lock timeout for it, and the retry
of its restore point must take over the chunks it staged instead of writing them again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.domain.errors import ProviderError
from providers.nas.crypto import Damaged
from providers.nas.holder import Holder, process_state
from providers.nas.locks import SHARED, RepositoryLock
from providers.nas.store import Repository
from tests.providers.nas.conftest import CHUNK, MiB, guest_bytes, make_raw, take, vm_of, volume

# Takes a backup and stops (for good) once half the image is staged.
WORKER = """
import json, sys, time
from pathlib import Path
from providers.base import BackupRequest, VMRef
from providers.nas import NasProvider

settings, vm, point = json.loads(sys.argv[1]), VMRef.from_dict(json.loads(sys.argv[2])), sys.argv[3]
provider = NasProvider("nas-test", settings, Path(settings["repository"]).parent / "worker-data")

def progress(done, total):
    if total and done >= total // 2:
        print("staged", flush=True)
        time.sleep(3600)

provider.take_backup(BackupRequest(point, vm, "nas-daily"), progress)
"""

SIZE = 8 * MiB


@pytest.fixture
def crashed(nas, disks, repo, tmp_path):
    """A provider, the VM, and the staged chunk files a worker killed mid-backup left."""
    settings = {"repository": str(repo), "snapshot": "direct", "chunk_size": CHUNK, "lock_wait_s": 1}
    provider = nas(**settings)
    provider.init_repository()
    disk = make_raw(disks / "root.raw", size=SIZE, sparse_tail=False)
    vm = vm_of(volume(disk))
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(settings), json.dumps(vm.to_dict()), "rp-1"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])},
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "staged"
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    staged = list((repo / "chunks").glob("*/.tmp-*"))
    assert len(staged) >= SIZE // CHUNK // 2
    assert [p.name.split("-")[0] for p in (repo / "locks").iterdir()] == ["shared"]
    return provider, vm, staged


def test_gc_breaks_a_dead_workers_lock_at_once_and_removes_its_staged_chunks(crashed, repo):
    provider, _, staged = crashed

    report = provider.gc()  # lock_stale_s is 600, lock_wait_s 1: "busy" unless broken at once

    assert report.removed_tmp == len(staged)
    assert not list((repo / "chunks").glob("*/.tmp-*"))
    assert not list((repo / "locks").iterdir())


def test_the_retry_takes_over_the_staged_chunks_it_can_check(crashed, repo, tmp_path):
    provider, vm, staged = crashed
    # The pool's other threads may have been killed in the middle of a write, too.
    whole = [p for p in staged if _is_whole(Repository.open(provider.cfg), p)]
    assert whole
    cut = whole.pop()
    cut.write_bytes(cut.read_bytes()[:100])  # cut short by the crash: must be written again

    result, point = take(provider, vm, "rp-1")

    manifest = next(m for m in provider.list_points() if m.id == "rp-1")
    stats = manifest.stats
    assert stats["adopted_chunks"] == len(whole)
    assert stats["new_chunks"] == len(manifest.chunk_ids()) - len(whole)
    assert result.size == stats["stored_bytes"]
    assert not list((repo / "chunks").glob("*/.tmp-*"))
    assert not list((repo / "locks").iterdir())
    provider.verify(point)
    out = tmp_path / "restored.raw"
    out.write_bytes(b"")
    provider.restore_vm(point, vm_of(volume(out)), lambda done, total: None)
    assert out.read_bytes() == guest_bytes(vm.volumes[0].path, "raw", tmp_path)


def _is_whole(repo: Repository, staged: Path) -> bool:
    chunk_id = staged.name.removeprefix(".tmp-").split(".")[0]
    try:
        repo.decode_chunk(chunk_id, staged.read_bytes())
    except Damaged:
        return False
    return True


def _lock_of(repo: Path, holder: Holder) -> Path:
    lock = RepositoryLock(repo / "locks", SHARED, "backup elsewhere", stale_after=600, wait=0)
    body = {"kind": SHARED, "purpose": lock.purpose, **holder.to_dict(), "created_at": time.time()}
    lock.path.write_text(json.dumps(body))
    return lock.path


def test_a_lock_held_on_another_host_still_waits_for_the_timeout(nas, disks, repo):
    provider = nas(lock_wait_s=0.2)
    take(provider, vm_of(volume(make_raw(disks / "root.raw", size=MiB))), "rp-1")
    here = Holder.current()
    gone = 2**22 + 17  # above any pid_max: no such process here
    for elsewhere in (
        Holder("another-host", here.boot_id, here.pid_namespace, gone, 1),
        Holder(here.host, "another-boot", here.pid_namespace, gone, 1),
        Holder(here.host, here.boot_id, "pid:[another-container]", gone, 1),
    ):
        path = _lock_of(repo, elsewhere)
        with pytest.raises(ProviderError, match="busy"):
            provider.gc()
        path.unlink()


def test_a_reused_pid_is_not_taken_for_the_holder():
    here = Holder.current()
    assert here.started is not None
    assert process_state(here.pid) is not None
    assert not here.is_dead()
    reused = Holder(here.host, here.boot_id, here.pid_namespace, here.pid, here.started + 1)
    assert reused.is_dead()
    assert Holder(here.host, here.boot_id, here.pid_namespace, 2**22 + 17, 1).is_dead()
