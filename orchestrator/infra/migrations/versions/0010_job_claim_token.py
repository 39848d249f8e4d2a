"""job claim token

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 22:30:00.000000

Each claim of a job writes a token of its own, so that a worker whose claim committed but
whose answer was lost (the database went away at that moment) recognises its own claim when
it tries again, instead of leaving the job running under nobody until its lease expires.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('claim_token')
