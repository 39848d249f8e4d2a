"""The job kinds this version runs, each with the use case code that runs it: the table
``orchestrator.bootstrap`` gives the engine."""

from __future__ import annotations

from orchestrator.domain.models import JobKind
from orchestrator.engine.core import Handlers
from orchestrator.usecases import backup_jobs, ingest, restores, verification


def job_handlers() -> Handlers:
    return Handlers(
        {
            JobKind.INGEST: ingest.INGEST_HANDLER,
            JobKind.BACKUP: backup_jobs.BACKUP_HANDLER,
            JobKind.DELETE_BACKUP: backup_jobs.DELETE_HANDLER,
            JobKind.RESTORE_VM: restores.RESTORE_VM_HANDLER,
            JobKind.RESTORE_VOLUME: restores.RESTORE_VOLUME_HANDLER,
            JobKind.VERIFY: verification.VERIFY_HANDLER,
        }
    )
