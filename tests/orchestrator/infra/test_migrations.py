"""The schema comes from Alembic: on an empty database it builds every table of the models."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from orchestrator.domain.models import Backup, BackupType, Base
from orchestrator.infra.db import Database, alembic_config, is_current, make_engine, migrate
from orchestrator.usecases import backups

MODEL_TABLES = set(Base.metadata.tables)


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def _drift(engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_empty_database_is_not_current(engine):
    assert _tables(engine) == set()
    assert is_current(engine) is False


def test_upgrade_creates_every_model_table(engine):
    command.upgrade(alembic_config(engine), "head")

    assert _tables(engine) == MODEL_TABLES
    assert is_current(engine) is True


def test_upgraded_schema_matches_the_models(engine):
    command.upgrade(alembic_config(engine), "head")

    assert _drift(engine) == []


def test_upgraded_tables_have_model_columns(engine):
    command.upgrade(alembic_config(engine), "head")

    inspector = sa.inspect(engine)
    for name, table in Base.metadata.tables.items():
        columns = {c["name"] for c in inspector.get_columns(name)}
        assert columns == set(table.columns.keys()), name


def test_downgrade_to_base_drops_every_table(engine):
    cfg = alembic_config(engine)
    command.upgrade(cfg, "head")

    command.downgrade(cfg, "base")

    assert _tables(engine) == set()
    assert is_current(engine) is False


def test_upgrade_after_downgrade_restores_schema(engine):
    cfg = alembic_config(engine)
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")

    command.upgrade(cfg, "head")

    assert _tables(engine) == MODEL_TABLES
    assert is_current(engine) is True
    assert _drift(engine) == []


def test_migrate_is_idempotent(engine):
    migrate(engine)
    migrate(engine)

    assert _tables(engine) == MODEL_TABLES
    assert is_current(engine) is True


def test_database_migrates_on_first_use(database_url):
    db = Database(database_url)
    try:
        assert is_current(db.engine) is True
        assert _tables(db.engine) == MODEL_TABLES
    finally:
        db.dispose()


def test_database_without_auto_migrate_leaves_schema_alone(database_url):
    db = Database(database_url, auto_migrate=False)
    try:
        assert _tables(db.engine) == set()
        assert is_current(db.engine) is False
    finally:
        db.dispose()


def test_processes_starting_together_take_turns_at_the_upgrade(database_url):
    # As gunicorn's workers do when they boot on a database that is behind.
    engines = [make_engine(database_url) for _ in range(4)]
    errors: list[BaseException] = []

    def start(engine) -> None:
        try:
            migrate(engine)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert errors == []
        assert is_current(engines[0])
        assert _tables(engines[0]) == MODEL_TABLES
    finally:
        for engine in engines:
            engine.dispose()


def _status_check(engine) -> str:
    checks = sa.inspect(engine).get_check_constraints("backups")
    return next(c["sqltext"] for c in checks if c["name"] == "ck_backups_backupstatus")


def test_the_status_check_admits_partially_failed_and_the_downgrade_takes_it_back(engine):
    cfg = alembic_config(engine)
    command.upgrade(cfg, "head")
    assert "'PartiallyFailed'" in _status_check(engine)

    command.downgrade(cfg, "0004")

    assert "'PartiallyFailed'" not in _status_check(engine)
    assert "'BackedUp'" in _status_check(engine)
    assert "failed_volumes" not in {c["name"] for c in sa.inspect(engine).get_columns("backups")}


def test_restore_points_left_without_a_parent_become_full(engine, world):
    with world.core.scope(world.alice) as s:
        point_id = backups.create_backup(s, world.alice_vm).subject_id
    command.downgrade(alembic_config(engine), "0008")
    with engine.begin() as conn:
        # As the old code left a point whose parent a delete had taken.
        incremental = sa.update(Backup).values(backup_type=BackupType.INCREMENTAL)
        conn.execute(incremental.where(Backup.id == point_id))

    command.upgrade(alembic_config(engine), "head")

    with engine.connect() as conn:
        row = conn.execute(sa.select(Backup.backup_type, Backup.parent_id).where(Backup.id == point_id)).one()
    assert tuple(row) == (BackupType.FULL, None)
