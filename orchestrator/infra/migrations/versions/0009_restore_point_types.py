"""restore point types for restore

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 16:30:00.000000

A restore point's type now says what a restore needs: a point without a parent is FULL.
Points whose parent was deleted before this rule still say INCREMENTAL: they become FULL.
Data only; the schema is unchanged.
"""

from __future__ import annotations

from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE backups SET backup_type = 'FULL' WHERE backup_type = 'INCREMENTAL' AND parent_id IS NULL")


def downgrade() -> None:
    # Which of them once were incrementals is not recorded: nothing to undo.
    pass
