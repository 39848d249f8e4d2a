"""A job's log: what happened to it, in words its owner can read."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.domain.models import JobLog

LEVELS = ("info", "warning", "error")


def add(session: Session, job_id: str, message: str, level: str = "info") -> None:
    session.add(JobLog(job_id=job_id, level=level, message=message))


def entries(session: Session, job_id: str) -> list[JobLog]:
    return list(session.scalars(select(JobLog).where(JobLog.job_id == job_id).order_by(JobLog.id)))
