"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 14:36:52.455290
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import orchestrator.domain.models.base


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('role', sa.Enum('admin', 'user', name='role', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('name', name=op.f('uq_accounts_name'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.String(length=36), nullable=True),
    sa.Column('actor_name', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.String(length=36), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_object_id'), ['object_id'], unique=False)

    op.create_table('zones',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=1024), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_zones')),
    sa.UniqueConstraint('name', name=op.f('uq_zones_name'))
    )
    op.create_table('api_keys',
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('api_key', sa.String(length=128), nullable=False),
    sa.Column('secret_hash', sa.String(length=128), nullable=False),
    sa.Column('secret_sealed', sa.Text(), nullable=True),
    sa.Column('revoked_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_api_keys_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('api_key', name=op.f('uq_api_keys_api_key'))
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_account_id'), ['account_id'], unique=False)

    op.create_table('backup_providers',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('driver', sa.String(length=64), nullable=False),
    sa.Column('zone_id', sa.String(length=36), nullable=True),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], name=op.f('fk_backup_providers_zone_id_zones')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backup_providers')),
    sa.UniqueConstraint('name', name=op.f('uq_backup_providers_name'))
    )
    with op.batch_alter_table('backup_providers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backup_providers_zone_id'), ['zone_id'], unique=False)

    op.create_table('hosts',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('zone_id', sa.String(length=36), nullable=False),
    sa.Column('hypervisor', sa.Enum('kvm', 'vmware', name='hypervisor', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('address', sa.String(length=255), nullable=False),
    sa.Column('max_concurrent_backups', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], name=op.f('fk_hosts_zone_id_zones')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hosts')),
    sa.UniqueConstraint('zone_id', 'name', name=op.f('uq_hosts_zone_id'))
    )
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hosts_zone_id'), ['zone_id'], unique=False)

    op.create_table('jobs',
    sa.Column('kind', sa.Enum('backup', 'restore_vm', 'restore_volume', 'delete_backup', 'ingest', 'verify', 'prune', name='jobkind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('state', sa.Enum('planned', 'queued', 'running', 'succeeded', 'failed', 'cancelled', name='jobstate', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('requested_by', sa.String(length=36), nullable=True),
    sa.Column('subject_type', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=36), nullable=False),
    sa.Column('queue', sa.String(length=128), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('not_before', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deadline', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('lease_expires_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('leased_by', sa.String(length=255), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('progress_done', sa.BigInteger(), nullable=False),
    sa.Column('progress_total', sa.BigInteger(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_jobs_account_id_accounts')),
    sa.ForeignKeyConstraint(['requested_by'], ['accounts.id'], name=op.f('fk_jobs_requested_by_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_jobs_idempotency_key'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_account_created', ['account_id', 'created_at'], unique=False)
        batch_op.create_index('ix_jobs_state_not_before', ['state', 'not_before'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_subject_id'), ['subject_id'], unique=False)

    op.create_table('storage_pools',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('zone_id', sa.String(length=36), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('max_concurrent_backups', sa.Integer(), nullable=False),
    sa.Column('bandwidth_bytes_per_s', sa.BigInteger(), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], name=op.f('fk_storage_pools_zone_id_zones')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_storage_pools')),
    sa.UniqueConstraint('zone_id', 'name', name=op.f('uq_storage_pools_zone_id'))
    )
    with op.batch_alter_table('storage_pools', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_storage_pools_zone_id'), ['zone_id'], unique=False)

    op.create_table('backup_offerings',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=1024), nullable=False),
    sa.Column('zone_id', sa.String(length=36), nullable=False),
    sa.Column('provider_id', sa.String(length=36), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('rpo_seconds', sa.BigInteger(), nullable=False),
    sa.Column('retention_count', sa.Integer(), nullable=True),
    sa.Column('keep_daily', sa.Integer(), nullable=True),
    sa.Column('keep_weekly', sa.Integer(), nullable=True),
    sa.Column('keep_monthly', sa.Integer(), nullable=True),
    sa.Column('windows', sa.JSON(), nullable=False),
    sa.Column('blackouts', sa.JSON(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('allow_user_driven_backups', sa.Boolean(), nullable=False),
    sa.Column('removed_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['backup_providers.id'], name=op.f('fk_backup_offerings_provider_id_backup_providers')),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], name=op.f('fk_backup_offerings_zone_id_zones')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backup_offerings'))
    )
    with op.batch_alter_table('backup_offerings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backup_offerings_provider_id'), ['provider_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_backup_offerings_zone_id'), ['zone_id'], unique=False)
        batch_op.create_index('uq_backup_offerings_zone_name_live', ['zone_id', 'name'], unique=True, sqlite_where=sa.text('removed_at IS NULL'), postgresql_where=sa.text('removed_at IS NULL'))

    op.create_table('virtual_machines',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('zone_id', sa.String(length=36), nullable=False),
    sa.Column('host_id', sa.String(length=36), nullable=True),
    sa.Column('state', sa.Enum('Running', 'Stopped', 'Destroyed', name='vmstate', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('backup_offering_id', sa.String(length=36), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('removed_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_virtual_machines_account_id_accounts')),
    sa.ForeignKeyConstraint(['backup_offering_id'], ['backup_offerings.id'], name=op.f('fk_virtual_machines_backup_offering_id_backup_offerings')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_virtual_machines_host_id_hosts')),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], name=op.f('fk_virtual_machines_zone_id_zones')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_virtual_machines'))
    )
    with op.batch_alter_table('virtual_machines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_virtual_machines_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_virtual_machines_backup_offering_id'), ['backup_offering_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_virtual_machines_host_id'), ['host_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_virtual_machines_zone_id'), ['zone_id'], unique=False)

    op.create_table('backup_schedules',
    sa.Column('vm_id', sa.String(length=36), nullable=False),
    sa.Column('interval_type', sa.Enum('HOURLY', 'DAILY', 'WEEKLY', 'MONTHLY', name='intervaltype', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('schedule', sa.String(length=32), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('max_backups', sa.Integer(), nullable=False),
    sa.Column('next_run_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['vm_id'], ['virtual_machines.id'], name=op.f('fk_backup_schedules_vm_id_virtual_machines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backup_schedules')),
    sa.UniqueConstraint('vm_id', 'interval_type', name=op.f('uq_backup_schedules_vm_id'))
    )
    with op.batch_alter_table('backup_schedules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backup_schedules_next_run_at'), ['next_run_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_backup_schedules_vm_id'), ['vm_id'], unique=False)

    op.create_table('volumes',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('vm_id', sa.String(length=36), nullable=True),
    sa.Column('pool_id', sa.String(length=36), nullable=False),
    sa.Column('type', sa.Enum('ROOT', 'DATADISK', name='volumetype', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('removed_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pool_id'], ['storage_pools.id'], name=op.f('fk_volumes_pool_id_storage_pools')),
    sa.ForeignKeyConstraint(['vm_id'], ['virtual_machines.id'], name=op.f('fk_volumes_vm_id_virtual_machines')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volumes'))
    )
    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volumes_pool_id'), ['pool_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volumes_vm_id'), ['vm_id'], unique=False)

    op.create_table('backups',
    sa.Column('vm_id', sa.String(length=36), nullable=False),
    sa.Column('vm_name', sa.String(length=255), nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('zone_id', sa.String(length=36), nullable=False),
    sa.Column('vm_metadata', sa.JSON(), nullable=False),
    sa.Column('offering_id', sa.String(length=36), nullable=False),
    sa.Column('provider_id', sa.String(length=36), nullable=False),
    sa.Column('schedule_id', sa.String(length=36), nullable=True),
    sa.Column('origin', sa.Enum('adhoc', 'schedule', 'sla', name='backuporigin', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=True),
    sa.Column('backup_type', sa.Enum('FULL', 'INCREMENTAL', name='backuptype', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('parent_id', sa.String(length=36), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('protected_size', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Enum('Allocated', 'Queued', 'BackingUp', 'BackedUp', 'Error', 'Failed', 'Restoring', 'Removed', 'Expunged', name='backupstatus', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('created_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', orchestrator.domain.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('volumes', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_backups_account_id_accounts')),
    sa.ForeignKeyConstraint(['offering_id'], ['backup_offerings.id'], name=op.f('fk_backups_offering_id_backup_offerings')),
    sa.ForeignKeyConstraint(['parent_id'], ['backups.id'], name=op.f('fk_backups_parent_id_backups')),
    sa.ForeignKeyConstraint(['provider_id'], ['backup_providers.id'], name=op.f('fk_backups_provider_id_backup_providers')),
    sa.ForeignKeyConstraint(['schedule_id'], ['backup_schedules.id'], name=op.f('fk_backups_schedule_id_backup_schedules'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], name=op.f('fk_backups_zone_id_zones')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backups'))
    )
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.create_index('ix_backups_account_date', ['account_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_backups_offering_id'), ['offering_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_backups_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_backups_provider_id'), ['provider_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_backups_schedule_id'), ['schedule_id'], unique=False)
        batch_op.create_index('ix_backups_vm_date', ['vm_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_backups_zone_id'), ['zone_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_backups_zone_id'))
        batch_op.drop_index('ix_backups_vm_date')
        batch_op.drop_index(batch_op.f('ix_backups_schedule_id'))
        batch_op.drop_index(batch_op.f('ix_backups_provider_id'))
        batch_op.drop_index(batch_op.f('ix_backups_parent_id'))
        batch_op.drop_index(batch_op.f('ix_backups_offering_id'))
        batch_op.drop_index('ix_backups_account_date')

    op.drop_table('backups')
    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volumes_vm_id'))
        batch_op.drop_index(batch_op.f('ix_volumes_pool_id'))

    op.drop_table('volumes')
    with op.batch_alter_table('backup_schedules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_backup_schedules_vm_id'))
        batch_op.drop_index(batch_op.f('ix_backup_schedules_next_run_at'))

    op.drop_table('backup_schedules')
    with op.batch_alter_table('virtual_machines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_virtual_machines_zone_id'))
        batch_op.drop_index(batch_op.f('ix_virtual_machines_host_id'))
        batch_op.drop_index(batch_op.f('ix_virtual_machines_backup_offering_id'))
        batch_op.drop_index(batch_op.f('ix_virtual_machines_account_id'))

    op.drop_table('virtual_machines')
    with op.batch_alter_table('backup_offerings', schema=None) as batch_op:
        batch_op.drop_index('uq_backup_offerings_zone_name_live', sqlite_where=sa.text('removed_at IS NULL'), postgresql_where=sa.text('removed_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_backup_offerings_zone_id'))
        batch_op.drop_index(batch_op.f('ix_backup_offerings_provider_id'))

    op.drop_table('backup_offerings')
    with op.batch_alter_table('storage_pools', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_storage_pools_zone_id'))

    op.drop_table('storage_pools')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_subject_id'))
        batch_op.drop_index('ix_jobs_state_not_before')
        batch_op.drop_index('ix_jobs_account_created')

    op.drop_table('jobs')
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hosts_zone_id'))

    op.drop_table('hosts')
    with op.batch_alter_table('backup_providers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_backup_providers_zone_id'))

    op.drop_table('backup_providers')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_account_id'))

    op.drop_table('api_keys')
    op.drop_table('zones')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_object_id'))
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))

    op.drop_table('audit_events')
    op.drop_table('accounts')
