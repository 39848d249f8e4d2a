"""Repository locks as files, so they work across hosts on NFS/SMB where flock may not.

Backups hold a *shared* lock for their whole run (the lock file names the restore point:
this is how in-progress backups are registered); garbage collection holds the *exclusive*
one. Either kind is created first and the other locks are looked at second, so of two
racing parties at least one sees the other and backs off. A holder touches its file every
``stale_after / 5`` seconds; a lock whose file was not touched for ``stale_after`` seconds
belongs to a dead worker, and garbage collection removes it. Ages are measured against the
mtime of our own freshly touched lock file, i.e. the file server's clock, so worker clocks
that disagree do not matter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from orchestrator.domain.errors import ProviderError
from providers.nas.holder import Holder
from providers.nas.iopool import IoPool, IoTimeout

log = logging.getLogger(__name__)

SHARED = "shared"
EXCLUSIVE = "exclusive"


@dataclass(frozen=True)
class LockInfo:
    path: Path
    kind: str
    token: str
    mtime: float
    purpose: str
    holder: Holder | None


class RepositoryLock:
    def __init__(self, locks_dir: Path, kind: str, purpose: str, *, stale_after: float, wait: float) -> None:
        assert kind in (SHARED, EXCLUSIVE)
        self.locks_dir = locks_dir
        self.kind = kind
        self.purpose = purpose
        self.stale_after = stale_after
        self.wait = wait
        # Also names the temporary files written under this lock.
        self.token = uuid.uuid4().hex
        self.path = locks_dir / f"{kind}-{self.token}.lock"
        # Tokens of the dead holders whose locks we removed.
        self.dead_tokens: set[str] = set()
        self._stop = threading.Event()
        self._lost = False
        self._heartbeat: threading.Thread | None = None

    # -- acquiring ---------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lock, waiting up to ``wait`` seconds for conflicting holders to finish."""
        deadline = time.monotonic() + self.wait
        while True:
            self._create()
            blocking = self._conflicts()
            if not blocking:
                self._start_heartbeat()
                return
            self._remove()
            if time.monotonic() >= deadline:
                held = ", ".join(f"{b.kind} lock for {b.purpose}" for b in blocking[:3])
                raise ProviderError(
                    f"repository {self.locks_dir.parent} is busy ({held}); {self.purpose} will be retried",
                    retryable=True,
                )
            time.sleep(min(1.0, max(0.05, self.wait / 20)) * random.uniform(0.5, 1.5))

    def acquire_within(self, pool: IoPool, timeout: float) -> None:
        """``acquire`` on a pool thread within ``timeout``; granted after we gave up, the lock
        is dropped at once instead of being held (and refreshed) by nobody."""
        future = pool.submit(self.acquire)
        try:
            pool.wait(future, "locking the repository", timeout)
        except IoTimeout:
            future.add_done_callback(self._release_if_granted)
            raise

    def _release_if_granted(self, future: Future[None]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.release()

    def _create(self) -> None:
        body = {
            "kind": self.kind,
            "purpose": self.purpose,
            **Holder.current().to_dict(),
            "created_at": time.time(),
        }
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "w") as f:
            json.dump(body, f)

    def _remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def others(self) -> list[LockInfo]:
        found = []
        for entry in os.scandir(self.locks_dir):
            if not entry.name.endswith(".lock") or entry.path == str(self.path):
                continue
            try:
                mtime = entry.stat().st_mtime
                body = json.loads(Path(entry.path).read_text())
            except (FileNotFoundError, ValueError):
                continue  # released while we looked, or still being written
            kind, _, token = entry.name.removesuffix(".lock").partition("-")
            holder = Holder.from_dict(body) if isinstance(body, dict) else None
            purpose = body.get("purpose", "?") if isinstance(body, dict) else "?"
            found.append(LockInfo(Path(entry.path), kind, token, mtime, purpose, holder))
        return found

    def server_now(self) -> float:
        os.utime(self.path)
        return self.path.stat().st_mtime

    def _conflicts(self) -> list[LockInfo]:
        now = self.server_now()
        blocking = []
        for other in self.others():
            if other.holder is not None and other.holder.is_dead():
                log.warning(
                    "removing %s lock %s (%s): its holder, pid %d on this host, is gone",
                    other.kind,
                    other.path.name,
                    other.purpose,
                    other.holder.pid,
                )
                self._break(other)
                continue
            if self.kind == SHARED and other.kind != EXCLUSIVE:
                continue
            if now - other.mtime > self.stale_after:
                if self.kind == EXCLUSIVE:
                    log.warning("removing stale %s lock %s (%s)", other.kind, other.path.name, other.purpose)
                    self._break(other)
                continue
            blocking.append(other)
        return blocking

    def _break(self, other: LockInfo) -> None:
        with contextlib.suppress(FileNotFoundError):
            other.path.unlink()
        self.dead_tokens.add(other.token)

    # -- holding -----------------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        interval = max(0.5, self.stale_after / 5)

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    os.utime(self.path)
                except FileNotFoundError:
                    self._lost = True
                    return
                except OSError:
                    log.warning("cannot refresh lock %s", self.path, exc_info=True)

        self._heartbeat = threading.Thread(target=beat, name="nas-lock-heartbeat", daemon=True)
        self._heartbeat.start()

    def check(self) -> None:
        """Raise unless the lock is still ours: called right before a manifest is committed."""
        try:
            os.utime(self.path)
        except FileNotFoundError:
            self._lost = True
        if self._lost:
            raise ProviderError(
                f"lost the repository lock for {self.purpose} (removed as stale?); "
                "not committing a restore point whose chunks may have been collected",
                retryable=True,
            )

    def release(self) -> None:
        self._stop.set()
        self._remove()
