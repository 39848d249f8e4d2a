"""Alembic environment: runs on the engine the application hands over (SQLite or PostgreSQL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine

from orchestrator.domain.models import Base

config = context.config


def _engine() -> Engine:
    """The engine the application handed over, else one on the configured URL."""
    handed: Engine | None = config.attributes.get("engine")
    if handed is not None:
        return handed
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("migrations: no engine handed over and no sqlalchemy.url configured")
    return create_engine(url)


engine = _engine()

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
