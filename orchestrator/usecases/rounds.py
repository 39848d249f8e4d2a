"""One dispatcher round: what the embedded server does every few seconds and
``backupctl tick`` does once."""

from __future__ import annotations

from orchestrator import planner
from orchestrator.engine.core import Core
from orchestrator.engine.delivery import deliver_due
from orchestrator.infra import telemetry
from orchestrator.usecases import ingest, planning, schedules

# How long one round may spend releasing planned jobs (~300 a second on two cores): a night
# of 100 000 due at once is released over several rounds, with deliveries and lease
# reclaims in between, instead of holding the dispatcher for minutes.
RELEASE_SECONDS = 15.0


def tick(core: Core, *, reclaim: bool = True) -> dict[str, int | bool]:
    """Fire due user schedules, release due SLA backups, re-plan the rest, and deliver
    what is due (new, retried, or lost on the way), reclaiming expired leases unless told
    not to yet. While released jobs are still due (``sla_release_pending``), the re-plan
    waits: the next round should come at once."""
    fired = schedules.fire_due(core)
    # Release what the standing plan says is due before re-planning the rest.
    released = planning.release_due(core, max_seconds=RELEASE_SECONDS)
    pending = planning.any_due(core)
    plan = planner.Plan() if pending else planning.replan(core)
    rediscovered = ingest.rediscover_due(core)
    delivery = deliver_due(core, reclaim=reclaim)
    telemetry.JOBS_RELEASED.inc(len(fired) + len(released))
    return {
        "schedules_fired": len(fired),
        "sla_jobs_released": len(released),
        "sla_release_pending": pending,
        "sla_jobs_planned": len(plan.jobs),
        "sla_jobs_late": len(plan.late),
        "hosts_rediscovered": len(rediscovered),
        "jobs_delivered": delivery.sent,
        "jobs_lease_expired": delivery.lease_expired,
    }
