"""The README's "Using it" section, run line by line as a newcomer would type it, on a fresh
``BACKUP_HOME``: every command must succeed, in order."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"
BACKUPCTL = str(Path(sys.executable).with_name("backupctl"))


def section_commands(title: str) -> list[list[str]]:
    """The shell lines of the first ``sh`` block under ``title``, continuations joined and
    comments dropped; the virtualenv's activation is left out (the test runs its binary)."""
    text = README.read_text()
    body = text[text.index(f"## {title}\n") :]
    block = re.search(r"```sh\n(.*?)```", body, re.S)
    assert block is not None, f"no sh block under {title!r}"
    joined = block.group(1).replace("\\\n", " ")
    lines = [shlex.split(line, comments=True) for line in joined.splitlines()]
    return [words for words in lines if words and words[0] == "backupctl"]


class Newcomer:
    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "BACKUP_HOME": str(home)}
        self.env.pop("BACKUP_DATABASE_URL", None)
        self.env.pop("BACKUP_BROKER_URL", None)
        self.env.pop("BACKUP_ACCOUNT", None)
        self.found: dict[str, str] = {}

    def run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BACKUPCTL, *args], env=self.env, capture_output=True, text=True, timeout=120, check=False
        )

    def json(self, *args: str) -> Any:
        done = self.run([*args, "--json"])
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def placeholder(self, name: str) -> str:
        """What a reader would copy from an earlier command's output."""
        if name not in self.found:
            if name == "BACKUP_ID":
                listed = self.json("--as", "alice", "backup", "list")
                self.found[name] = listed["backups"][0]["id"]
            elif name == "VOLUME_ID":
                point = self.json("--as", "alice", "backup", "show", self.placeholder("BACKUP_ID"))
                self.found[name] = point["volumes"][-1]["id"]
        return self.found[name]

    def line(self, words: list[str]) -> list[str]:
        return [self.placeholder(w) if w in ("BACKUP_ID", "VOLUME_ID") else w for w in words[1:]]


def test_every_command_of_using_it_runs_in_order(tmp_path: Path) -> None:
    commands = section_commands("Using it")
    assert len(commands) >= 20
    user = Newcomer(tmp_path / "home")
    for words in commands:
        done = user.run(user.line(words))
        assert done.returncode == 0, f"{shlex.join(words)}\n{done.stdout}{done.stderr}"
    # The section's steps left what they say: a restore point, a schedule, and the copy.
    points = user.json("--as", "alice", "backup", "list")["backups"]
    assert {p["vm_name"] for p in points} == {"web-01"}
    names = {vm["name"] for vm in user.json("--as", "alice", "vm", "list")}
    assert {"web-01", "other-vm", "web-01-copy"} <= names


def test_the_section_starts_from_nothing() -> None:
    # The first command makes the database: a reader with an empty BACKUP_HOME can follow it.
    assert section_commands("Using it")[0][:2] == ["backupctl", "init"]
