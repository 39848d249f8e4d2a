"""restore points that kept some volumes: PartiallyFailed and their failed volumes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 16:30:00.000000

A backup of a multi-volume VM where some volumes failed may keep the others, as a restore
point of its own status (``PartiallyFailed``) naming the volumes it lacks. The status is a
string column with a CHECK of its values: the check is replaced to admit the new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BEFORE = ('Allocated', 'Queued', 'BackingUp', 'BackedUp', 'Error', 'Failed', 'Restoring', 'Removed', 'Expunged')
AFTER = (*BEFORE[:4], 'PartiallyFailed', *BEFORE[4:])


def _status_check(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    with op.batch_alter_table('backups') as batch:
        batch.drop_constraint(op.f('ck_backups_backupstatus'), type_='check')
        batch.create_check_constraint('backupstatus', _status_check(AFTER))
        batch.add_column(sa.Column('failed_volumes', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))


def downgrade() -> None:
    # A partial point holds restorable volumes but no state the old schema knows: Error.
    op.execute("UPDATE backups SET status = 'Error' WHERE status = 'PartiallyFailed'")
    with op.batch_alter_table('backups') as batch:
        batch.drop_column('failed_volumes')
        batch.drop_constraint(op.f('ck_backups_backupstatus'), type_='check')
        batch.create_check_constraint('backupstatus', _status_check(BEFORE))
