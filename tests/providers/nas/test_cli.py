"""Repository maintenance from a shell: python -m providers.nas."""

from __future__ import annotations

import json
import os
import time

from providers.nas.__main__ import main
from tests.providers.nas.conftest import CHUNK, make_raw, stored_chunks, take, vm_of, volume


def test_list_check_prune_gc(nas, disks, repo, tmp_path, capsys):
    disk = make_raw(disks / "root.raw", size=1024 * 1024)
    provider = nas()
    _, first = take(provider, vm_of(volume(disk)), "rp-1")
    make_raw(disk, size=1024 * 1024, seed=5)
    take(provider, vm_of(volume(disk)), "rp-2", parent=first)
    config = tmp_path / "nas.json"
    config.write_text(json.dumps({"repository": str(repo), "chunk_size": CHUNK}))
    args = ["--config", str(config)]

    assert main([*args, "list"]) == 0
    assert "rp-1" in capsys.readouterr().out

    assert main([*args, "check", "--read-data"]) == 0
    assert "2 restore points" in capsys.readouterr().out

    assert main([*args, "prune", "--keep-last", "1"]) == 0
    assert "would remove rp-1" in capsys.readouterr().out
    assert len(provider.list_points()) == 2
    assert main([*args, "prune", "--keep-last", "1", "--yes"]) == 0
    assert [p.id for p in provider.list_points()] == ["rp-2"]

    old = time.time() - 2 * 86400
    for path in stored_chunks(repo):
        os.utime(path, (old, old))
    assert main([*args, "gc"]) == 0
    assert "freed" in capsys.readouterr().out
    assert provider.check(read_data=True).ok

    sorted(stored_chunks(repo))[0].write_bytes(b"rot")
    assert main([*args, "check", "--read-data"]) == 1
    assert "DAMAGED rp-2" in capsys.readouterr().out


def test_errors_exit_with_status_2(tmp_path, capsys):
    config = tmp_path / "nas.json"
    config.write_text(json.dumps({"repository": "relative"}))
    assert main(["--config", str(config), "list"]) == 2
    assert "must be an absolute path" in capsys.readouterr().err
