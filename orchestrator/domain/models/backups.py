"""Restore points. Each keeps a copy of its VM's metadata: backups outlive their VM."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from orchestrator.domain.models.base import Base, IdMixin, enum_column, utcnow

if TYPE_CHECKING:
    from orchestrator.domain.models.offerings import BackupOffering, BackupProvider


class BackupType(StrEnum):
    FULL = "FULL"
    INCREMENTAL = "INCREMENTAL"


class BackupStatus(StrEnum):
    ALLOCATED = "Allocated"
    QUEUED = "Queued"
    BACKING_UP = "BackingUp"
    BACKED_UP = "BackedUp"
    # Some volumes were kept, the others (``Backup.failed_volumes``) failed: never a good
    # point for the RPO, never restored as a whole VM; its kept volumes restore one by one.
    PARTIALLY_FAILED = "PartiallyFailed"
    ERROR = "Error"
    FAILED = "Failed"
    RESTORING = "Restoring"
    REMOVED = "Removed"
    EXPUNGED = "Expunged"


# Restore points that hold a restorable VM (Restoring is a BackedUp point being read): the
# good points for the RPO, the planner, metrics and incremental parents. Not PartiallyFailed.
USABLE_STATUSES = (BackupStatus.BACKED_UP, BackupStatus.RESTORING)
# Restore points that still count: being made or made (a partial one holds data too).
LIVE_STATUSES = (
    BackupStatus.ALLOCATED,
    BackupStatus.QUEUED,
    BackupStatus.BACKING_UP,
    BackupStatus.BACKED_UP,
    BackupStatus.PARTIALLY_FAILED,
    BackupStatus.RESTORING,
)


class BackupOrigin(StrEnum):
    ADHOC = "adhoc"
    SCHEDULE = "schedule"
    SLA = "sla"


class Backup(IdMixin, Base):
    __tablename__ = "backups"
    # Lists read newest first by VM, by account or whole, and count what matches without
    # removed points: each index runs in that order and (on PostgreSQL) covers the count.
    __table_args__ = (
        Index("ix_backups_vm_page", "vm_id", "created_at", "id", postgresql_include=["status"]),
        Index("ix_backups_account_page", "account_id", "created_at", "id", postgresql_include=["status"]),
        Index("ix_backups_page", "created_at", "id", postgresql_include=["status"]),
    )

    # Plain ids, no foreign key: the VM may be expunged and the restore point must stay.
    vm_id: Mapped[str] = mapped_column(String(36))
    vm_name: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    zone_id: Mapped[str] = mapped_column(ForeignKey("zones.id"), index=True)
    vm_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    offering_id: Mapped[str] = mapped_column(ForeignKey("backup_offerings.id"), index=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("backup_providers.id"), index=True)
    schedule_id: Mapped[str | None] = mapped_column(
        ForeignKey("backup_schedules.id", ondelete="SET NULL"), index=True
    )
    origin: Mapped[BackupOrigin] = mapped_column(enum_column(BackupOrigin), default=BackupOrigin.ADHOC)
    external_id: Mapped[str | None] = mapped_column(String(255))
    backup_type: Mapped[BackupType] = mapped_column(enum_column(BackupType), default=BackupType.FULL)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("backups.id"), index=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    protected_size: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[BackupStatus] = mapped_column(enum_column(BackupStatus), default=BackupStatus.ALLOCATED)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    volumes: Mapped[list[Any]] = mapped_column(default=list)
    # Of a PartiallyFailed point: {"id", "name", "device_id", "error"} of each volume it lacks.
    failed_volumes: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    error: Mapped[str | None] = mapped_column(Text)

    offering: Mapped[BackupOffering] = relationship()
    provider: Mapped[BackupProvider] = relationship()
    parent: Mapped[Backup | None] = relationship(remote_side="Backup.id")
