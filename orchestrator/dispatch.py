"""One dispatcher round: what the embedded server does every few seconds and
``backupctl tick`` does once."""

from __future__ import annotations

from orchestrator import ingest, planning, schedules, telemetry
from orchestrator.core import Core
from orchestrator.delivery import deliver_due


def tick(core: Core) -> dict[str, int]:
    """Fire due user schedules, release due SLA backups, re-plan the rest, and deliver
    what is due (new, retried, or lost on the way)."""
    fired = schedules.fire_due(core)
    # Release what the standing plan says is due before re-planning the rest.
    released = planning.release_due(core)
    plan = planning.replan(core)
    rediscovered = ingest.rediscover_due(core)
    delivery = deliver_due(core)
    telemetry.JOBS_RELEASED.inc(len(fired) + len(released))
    return {
        "schedules_fired": len(fired),
        "sla_jobs_released": len(released),
        "sla_jobs_planned": len(plan.jobs),
        "sla_jobs_late": len(plan.late),
        "hosts_rediscovered": len(rediscovered),
        "jobs_delivered": delivery.sent,
        "jobs_lease_expired": delivery.lease_expired,
    }
