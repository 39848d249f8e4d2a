"""Every piece of work is a job row first, a message second."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.domain.models.base import Base, IdMixin, enum_column, utcnow


class JobKind(StrEnum):
    BACKUP = "backup"
    RESTORE_VM = "restore_vm"
    RESTORE_VOLUME = "restore_volume"
    DELETE_BACKUP = "delete_backup"
    INGEST = "ingest"
    VERIFY = "verify"
    PRUNE = "prune"


class JobState(StrEnum):
    PLANNED = "planned"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_JOB_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
ACTIVE_JOB_STATES = (JobState.QUEUED, JobState.RUNNING)
# The same condition as SQL, for the partial index: the states as stored.
_ACTIVE = text("state IN ('queued', 'running')")


class Job(IdMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_not_before", "state", "not_before"),
        Index("ix_jobs_account_created", "account_id", "created_at"),
        # Concurrency limits count the running jobs per host and per pool at every claim.
        Index("ix_jobs_state_host", "state", "host_id"),
        Index("ix_jobs_state_pool", "state", "pool_id"),
        # At most one queued or running job per exclusive key: requests racing to back up
        # a VM, delete a restore point or restore a VM cannot all pass the check.
        Index(
            "uq_jobs_active_exclusive_key",
            "exclusive_key",
            unique=True,
            postgresql_where=_ACTIVE,
            sqlite_where=_ACTIVE,
        ),
    )

    kind: Mapped[JobKind] = mapped_column(enum_column(JobKind))
    state: Mapped[JobState] = mapped_column(enum_column(JobState), default=JobState.QUEUED)
    # Owner of the work (tenant scoping) and who asked for it (may be an admin).
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    requested_by: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    queue: Mapped[str] = mapped_column(String(128), default="default")
    # The host and storage pool whose concurrency limits this job counts against.
    host_id: Mapped[str | None] = mapped_column(String(36))
    pool_id: Mapped[str | None] = mapped_column(String(36))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    deadline: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_expires_at: Mapped[datetime | None]
    leased_by: Mapped[str | None] = mapped_column(String(255))
    # Written by each claim: a worker trying its claim again after a lost answer knows its own.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    # When a message for this job was last handed to the runner (the reconciler re-sends lost ones).
    dispatched_at: Mapped[datetime | None]
    # A running job is cancelled at its next progress report or heartbeat.
    cancel_requested_at: Mapped[datetime | None]
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    # What no two active jobs may work on at once (``restore_vm:<vm id>``...), or None.
    exclusive_key: Mapped[str | None] = mapped_column(String(64))
    progress_done: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_total: Mapped[int] = mapped_column(BigInteger, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class JobLog(Base):
    """What happened to a job, in words a user can read (``backupctl job logs``)."""

    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
