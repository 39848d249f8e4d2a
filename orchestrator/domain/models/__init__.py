"""The domain model (SQLAlchemy 2.0 typed ORM). The schema comes from Alembic migrations."""

from orchestrator.domain.models.accounts import Account, ApiKey, Role
from orchestrator.domain.models.audit import AuditEvent
from orchestrator.domain.models.backups import (
    LIVE_STATUSES,
    USABLE_STATUSES,
    Backup,
    BackupOrigin,
    BackupStatus,
    BackupType,
)
from orchestrator.domain.models.base import Base, new_id, utcnow
from orchestrator.domain.models.inventory import (
    Host,
    Hypervisor,
    StoragePool,
    VirtualMachine,
    VMState,
    Volume,
    VolumeType,
    Zone,
)
from orchestrator.domain.models.jobs import (
    ACTIVE_JOB_STATES,
    FINAL_JOB_STATES,
    Job,
    JobKind,
    JobLog,
    JobState,
)
from orchestrator.domain.models.offerings import BackupOffering, BackupProvider, BackupSchedule, IntervalType

__all__ = [
    "ACTIVE_JOB_STATES",
    "FINAL_JOB_STATES",
    "LIVE_STATUSES",
    "USABLE_STATUSES",
    "Account",
    "ApiKey",
    "AuditEvent",
    "Backup",
    "BackupOffering",
    "BackupOrigin",
    "BackupProvider",
    "BackupSchedule",
    "BackupStatus",
    "BackupType",
    "Base",
    "Host",
    "Hypervisor",
    "IntervalType",
    "Job",
    "JobKind",
    "JobLog",
    "JobState",
    "Role",
    "StoragePool",
    "VMState",
    "VirtualMachine",
    "Volume",
    "VolumeType",
    "Zone",
    "new_id",
    "utcnow",
]
