"""restore point listing indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 11:20:00.000000

Lists of restore points are read newest first, by VM, by account or whole, and carry the
number of matching points. These indexes run in exactly that order (``created_at``, then
``id`` to break ties), and on PostgreSQL carry ``status`` too, so that the count (which
leaves removed points out) is an index-only scan. They supersede the (vm_id, created_at)
and (account_id, created_at) indexes, whose columns they begin with.
"""

from __future__ import annotations

from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_backups_vm_page', 'backups', ['vm_id', 'created_at', 'id'], postgresql_include=['status'])
    op.create_index(
        'ix_backups_account_page', 'backups', ['account_id', 'created_at', 'id'], postgresql_include=['status']
    )
    op.create_index('ix_backups_page', 'backups', ['created_at', 'id'], postgresql_include=['status'])
    op.drop_index('ix_backups_vm_date', table_name='backups')
    op.drop_index('ix_backups_account_date', table_name='backups')


def downgrade() -> None:
    op.create_index('ix_backups_account_date', 'backups', ['account_id', 'created_at'])
    op.create_index('ix_backups_vm_date', 'backups', ['vm_id', 'created_at'])
    op.drop_index('ix_backups_page', table_name='backups')
    op.drop_index('ix_backups_account_page', table_name='backups')
    op.drop_index('ix_backups_vm_page', table_name='backups')
