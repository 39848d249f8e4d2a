"""Prometheus metrics.

Two kinds: events counted where they happen (job attempts, durations, bytes moved; the
worker processes write them to ``PROMETHEUS_MULTIPROC_DIR`` when it is set, so a prefork
worker's children add up), and state read from the database at scrape time (queue depth,
restore points, RPO compliance). State is exported once, by the API, never by every
worker: N workers would report the same rows N times.

Names follow Prometheus's conventions: base units in the name (``_seconds``, ``_bytes``),
``_total`` on counters. Series whose label values are known ahead are exported at 0 before
anything happened (every live offering's RPO states, restore point statuses and late jobs;
every reason to re-deliver), so that a dashboard shows a zero rather than nothing and
``rate()`` sees the first increment. No label names a tenant: offerings, hosts, pools,
queues and providers are the operator's; VMs and accounts never appear.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.domain.models import (
    USABLE_STATUSES,
    Backup,
    BackupOffering,
    BackupProvider,
    BackupStatus,
    Job,
    JobKind,
    JobState,
    VirtualMachine,
    Volume,
    VolumeType,
    utcnow,
)
from orchestrator.infra.db import Database

PREFIX = "backup_orchestrator"
ACTIVE_STATES = (JobState.PLANNED, JobState.QUEUED, JobState.RUNNING)

# Backups take seconds to hours: buckets from 1 s to 12 h.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 43200)

JOB_ATTEMPTS = Counter(
    f"{PREFIX}_job_attempts",
    "Job attempts by how they ended (succeeded, failed, retry, deferred, cancelled, skipped).",
    ["kind", "queue", "outcome"],
)
JOB_DURATION = Histogram(
    f"{PREFIX}_job_duration_seconds",
    "Wall time of one job attempt.",
    ["kind", "queue", "outcome"],
    buckets=DURATION_BUCKETS,
)
JOB_LATENESS = Histogram(
    f"{PREFIX}_job_lateness_seconds",
    "How far past its deadline a job finished (0 when on time).",
    ["kind"],
    buckets=(0, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600),
)
MOVED_BYTES = Counter(
    f"{PREFIX}_moved_bytes", "Bytes read or written by backups and restores.", ["pool", "kind"]
)
DISPATCHER_ROUNDS = Counter(f"{PREFIX}_dispatcher_rounds", "Dispatcher rounds run.")
JOBS_RELEASED = Counter(f"{PREFIX}_jobs_released", "Planned or scheduled jobs released to the queues.")
REDELIVERY_REASONS = ("lease_expired", "message_lost", "stale")
JOBS_REDELIVERED = Counter(
    f"{PREFIX}_jobs_redelivered",
    "Jobs handed to the queues again: lease_expired, message_lost or stale.",
    ["reason"],
)
for _reason in REDELIVERY_REASONS:
    JOBS_REDELIVERED.labels(_reason)
DISPATCHER_LEADER = Gauge(f"{PREFIX}_dispatcher_leader", "1 while this dispatcher holds the leader lock.")
EVENT_METRICS = (
    JOB_ATTEMPTS,
    JOB_DURATION,
    JOB_LATENESS,
    MOVED_BYTES,
    DISPATCHER_ROUNDS,
    JOBS_RELEASED,
    JOBS_REDELIVERED,
    DISPATCHER_LEADER,
)
STATE_METRICS = (
    "jobs",
    "queue_depth",
    "queue_oldest_job_age_seconds",
    "restore_points",
    "oldest_last_success_timestamp_seconds",
    "rpo_vms",
    "jobs_past_deadline",
    "untracked_copies",
)

# What rpo_vms counts VMs by: newest usable restore point within or beyond the RPO, or none.
RPO_STATES = ("within", "beyond", "never")


class StateCollector(Collector):
    """Gauges computed from the database at each scrape."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        with self.db.session() as session:
            offerings = list(
                session.scalars(select(BackupOffering.name).where(BackupOffering.removed_at.is_(None)))
            )
            jobs = GaugeMetricFamily(f"{PREFIX}_jobs", "Active jobs.", labels=["kind", "state", "queue"])
            for kind, state, queue, n in session.execute(
                select(Job.kind, Job.state, Job.queue, func.count())
                .where(Job.state.in_(ACTIVE_STATES))
                .group_by(Job.kind, Job.state, Job.queue)
            ):
                jobs.add_metric([kind.value, state.value, queue], n)
            yield jobs

            depth = GaugeMetricFamily(f"{PREFIX}_queue_depth", "Queued jobs that are due.", labels=["queue"])
            oldest = GaugeMetricFamily(
                f"{PREFIX}_queue_oldest_job_age_seconds",
                "How long the oldest due job of a queue has waited.",
                labels=["queue"],
            )
            for queue, n, first in session.execute(
                select(Job.queue, func.count(), func.min(Job.not_before))
                .where(Job.state == JobState.QUEUED, Job.not_before <= now)
                .group_by(Job.queue)
            ):
                depth.add_metric([queue], n)
                oldest.add_metric([queue], _age(now, first))
            yield depth
            yield oldest

            points = GaugeMetricFamily(
                f"{PREFIX}_restore_points", "Restore points.", labels=["offering", "status"]
            )
            counted = {(name, status.value): 0 for name in offerings for status in BackupStatus}
            for name, status, n in session.execute(
                select(BackupOffering.name, Backup.status, func.count())
                .join(BackupOffering, Backup.offering_id == BackupOffering.id)
                .group_by(BackupOffering.name, Backup.status)
            ):
                counted[name, status.value] = n
            for (name, status_value), n in sorted(counted.items()):
                points.add_metric([name, status_value], n)
            yield points

            yield from self._rpo(session, now, offerings)

            late = GaugeMetricFamily(
                f"{PREFIX}_jobs_past_deadline",
                "Unfinished backups whose deadline (last good + RPO) has passed.",
                labels=["offering"],
            )
            # A planned backup's subject is its VM; once released, its restore point.
            overdue = {name: 0 for name in offerings}
            for name, n in session.execute(
                select(BackupOffering.name, func.count())
                .select_from(Job)
                .outerjoin(Backup, (Job.subject_type == "backup") & (Backup.id == Job.subject_id))
                .outerjoin(VirtualMachine, (Job.subject_type == "vm") & (VirtualMachine.id == Job.subject_id))
                .join(
                    BackupOffering,
                    BackupOffering.id == func.coalesce(Backup.offering_id, VirtualMachine.backup_offering_id),
                )
                .where(Job.kind == JobKind.BACKUP, Job.state.in_(ACTIVE_STATES), Job.deadline < now)
                .group_by(BackupOffering.name)
            ):
                overdue[name] = n
            for name, n in sorted(overdue.items()):
                late.add_metric([name], n)
            yield late

            untracked = GaugeMetricFamily(
                f"{PREFIX}_untracked_copies",
                "Copies a provider's back end holds that no restore point records, at its last reconcile.",
                labels=["provider"],
            )
            for name, copies in session.execute(
                select(BackupProvider.name, BackupProvider.untracked_copies).where(
                    BackupProvider.untracked_copies.is_not(None)
                )
            ):
                untracked.add_metric([name], copies or 0)
            yield untracked

    def _rpo(self, session: Session, now: datetime, offerings: list[str]) -> Iterator[Metric]:
        # Per offering, host and pool (of the ROOT volume, as backups are queued), never per
        # VM: a VM id is a tenant's, and a series per VM grows with the fleet.
        oldest = GaugeMetricFamily(
            f"{PREFIX}_oldest_last_success_timestamp_seconds",
            "Of the VMs of an offering on a host and pool, when the one backed up longest ago "
            "took its newest usable restore point.",
            labels=["offering", "host", "pool"],
        )
        rpo = GaugeMetricFamily(
            f"{PREFIX}_rpo_vms",
            "VMs on an offering whose newest restore point is within or beyond its RPO, or never taken.",
            labels=["offering", "state"],
        )
        newest = (
            select(Backup.vm_id, func.max(Backup.created_at).label("at"))
            .where(Backup.status.in_(USABLE_STATUSES))
            .group_by(Backup.vm_id)
            .subquery()
        )
        root = (
            select(Volume.vm_id, func.min(Volume.pool_id).label("pool_id"))
            .where(Volume.type == VolumeType.ROOT, Volume.removed_at.is_(None))
            .group_by(Volume.vm_id)
            .subquery()
        )
        counts = {(offering, state): 0 for offering in offerings for state in RPO_STATES}
        first: dict[tuple[str, str, str], float] = {}
        for offering, host, pool, rpo_seconds, at in session.execute(
            select(
                BackupOffering.name,
                VirtualMachine.host_id,
                root.c.pool_id,
                BackupOffering.rpo_seconds,
                newest.c.at,
            )
            .join(BackupOffering, BackupOffering.id == VirtualMachine.backup_offering_id)
            .outerjoin(newest, newest.c.vm_id == VirtualMachine.id)
            .outerjoin(root, root.c.vm_id == VirtualMachine.id)
            .where(VirtualMachine.removed_at.is_(None))
        ):
            if at is None:
                state = "never"
            else:
                key = (offering, host or "", pool or "")
                first[key] = min(first.get(key, math.inf), _as_utc(at).timestamp())
                state = "within" if _age(now, at) <= rpo_seconds else "beyond"
            counts[offering, state] = counts.get((offering, state), 0) + 1
        for labels, at_s in sorted(first.items()):
            oldest.add_metric(list(labels), at_s)
        for (offering, state), n in sorted(counts.items()):
            rpo.add_metric([offering, state], n)
        yield oldest
        yield rpo


def _as_utc(at: datetime) -> datetime:
    # Aggregates (min/max) bypass the column type, so SQLite hands back naive UTC datetimes.
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _age(now: datetime, at: datetime) -> float:
    return max(0.0, (now - _as_utc(at)).total_seconds())


def registry(db: Database | None, *, events: bool = True) -> CollectorRegistry:
    """What one process exports: its (or its siblings') event metrics, and the database state
    when ``db`` is given."""
    reg = CollectorRegistry()
    if events:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            MultiProcessCollector(reg)
        else:
            for metric in EVENT_METRICS:
                reg.register(metric)
    if db is not None:
        reg.register(StateCollector(db))
    return reg


def exposition(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)


def metric_names() -> set[str]:
    """Every sample name this product can expose (for dashboards and alert rules to check)."""
    names = {f"{PREFIX}_{name}" for name in STATE_METRICS}
    for metric in EVENT_METRICS:
        for family in metric.describe():
            if family.type == "counter":
                names.add(f"{family.name}_total")
            elif family.type == "histogram":
                names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
            else:
                names.add(family.name)
    return names
