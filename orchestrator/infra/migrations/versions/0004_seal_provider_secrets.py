"""seal the secret settings of provider configurations

Revision ID: 0004_seal_provider_secrets
Revises: 0003
Create Date: 2026-12-03 16:30:00.000000

Provider configurations held the NAS repository passphrase (``encryption.passphrase`` of
the ``nas`` and ``kvm`` drivers, the only secret settings the shipped drivers had) in clear.
This seals each with the master key, in the form the application now stores and reads:
``{"$sealed": <Fernet token>}``; a downgrade opens them again.

The key is read as the application reads it: ``BACKUP_SECRET_KEY``, else ``master.key`` in
the data directory the application handed over (``BACKUP_HOME`` when Alembic runs alone),
and only when there is a passphrase to seal or open. When it cannot be read or is no key,
the migration stops with the error naming the setting, and the transaction leaves every
row as it was: run it again with ``BACKUP_SECRET_KEY`` (or ``BACKUP_HOME``) set as the
application's processes have it. Settings of third-party drivers are not known here; the
application seals them when such a provider is added again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from orchestrator.infra.config import Settings
from orchestrator.infra.sealing import Sealer

revision = '0004_seal_provider_secrets'
down_revision = '0003'
branch_labels = None
depends_on = None

# Frozen here: what the drivers declared secret when this revision was written.
DRIVERS = ('nas', 'kvm')
SECTION, SETTING = 'encryption', 'passphrase'
MARK = '$sealed'

providers = sa.table(
    'backup_providers', sa.column('id', sa.String), sa.column('driver', sa.String), sa.column('config', sa.JSON)
)


def _sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {MARK}


def _rewrite(change: Callable[[Sealer, Any], Any | None]) -> None:
    """Apply ``change`` to each passphrase; it returns the new value, or None to leave it."""
    bind = op.get_bind()
    sealer: Sealer | None = None
    query = sa.select(providers.c.id, providers.c.config).where(providers.c.driver.in_(DRIVERS))
    for provider_id, config in bind.execute(query).all():
        section = (config or {}).get(SECTION)
        if not isinstance(section, dict) or SETTING not in section:
            continue
        if sealer is None:
            home = context.config.attributes.get('home') or Settings.from_env().home
            sealer = Sealer(Path(home))
        new = change(sealer, section[SETTING])
        if new is not None:
            config = {**config, SECTION: {**section, SETTING: new}}
            bind.execute(providers.update().where(providers.c.id == provider_id).values(config=config))


def upgrade() -> None:
    _rewrite(lambda sealer, value: {MARK: sealer.seal(value)} if isinstance(value, str) else None)


def downgrade() -> None:
    _rewrite(lambda sealer, value: sealer.unseal(value[MARK]) if _sealed(value) else None)
