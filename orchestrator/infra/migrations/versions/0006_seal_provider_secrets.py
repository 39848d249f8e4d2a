"""seal the secret settings of provider configurations

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 16:30:00.000000

Provider configurations held their secrets (the ``nas`` and ``kvm`` repository passphrase,
any setting whose name says it is a secret) in clear. This seals each with the master key,
in the form the application stores and reads, ``{"$sealed": <Fernet token>}``; a downgrade
opens them again.

The key is read as the application reads it: ``BACKUP_SECRET_KEY``, else ``master.key`` in
the data directory the application handed over (``BACKUP_HOME`` when Alembic runs alone),
and only when there is a secret to seal or open. When it cannot be read or is no key, the
migration stops with the error naming the setting, and the transaction leaves every row as
it was: run it again with ``BACKUP_SECRET_KEY`` (or ``BACKUP_HOME``) set as the
application's processes have it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from orchestrator.domain.secrets import map_secrets
from orchestrator.infra.config import Settings
from orchestrator.infra.sealing import Sealer

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

providers = sa.table('backup_providers', sa.column('id', sa.String), sa.column('config', sa.JSON))


def _has_secret(config: Any) -> bool:
    found: list[Any] = []
    map_secrets(config, found.append)
    return bool(found)


def _rewrite(change: Callable[[Sealer, dict[str, Any]], dict[str, Any]]) -> None:
    bind = op.get_bind()
    sealer: Sealer | None = None
    for provider_id, config in bind.execute(sa.select(providers.c.id, providers.c.config)).all():
        if not isinstance(config, dict) or not _has_secret(config):
            continue
        if sealer is None:
            home = context.config.attributes.get('home') or Settings.from_env().home
            sealer = Sealer(Path(home))
        new = change(sealer, config)
        if new != config:
            bind.execute(providers.update().where(providers.c.id == provider_id).values(config=new))


def upgrade() -> None:
    _rewrite(lambda sealer, config: sealer.seal_config(config))


def downgrade() -> None:
    _rewrite(lambda sealer, config: sealer.unseal_config(config))
