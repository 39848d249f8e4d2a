"""Who holds a repository lock, and whether that process is gone.

A lock file records its holder's host name, the machine's boot id, the pid namespace, the
pid and the process's start time. A holder is known dead only when it ran on *this*
machine, in *this* pid namespace, since the last boot, and its pid is gone, a zombie, or
belongs to a process started at another time (the pid was reused). Anything else (another
host, another container, another boot, a system without ``/proc``'s answers) is unknown,
and its lock goes stale by the timeout as before.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink(PROC / "self" / "ns" / "pid")
    except OSError:
        return None


def process_state(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks after boot) from ``/proc/<pid>/stat``;
    None when there is no such process (or no ``/proc``)."""
    raw = _read(PROC / str(pid) / "stat")
    if raw is None:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


@dataclass(frozen=True)
class Holder:
    host: str
    boot_id: str | None
    pid_namespace: str | None
    pid: int
    started: int | None

    @classmethod
    def current(cls) -> Holder:
        pid = os.getpid()
        state = process_state(pid)
        return cls(
            host=socket.gethostname(),
            boot_id=_read(PROC / "sys" / "kernel" / "random" / "boot_id"),
            pid_namespace=_pid_namespace(),
            pid=pid,
            started=state[1] if state else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "boot_id": self.boot_id,
            "pid_namespace": self.pid_namespace,
            "pid": self.pid,
            "started": self.started,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Holder | None:
        """The holder a lock file names; None for a file without one (an older version's)."""
        try:
            return cls(
                host=str(raw["host"]),
                boot_id=raw.get("boot_id"),
                pid_namespace=raw.get("pid_namespace"),
                pid=int(raw["pid"]),
                started=raw.get("started"),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def is_dead(self) -> bool:
        """True only when this holder's process surely no longer runs (see the module doc)."""
        here = Holder.current()
        if (self.host, self.boot_id, self.pid_namespace) != (here.host, here.boot_id, here.pid_namespace):
            return False
        if self.boot_id is None or self.pid_namespace is None:
            return False  # no /proc to tell this machine from another of the same name
        state = process_state(self.pid)
        if state is None:
            return True
        letter, started = state
        return letter in ("Z", "X") or (self.started is not None and started != self.started)
