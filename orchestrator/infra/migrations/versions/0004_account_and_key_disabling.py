"""accounts and API keys can be disabled

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 16:10:00.000000

A disabled key, or any key of a disabled account, stops authenticating until it is
enabled again; nothing else changes for them. Existing rows stay enabled.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import orchestrator.domain.models.base


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('disabled_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('disabled_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('disabled_at')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('disabled_at')
