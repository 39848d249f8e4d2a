"""Providers, the SLA offerings imported from them, and user backup schedules."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from orchestrator.domain.models.base import Base, CreatedMixin, IdMixin, enum_column
from orchestrator.domain.sla import ServiceLevel

if TYPE_CHECKING:
    from orchestrator.domain.models.inventory import VirtualMachine, Zone


class BackupProvider(IdMixin, CreatedMixin, Base):
    __tablename__ = "backup_providers"

    name: Mapped[str] = mapped_column(String(255), unique=True)
    driver: Mapped[str] = mapped_column(String(64))
    zone_id: Mapped[str | None] = mapped_column(ForeignKey("zones.id"), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    # The last reconcile with the back end: copies it holds that no restore point records.
    untracked_copies: Mapped[int | None]
    reconciled_at: Mapped[datetime | None]

    zone: Mapped[Zone | None] = relationship()


class BackupOffering(IdMixin, CreatedMixin, Base):
    __tablename__ = "backup_offerings"
    # Names are unique among live offerings; a deleted one keeps its row for its restore points.
    __table_args__ = (
        Index(
            "uq_backup_offerings_zone_name_live",
            "zone_id",
            "name",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
    )

    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(1024), default="")
    zone_id: Mapped[str] = mapped_column(ForeignKey("zones.id"), index=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("backup_providers.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(255))
    rpo_seconds: Mapped[int] = mapped_column(BigInteger)
    retention_count: Mapped[int | None] = mapped_column(Integer)
    keep_daily: Mapped[int | None] = mapped_column(Integer)
    keep_weekly: Mapped[int | None] = mapped_column(Integer)
    keep_monthly: Mapped[int | None] = mapped_column(Integer)
    windows: Mapped[list[Any]] = mapped_column(default=list)
    blackouts: Mapped[list[Any]] = mapped_column(default=list)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    allow_user_driven_backups: Mapped[bool] = mapped_column(default=True)
    removed_at: Mapped[datetime | None]

    zone: Mapped[Zone] = relationship()
    provider: Mapped[BackupProvider] = relationship()

    def service_level(self) -> ServiceLevel:
        """The SLA the planner works to: RPO, windows and blackouts in the offering's zone."""
        return ServiceLevel.parse(
            rpo=self.rpo_seconds, timezone=self.timezone, windows=self.windows, blackouts=self.blackouts
        )


class IntervalType(StrEnum):
    HOURLY = "HOURLY"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"


class BackupSchedule(IdMixin, CreatedMixin, Base):
    """One per VM and interval type, as in CloudStack; each prunes only its own restore points."""

    __tablename__ = "backup_schedules"
    __table_args__ = (UniqueConstraint("vm_id", "interval_type"),)

    vm_id: Mapped[str] = mapped_column(ForeignKey("virtual_machines.id", ondelete="CASCADE"), index=True)
    interval_type: Mapped[IntervalType] = mapped_column(enum_column(IntervalType))
    schedule: Mapped[str] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    max_backups: Mapped[int] = mapped_column(Integer, default=0)
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)

    vm: Mapped[VirtualMachine] = relationship()
