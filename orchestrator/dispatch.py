"""One dispatcher round: what the embedded server does every few seconds and
``backupctl tick`` does once."""

from __future__ import annotations

from orchestrator import planning, schedules
from orchestrator.core import Core
from orchestrator.runner import run_due


def tick(core: Core) -> dict[str, int]:
    """Fire due user schedules, release due SLA backups, re-plan the rest, run due retries."""
    fired = schedules.fire_due(core)
    # Release what the standing plan says is due before re-planning the rest.
    released = planning.release_due(core)
    plan = planning.replan(core)
    ran = run_due(core)
    return {
        "schedules_fired": len(fired),
        "sla_jobs_released": len(released),
        "sla_jobs_planned": len(plan.jobs),
        "sla_jobs_late": len(plan.late),
        "due_jobs_run": ran,
    }
