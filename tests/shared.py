"""What a test shares with the other test processes on the machine: the other workers of a
``pytest -n`` run, and the runs of other checkouts.

A shared thing (a Redis database a test flushes, the system's libvirtd, RabbitMQ's default
vhost) is used under a lock named for it: ``flock`` on a file in the system's temp folder,
freed by the kernel when its holder exits, however it ends.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SHARED = Path(tempfile.gettempdir()) / "backup-orchestrator-tests"


def worker_index() -> int:
    """This process's place among ``pytest -n N``'s workers (gw0 … gwN-1); 0 without -n."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw"))


def shared_path(name: str) -> Path:
    """A path in the folder every test process on the machine sees."""
    SHARED.mkdir(mode=0o700, exist_ok=True)
    return SHARED / re.sub(r"[^A-Za-z0-9.-]+", "_", name)


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Held by one test process at a time, until the block ends."""
    with shared_path(f"{name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
