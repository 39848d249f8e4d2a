"""job limits, leases and logs; host connections

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:40:06.445898
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import orchestrator.domain.models.base


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_logs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_logs_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_logs'))
    )
    with op.batch_alter_table('job_logs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_logs_job_id'), ['job_id'], unique=False)

    with op.batch_alter_table('hosts', schema=None) as batch_op:
        # Hosts registered before this revision have no connection settings yet.
        batch_op.add_column(sa.Column('connection', sa.JSON(), nullable=False, server_default='{}'))

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('host_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('pool_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('dispatched_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_jobs_state_host', ['state', 'host_id'], unique=False)
        batch_op.create_index('ix_jobs_state_pool', ['state', 'pool_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_state_pool')
        batch_op.drop_index('ix_jobs_state_host')
        batch_op.drop_column('cancel_requested_at')
        batch_op.drop_column('dispatched_at')
        batch_op.drop_column('pool_id')
        batch_op.drop_column('host_id')

    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_column('connection')

    with op.batch_alter_table('job_logs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_logs_job_id'))

    op.drop_table('job_logs')
