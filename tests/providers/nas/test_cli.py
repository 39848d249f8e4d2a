"""The repository from a shell: python -m providers.nas."""

from __future__ import annotations

import json
import os
import time

from providers.nas.__main__ import main
from tests.providers.nas.conftest import (
    CHUNK,
    make_raw,
    overwrite,
    sha256,
    stored_chunks,
    take,
    vm_of,
    volume,
)


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


def test_backup_and_restore_image_files_with_a_passphrase_from_the_environment(
    disks, repo, tmp_path, capsys, monkeypatch
):
    root = make_raw(disks / "root.raw", size=2 * 1024 * 1024)
    data = make_raw(disks / "data.raw", size=1024 * 1024, seed=3)
    config = tmp_path / "nas.json"
    config.write_text(json.dumps({"repository": str(repo), "chunk_size": CHUNK}))
    monkeypatch.setenv("NAS_PASSPHRASE", "a passphrase kept out of the file")
    args = ["--config", str(config), "--passphrase-env", "NAS_PASSPHRASE"]

    assert main([*args, "init"]) == 0
    assert "ready" in capsys.readouterr().out
    assert main([*args, "backup", "--vm", "web-1", "--stopped", "--point", "rp-1", str(root), str(data)]) == 0
    assert capsys.readouterr().out.startswith("rp-1 FULL 3145728 bytes")
    overwrite(root, [0, CHUNK * 3])
    expected = [sha256(root), sha256(data)]
    assert main([*args, "backup", "--vm", "web-1", "--stopped", "--point", "rp-2", str(root), str(data)]) == 0
    # Chained to rp-1: only the two changed chunks are new.
    incremental = capsys.readouterr().out
    assert incremental.startswith("rp-2 INCREMENTAL"), incremental
    assert int(incremental.split(", ")[1].split()[0]) < 2 * CHUNK, incremental

    targets = [tmp_path / "root-restored.raw", tmp_path / "data-restored.raw"]
    assert main([*args, "restore", "rp-2", *map(str, targets)]) == 0
    assert [sha256(t) for t in targets] == expected
    assert "restored rp-2" in capsys.readouterr().out

    # The repository is encrypted: without the passphrase it does not open.
    assert main(["--config", str(config), "list"]) == 2
    monkeypatch.setenv("NAS_PASSPHRASE", "another passphrase")
    assert main([*args, "list"]) == 2
    assert "wrong encryption key" in capsys.readouterr().err


def test_passphrase_from_a_file_and_a_missing_variable(disks, repo, tmp_path, capsys, monkeypatch):
    disk = make_raw(disks / "root.raw", size=1024 * 1024)
    config = tmp_path / "nas.json"
    config.write_text(json.dumps({"repository": str(repo), "chunk_size": CHUNK, "snapshot": "direct"}))
    secret = tmp_path / "passphrase"
    secret.write_text("a passphrase in a file\n")
    args = ["--config", str(config), "--passphrase-file", str(secret)]
    assert main([*args, "backup", "--vm", "db-1", str(disk)]) == 0
    name = capsys.readouterr().out.split()[0]
    assert name.startswith("db-1-")
    assert main([*args, "list"]) == 0
    assert name in capsys.readouterr().out

    monkeypatch.delenv("NAS_UNSET", raising=False)
    assert main(["--config", str(config), "--passphrase-env", "NAS_UNSET", "list"]) == 2
    assert "NAS_UNSET is not set" in capsys.readouterr().err
