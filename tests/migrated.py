"""A fresh database at the newest schema revision for each test, without running Alembic for
each: the migrations dominated the set-up of most tests (half a second a test or more).

They run once per session (per xdist worker) and per kind of database, through
``orchestrator.infra.db.migrate`` as the application runs them; each test's empty database
then gets what they made:

- SQLite: the migrated file, copied page for page with SQLite's backup API into the file the
  application's own ``make_engine`` made (so its mode and pragmas are the application's);
- PostgreSQL: every statement the migrations executed that changed something (reads are
  left out), replayed in one transaction in the test's schema. The statements name no
  schema (they run on the ``search_path``), so they build the same tables there.

The tests of the migrations themselves (``tests/orchestrator/infra/test_migrations.py``)
start from empty databases and run Alembic as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from orchestrator.infra.db import Database, make_engine, migrate


class MigratedSchema:
    """Copies of one migration run, per kind of database, made on first use."""

    def __init__(self, workdir: Path, postgres_schema: Callable[[], AbstractContextManager[str]]) -> None:
        self._workdir = workdir
        self._postgres_schema = postgres_schema
        self._sqlite_template: Path | None = None
        self._postgres_script: str | None = None

    def database(self, url: str) -> Database:
        """``Database(url)`` on a fresh, empty ``url``, the schema copied in first."""
        engine = make_engine(url)
        try:
            if engine.dialect.name == "sqlite":
                self._copy_sqlite(engine)
            elif engine.dialect.name == "postgresql":
                self._replay_postgres(engine)
        finally:
            engine.dispose()
        # Finds the schema current and migrates nothing; any other kind of database is
        # migrated here as before.
        return Database(url)

    def _copy_sqlite(self, engine: Engine) -> None:
        if self._sqlite_template is None:
            template = self._workdir / "migrated.db"
            made = make_engine(f"sqlite:///{template}")
            migrate(made)
            made.dispose()
            self._sqlite_template = template
        source = sqlite3.connect(self._sqlite_template)
        try:
            with engine.connect() as conn:
                source.backup(conn.connection.driver_connection)
        finally:
            source.close()

    def _replay_postgres(self, engine: Engine) -> None:
        if self._postgres_script is None:
            self._postgres_script = self._record_postgres()
        with engine.begin() as conn:
            cursor = conn.connection.driver_connection.cursor()
            # No parameters: the statements were rendered with theirs already.
            cursor.execute(self._postgres_script)
            cursor.close()

    def _record_postgres(self) -> str:
        statements: list[str] = []

        def keep(_conn: Any, cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool) -> None:
            if statement.lstrip()[:6].upper() == "SELECT":
                return  # catalogue lookups, the migration lock, reads of rows to rewrite
            for params in parameters if many else [parameters]:
                statements.append(cursor.mogrify(statement, params).decode())

        with self._postgres_schema() as url:
            engine = make_engine(url)
            event.listen(engine, "before_cursor_execute", keep)
            try:
                migrate(engine)
            finally:
                engine.dispose()
        return ";\n".join(statements)
