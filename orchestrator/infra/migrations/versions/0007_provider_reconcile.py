"""provider reconcile result

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 16:30:00.000000

The last reconcile of each provider with its back end (``backupctl provider reconcile``):
how many copies the back end holds that no restore point records, and when it was counted,
so the API and the metrics show it whichever process ran it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import orchestrator.domain.models.base

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('backup_providers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('untracked_copies', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('reconciled_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('backup_providers', schema=None) as batch_op:
        batch_op.drop_column('reconciled_at')
        batch_op.drop_column('untracked_copies')
