"""The capacity report: can the fleet's backups fit, night by night, and if not, what fixes it.

For each night and each pool and host it gives the lower bound LB (see
``planner.capacity``) against the open time, the term that binds and whether it fits; per
offering, the demand of its VMs; and from a plan over the horizon, which VMs will miss their
RPO, by how much, and the smallest change that would fix it: more bandwidth or more slots on
the binding pool or host, a wider window, or a tier with a longer RPO. A fix makes every
term of the bound fit, not only the binding one: a backup longer than its window is fixed by
a wider window or a faster backup, never by concurrency, which is asked for only where it is
still short once the window is long enough. Per offering too, the
room kept before each deadline to retry a failed backup, and how many VMs' retries need
more: capacity makes a fleet ``feasible``; room to retry makes it ``failure_tolerant``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import humanize
from sqlalchemy import select

from orchestrator.domain.models import BackupOffering, Host, StoragePool, VirtualMachine, utcnow
from orchestrator.domain.sla import format_duration
from orchestrator.engine import routing
from orchestrator.engine.core import Scope
from orchestrator.planner import capacity
from orchestrator.usecases import planning


@dataclass(frozen=True)
class Report:
    nights: list[dict[str, Any]]
    offerings: list[dict[str, Any]]
    misses: list[dict[str, Any]]

    @property
    def feasible(self) -> bool:
        return all(n["feasible"] for n in self.nights) and not self.misses

    @property
    def failure_tolerant(self) -> bool:
        """Every VM's failed backup can run again before its deadline."""
        return all(o["vms_without_retry_room"] == 0 for o in self.offerings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feasible": self.feasible,
            "failure_tolerant": self.failure_tolerant,
            "nights": self.nights,
            "offerings": self.offerings,
            "misses": self.misses,
        }


def _mib(bytes_per_s: float) -> str:
    return f"{math.ceil(bytes_per_s / 2**20):,} MiB/s"


def _minutes(seconds: float) -> str:
    """A span in words, rounded up to the minute: a fix must be enough."""
    return humanize.precisedelta(timedelta(minutes=max(1, math.ceil(seconds / 60))), format="%0.0f")


def _fix(kind: str, bound: capacity.Bound, fix: capacity.Remedy, limit: int, bandwidth: float | None) -> str:
    """The changes that make the pool's or host's work fit, all of them needed."""
    changes = []
    if fix.slots is not None:
        changes.append(f"allow {fix.slots} concurrent backups on the {kind} (from {limit})")
    if fix.bandwidth is not None and bandwidth:
        changes.append(f"raise the pool's bandwidth to {_mib(fix.bandwidth)} (from {_mib(bandwidth)})")
    if fix.window_seconds is None:
        return " and ".join(changes) or "no change needed"
    faster = f" or make one backup move at least {_mib(fix.speed)}" if fix.speed else ""
    then = f"; with that window also {' and '.join(changes)}" if changes else ""
    return (
        f"one backup takes {_minutes(fix.window_seconds)}, longer than the "
        f"{_minutes(bound.window_seconds)} it can run in, which no concurrency fixes: "
        f"widen the window to at least {_minutes(fix.window_seconds)}{faster}{then}"
    )


def _bound_row(
    kind: str,
    ident: str,
    name: str,
    bound: capacity.Bound,
    terms: dict[str, capacity.Bound],
    limit: int,
    bw: float | None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "id": ident,
        "name": name,
        "lb_hours": round(bound.seconds / 3600, 2),
        "open_hours": round(bound.window_seconds / 3600, 2),
        "ratio": round(bound.ratio, 3) if math.isfinite(bound.ratio) else None,
        "binding_term": bound.term,
        "fits": bound.fits,
        "fix": None
        if bound.fits
        else _fix(kind, terms[capacity.LONGEST], capacity.remedy(terms, limit, bw), limit, bw),
    }


def _retry_row(offering: BackupOffering, room: capacity.RetryRoom) -> dict[str, Any]:
    extra = room.rpo_for_all
    return {
        "retry_room": format_duration(int(room.room_seconds)),
        "vms_without_retry_room": len(room.short),
        "retry_fix": (
            f"an RPO of {format_duration(math.ceil((offering.rpo_seconds + extra) / 3600) * 3600)} leaves "
            "every VM room to retry a failed backup before its deadline"
            if room.short
            else None
        ),
    }


def report(scope: Scope, *, nights: int = 3, now: datetime | None = None) -> Report:
    scope.actor.require_admin("see the capacity report")
    now = now or utcnow()
    inputs = planning.gather(scope.session, now)
    pools = {p.id: p for p in scope.session.scalars(select(StoragePool))}
    hosts = {h.id: h for h in scope.session.scalars(select(Host))}
    offerings = {o.id: o for o in scope.session.scalars(select(BackupOffering))}
    night_rows = []
    for n in range(nights):
        day: date = (now + timedelta(days=n)).date()
        work = capacity.nightly_work(inputs.vms, inputs.pools, inputs.offerings, day)
        known_hosts = [h for h in inputs.hosts if h.id]
        cap = capacity.lower_bounds(work, known_hosts, inputs.pools)
        terms = capacity.each_term(work, known_hosts, inputs.pools)
        rows = [
            _bound_row(
                "pool",
                pid,
                pools[pid].name,
                b,
                {term: by_term.pools[pid] for term, by_term in terms.items()},
                pools[pid].max_concurrent_backups,
                pools[pid].bandwidth_bytes_per_s,
            )
            for pid, b in cap.pools.items()
        ] + [
            _bound_row(
                "host",
                hid,
                hosts[hid].name,
                b,
                {term: by_term.hosts[hid] for term, by_term in terms.items()},
                hosts[hid].max_concurrent_backups,
                None,
            )
            for hid, b in cap.hosts.items()
        ]
        night_rows.append({"night": day.isoformat(), "feasible": cap.feasible, "bounds": rows})

    demand: dict[str, dict[str, float]] = defaultdict(lambda: {"vms": 0, "bytes": 0.0, "seconds": 0.0})
    pool_models = {p.id: p for p in inputs.pools}
    for vm in inputs.vms:
        d = demand[vm.offering_id]
        d["vms"] += 1
        d["bytes"] += vm.bytes
        d["seconds"] += capacity.duration_seconds(vm, pool_models)
    rooms = {r.offering_id: r for r in capacity.retry_rooms(inputs.vms, inputs.pools, inputs.offerings, now)}
    offering_rows = [
        {
            "id": oid,
            "name": offerings[oid].name,
            "rpo": format_duration(offerings[oid].rpo_seconds),
            "vms": int(d["vms"]),
            "bytes_per_backup": int(d["bytes"]),
            "backup_hours": round(d["seconds"] / 3600, 2),
            **_retry_row(offerings[oid], rooms[oid]),
        }
        for oid, d in sorted(demand.items(), key=lambda kv: offerings[kv[0]].name)
    ]

    plan = planning.plan_inputs(inputs, now)
    longer = sorted(offerings.values(), key=lambda o: o.rpo_seconds)
    names = dict(scope.session.execute(select(VirtualMachine.id, VirtualMachine.name)).all())
    misses = []
    for job in plan.late:
        current = offerings[job.offering_id]
        needed = current.rpo_seconds + job.lateness_seconds
        tier = next(
            (
                o
                for o in longer
                if o.rpo_seconds >= needed and o.zone_id == current.zone_id and o.removed_at is None
            ),
            None,
        )
        misses.append(
            {
                "vm_id": job.vm_id,
                "vm": names.get(job.vm_id),
                "offering": current.name,
                "late_by": format_duration(max(60, int(job.lateness_seconds) // 60 * 60)),
                "deadline": job.deadline.isoformat(),
                "queue": routing.pool_queue(job.pool_id),
                "lower_tier": tier.name if tier else None,
            }
        )
    for item in plan.unplaceable:
        misses.append({"vm_id": item.vm_id, "vm": names.get(item.vm_id), "reason": item.reason})
    return Report(night_rows, offering_rows, misses)
