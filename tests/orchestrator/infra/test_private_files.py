"""The data directory and the SQLite files hold sealed secrets and the master key: only
their owner may open them, whatever the umask lets other files be."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from orchestrator.infra.db import Database
from orchestrator.infra.private_files import private_dir, write_private
from orchestrator.infra.sealing import Sealer


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what a service manager usually gives: files 0644, folders 0755
    yield
    os.umask(old)


def test_the_sqlite_database_and_its_wal_are_0600_in_a_0700_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = Database(f"sqlite:///{home / 'orchestrator.db'}")
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
        # The WAL and its index exist while a connection is open.
        assert mode(home / "orchestrator.db-wal") == 0o600
        assert mode(home / "orchestrator.db-shm") == 0o600
    db.dispose()
    assert mode(home) == 0o700
    assert mode(home / "orchestrator.db") == 0o600
    assert mode(home / "orchestrator.db.migrate-lock") == 0o600


def test_the_master_key_makes_a_0700_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKUP_SECRET_KEY", raising=False)
    home = tmp_path / "fresh"
    Sealer(home)
    assert mode(home) == 0o700
    assert mode(home / "master.key") == 0o600


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    private_dir(shared)
    assert mode(shared) == 0o750


def test_a_private_file_is_replaced_whole_and_stays_0600(tmp_path: Path) -> None:
    target = tmp_path / "creds"
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["creds"]
