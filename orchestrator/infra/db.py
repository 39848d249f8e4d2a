"""Engine, sessions and schema migration. The schema comes only from Alembic."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, func, literal, select
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, PendingRollbackError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from orchestrator.domain.errors import InvalidArgument, Unavailable
from orchestrator.infra.config import Settings
from orchestrator.infra.private_files import PRIVATE_FILE_MODE, touch_private

T = TypeVar("T")
log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a worker writes; the timeout turns lock contention into waiting.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; InvalidArgument (naming the setting, never echoing the URL,
    which may hold a password) when it cannot be one."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""  # sqlite:// alone is in memory
        if path and path != ":memory:":
            try:
                # SQLite makes its -wal and -shm files with the database file's mode, so
                # a file made 0600 here keeps all three (and the secrets in them) private.
                touch_private(Path(path))
            except OSError as exc:
                raise InvalidArgument(
                    f"cannot make the SQLite database {path} or its folder: {exc.strerror} "
                    "(set BACKUP_HOME to a writable folder, or BACKUP_DATABASE_URL)",
                    field="BACKUP_DATABASE_URL",
                ) from None
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, future=True)
    except (ArgumentError, ImportError) as exc:
        raise InvalidArgument(
            "BACKUP_DATABASE_URL is not a database URL this installation can use "
            f"({type(exc).__name__}); e.g. postgresql+psycopg2://user@host:5432/db or sqlite:////path/to/file.db",
            field="BACKUP_DATABASE_URL",
        ) from None


def alembic_config(engine: Engine, home: Path | None = None) -> Config:
    """What Alembic runs with: the engine, and the data directory whose master key a
    migration that seals secrets reads (None: ``BACKUP_HOME``, as the settings read it)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser treats % as interpolation; URLs may contain %-escapes.
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    cfg.attributes["home"] = home
    return cfg


def is_current(engine: Engine) -> bool:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head


def migrate(engine: Engine, home: Path | None = None) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already).

    Processes starting together (gunicorn's workers, several workers on one host) take
    turns: two upgrades at once deadlock on PostgreSQL, and on SQLite the second one fails
    on the tables the first made. The check is made in turn too: on SQLite a reader waits
    for a long migration's writes and may give up."""
    with _migration_turn(engine):
        if not is_current(engine):
            command.upgrade(alembic_config(engine, home), "head")


@contextmanager
def _migration_turn(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name == "postgresql":
        # A session lock per schema, held on a connection of its own while the upgrade runs.
        key = func.hashtextextended(literal("backup-orchestrator:migrate:") + func.current_schema(), 0)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(select(func.pg_advisory_lock(key)))
            try:
                yield
            finally:
                conn.execute(select(func.pg_advisory_unlock(key)))
    elif database and database != ":memory:":
        lock = os.open(f"{database}.migrate-lock", os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
        with os.fdopen(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # freed when the handle closes
            yield
    else:
        yield  # an in-memory database: nobody else can see it


class Database:
    """One engine and its session factory, migrated on first use."""

    def __init__(self, url: str, *, auto_migrate: bool = True, home: Path | None = None) -> None:
        self.engine = make_engine(url)
        if auto_migrate:
            try:
                migrate(self.engine, home)
            except OperationalError as exc:
                raise unavailable(self.engine, exc) from exc
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(settings.database_url, home=settings.home)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back when it raises."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def unavailable(engine: Engine, exc: DBAPIError) -> Unavailable:
    """What a caller is told when the database cannot be reached: where (without password)
    and the driver's first line of why."""
    where = engine.url.render_as_string(hide_password=True)
    why = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    return Unavailable(f"the database {where} cannot be reached: {why}")


# SQLAlchemy's code for "Can't reconnect until invalid transaction is rolled back": the
# transaction's connection was lost earlier (a disconnect invalidates it) and the error that
# said so was caught and passed over, e.g. by a step that lets a follow-up fail; the commit
# then reports the loss under this name, not as an OperationalError.
_LOST_IN_TRANSACTION = "8s2b"


def is_unreachable(exc: BaseException) -> bool:
    """A lost or refused connection (a restart, a failover, a locked SQLite file), not a bad query."""
    return (
        isinstance(exc, OperationalError)
        or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
        or (isinstance(exc, PendingRollbackError) and exc.code == _LOST_IN_TRANSACTION)
    )


# The longest pause between two tries of a worker's write while the database is away.
RETRY_WAIT_MAX_SECONDS = 5.0


def persist(step: Callable[[], T], *, for_seconds: float) -> T:
    """Run a database step (its own transaction) again while the database cannot be reached.

    Workers wrap their bookkeeping in this so a database restart delays jobs instead of
    losing their outcome. The step must be safe to repeat: a commit whose answer was lost
    is seen by the next attempt."""
    retrying = Retrying(
        retry=retry_if_exception(is_unreachable),
        wait=wait_exponential(multiplier=0.2, max=RETRY_WAIT_MAX_SECONDS),
        stop=stop_after_delay(for_seconds),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "database unreachable (%s); retrying", state.outcome.exception() if state.outcome else "?"
        ),
    )
    return retrying(step)
