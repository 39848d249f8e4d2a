"""one active job per exclusive key

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 16:30:00.000000

Backing up one VM, deleting one restore point or restoring one VM in place was guarded by
a check before the insert, which requests arriving at once all passed. Jobs now carry an exclusive key, and a partial
unique index lets at most one queued or running job hold each; finished jobs keep theirs
for the record.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

ACTIVE = sa.text("state IN ('queued', 'running')")


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('exclusive_key', sa.String(length=64), nullable=True))
    op.create_index(
        'uq_jobs_active_exclusive_key',
        'jobs',
        ['exclusive_key'],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index('uq_jobs_active_exclusive_key', table_name='jobs')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('exclusive_key')
