"""``backupctl serve`` on first start: the admin secret goes to a private file, not to the
logs a service manager keeps of stdout."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path

from api.cli.serve_cmd import ADMIN_KEY_FILE, announce_admin_key
from orchestrator.usecases.accounts import IssuedKey

BACKUPCTL = str(Path(sys.executable).with_name("backupctl"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_first_start_writes_the_secret_to_a_0600_file_and_logs_only_its_path(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = subprocess.Popen(
        [BACKUPCTL, "serve", "--port", str(free_port()), "--tick", "3600"],
        env={"PATH": "/usr/bin:/bin", "BACKUP_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines = []
        for line in server.stdout:  # a pipe, as under systemd or docker: no terminal
            lines.append(line)
            if line.startswith("serving on"):
                break
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = json.loads((home / ADMIN_KEY_FILE).read_text())
    assert stat.S_IMODE((home / ADMIN_KEY_FILE).stat().st_mode) == 0o600
    printed = "".join(lines)
    assert stored["secretkey"] not in printed
    assert str(home / ADMIN_KEY_FILE) in printed
    assert stored["apikey"] in printed


def test_a_person_at_a_terminal_sees_the_secret_once(tmp_path: Path, capsys) -> None:
    issued = IssuedKey(id="k", account="admin", apikey="AK", secretkey="SK-secret")
    announce_admin_key(issued, tmp_path, on_terminal=True)
    assert "SK-secret" in capsys.readouterr().out
    announce_admin_key(issued, tmp_path, on_terminal=False)
    assert "SK-secret" not in capsys.readouterr().out
