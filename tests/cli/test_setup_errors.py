"""A wrong setting or an unreachable database is one line on stderr and an exit code, never a
traceback, and never the password of a database URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BACKUPCTL = str(Path(sys.executable).with_name("backupctl"))


def backupctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BACKUPCTL, *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def home(tmp_path: Path) -> str:
    done = backupctl({"BACKUP_HOME": str(tmp_path)}, "init")
    assert done.returncode == 0, done.stderr
    done = backupctl({"BACKUP_HOME": str(tmp_path)}, "account", "create", "alice")
    assert done.returncode == 0, done.stderr
    return str(tmp_path)


@pytest.mark.parametrize(
    ("env", "code", "says"),
    [
        (
            {"BACKUP_DATABASE_URL": "postgresql+psycopg2://nobody:hunter2@127.0.0.1:1/x"},
            8,
            "the database postgresql+psycopg2://nobody:***@127.0.0.1:1/x cannot be reached",
        ),
        ({"BACKUP_DATABASE_URL": "garbage"}, 2, "BACKUP_DATABASE_URL is not a database URL"),
        ({"BACKUP_HOME": "/proc/nope"}, 2, "set BACKUP_HOME to a writable folder"),
    ],
)
def test_a_database_that_cannot_be_used_is_one_line(
    tmp_path: Path, env: dict[str, str], code: int, says: str
) -> None:
    done = backupctl({"BACKUP_HOME": str(tmp_path), **env}, "zone", "list")
    assert done.returncode == code
    assert done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert "hunter2" not in done.stderr


def test_a_master_key_that_is_no_key_is_one_line_and_not_shown(home: str) -> None:
    done = backupctl(
        {"BACKUP_HOME": home, "BACKUP_SECRET_KEY": "notakey"}, "key", "create", "--account", "alice"
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: BACKUP_SECRET_KEY is not a Fernet key")
    assert done.stderr.count("\n") == 1
    assert "notakey" not in done.stderr
