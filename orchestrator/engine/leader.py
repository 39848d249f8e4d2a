"""One dispatcher at a time: a leader lock that dies with its holder.

On PostgreSQL a session-level advisory lock on a connection of its own: if the leader's
process or its connection dies, the database frees the lock and a standby takes over.
Advisory locks are per database, so the key names the schema too: two installations in
one database, each in its own schema, each have their leader. On
SQLite (one machine) an ``flock`` on a file beside the data, freed by the kernel likewise.
"""

from __future__ import annotations

import fcntl
import logging
import zlib
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, func, select, text

from orchestrator.engine.core import Core
from orchestrator.infra.private_files import touch_private

log = logging.getLogger(__name__)

_SCHEMA_KEY = func.hashtext(func.current_schema())


class LeaderLock:
    def __init__(self, core: Core, name: str = "dispatcher") -> None:
        self.core = core
        self.name = name
        self._key = zlib.crc32(f"backup-orchestrator:leader:{name}".encode()) - 2**31
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None

    @property
    def is_postgres(self) -> bool:
        return self.core.db.engine.dialect.name == "postgresql"

    def hold(self) -> bool:
        """True while this process leads: keeps the lock, or tries to take it."""
        if self.is_postgres:
            return self._hold_advisory()
        return self._hold_file()

    def _hold_advisory(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception as exc:
                # The connection died, and the lock with it: someone else may lead now.
                log.warning("lost the %s leader lock with its connection: %s", self.name, exc)
                self._drop_connection()
        try:
            # Autocommit: the lock belongs to the session, and the liveness checks must not
            # leave it "idle in transaction" (a server timeout for those would drop the lock).
            conn = self.core.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if conn.execute(select(func.pg_try_advisory_lock(self._key, _SCHEMA_KEY))).scalar():
                self._conn = conn
                log.info("took the %s leader lock", self.name)
                return True
            conn.close()
        except Exception as exc:
            log.warning("could not reach the database for the %s leader lock: %s", self.name, exc)
        return False

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:
                log.debug("closing a dead leader connection failed", exc_info=True)
            self._conn = None

    def _hold_file(self) -> bool:
        if self._file is not None:
            return True
        path = Path(self.core.settings.home) / f"{self.name}.lock"
        touch_private(path)
        handle = path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(select(func.pg_advisory_unlock(self._key, _SCHEMA_KEY)))
            except Exception:
                log.debug("releasing the leader lock failed; closing frees it", exc_info=True)
            self._drop_connection()
        if self._file is not None:
            self._file.close()
            self._file = None
