"""Retention in force: which restore points expire, and the delete jobs that remove them.

A schedule's ``max_backups`` governs only the points that schedule made; an offering's
retention (``retention_count`` as keep-last, ``keep_daily/weekly/monthly``, counted in the
offering's time zone) governs the VM's other points under that offering. Where the
provider cannot delete a point others depend on, a point stays while anything kept needs
it — whichever rule or origin keeps that dependant.

Only ``BackedUp`` points count for a rule: a ``PartiallyFailed`` one never fills a place
that a good point would. It expires once a newer good point of the same rule exists (that
one holds every volume), unless a volume restore is reading it.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from sqlalchemy import Select, select

from orchestrator.domain.errors import Conflict
from orchestrator.domain.models import (
    Backup,
    BackupOffering,
    BackupSchedule,
    BackupStatus,
    Job,
    VirtualMachine,
)
from orchestrator.domain.retention import PointInfo, RetentionPolicy, expired
from orchestrator.engine.core import Scope
from orchestrator.usecases import backups, lookup
from providers.base import Capability


@dataclass(frozen=True)
class Decision:
    vm_id: str
    rule: str  # "schedule <id>" or "offering <name>"
    expire: list[str]
    job_id: str | None = None


def offering_policy(offering: BackupOffering) -> RetentionPolicy:
    return RetentionPolicy(
        keep_last=offering.retention_count,
        keep_daily=offering.keep_daily,
        keep_weekly=offering.keep_weekly,
        keep_monthly=offering.keep_monthly,
    )


def _expire(scope: Scope, points: list[Backup], policy: RetentionPolicy, zone: str) -> list[Backup]:
    """Points of ``points`` (newest first) the policy lets go and the chains allow to go."""
    if not points or policy.is_empty:
        return []
    driver = scope.driver(points[0].provider)
    chains = not driver.supports(Capability.DELETE_SINGLE_RESTORE_POINT)
    ids = expired(
        [PointInfo(p.id, p.parent_id, p.created_at) for p in points], policy, chains_matter=chains, zone=zone
    )
    doomed = {p.id: p for p in points if p.id in set(ids)}
    if chains:
        # A point another rule or origin keeps may hang off one of ours: keep its ancestors too.
        changed = True
        while changed:
            changed = False
            for point_id, point in list(doomed.items()):
                if any(d.id not in doomed for d in backups.descendants(scope.session, point)):
                    del doomed[point_id]
                    changed = True
    return [p for p in points if p.id in doomed]


def _decide(scope: Scope, vm_id: str, rule: str, doomed: list[Backup], dry_run: bool) -> Decision:
    job: Job | None = None
    if doomed and not dry_run:
        # A Conflict: an earlier decision's delete is still at work on these points.
        with suppress(Conflict):
            job = backups.queue_delete(scope, doomed[0], doomed)
    return Decision(vm_id, rule, [p.id for p in doomed], job.id if job else None)


def _usable(stmt: Select[Backup]) -> Select[Backup]:
    return stmt.where(Backup.status == BackupStatus.BACKED_UP).order_by(Backup.created_at.desc())


def _superseded(scope: Scope, points: list[Backup], stmt: Select[Backup]) -> list[Backup]:
    """The rule's PartiallyFailed points older than its newest good one (``points[0]``)."""
    if not points:
        return []
    partial = stmt.where(
        Backup.status == BackupStatus.PARTIALLY_FAILED, Backup.created_at < points[0].created_at
    )
    return [p for p in scope.session.scalars(partial) if not backups.being_restored(scope.session, p.id)]


def prune_schedule(scope: Scope, schedule: BackupSchedule, *, dry_run: bool = False) -> Decision:
    policy = RetentionPolicy(keep_last=schedule.max_backups or None)
    governed = select(Backup).where(Backup.schedule_id == schedule.id)
    points = _points(scope, policy, governed)
    doomed = _expire(scope, points, policy, schedule.timezone) + _superseded(scope, points, governed)
    return _decide(scope, schedule.vm_id, f"schedule {schedule.id}", doomed, dry_run)


def prune_offering(scope: Scope, vm_id: str, offering: BackupOffering, *, dry_run: bool = False) -> Decision:
    policy = offering_policy(offering)
    governed = select(Backup).where(
        Backup.vm_id == vm_id, Backup.offering_id == offering.id, Backup.schedule_id.is_(None)
    )
    points = _points(scope, policy, governed)
    doomed = _expire(scope, points, policy, offering.timezone) + _superseded(scope, points, governed)
    return _decide(scope, vm_id, f"offering {offering.name}", doomed, dry_run)


def _points(scope: Scope, policy: RetentionPolicy, stmt: Select[Backup]) -> list[Backup]:
    """The usable points a rule governs, newest first; none read where the rule keeps all
    (the common case after every backup)."""
    if policy.is_empty:
        return []
    return list(scope.session.scalars(_usable(stmt)))


def after_backup(scope: Scope, point_id: str) -> Decision:
    point = lookup.backup(scope, point_id)
    if point.schedule_id is not None:
        schedule = scope.session.get(BackupSchedule, point.schedule_id)
        if schedule is not None:
            return prune_schedule(scope, schedule)
    return prune_offering(scope, point.vm_id, point.offering)


def prune(scope: Scope, *, vm_id: str | None = None, dry_run: bool = False) -> list[Decision]:
    """Apply every retention rule to every VM the actor can see (or one VM)."""
    vms = select(VirtualMachine.id).where(VirtualMachine.removed_at.is_(None))
    if vm_id:
        vms = vms.where(VirtualMachine.id == lookup.vm(scope, vm_id).id)
    elif not scope.actor.is_admin:
        vms = vms.where(VirtualMachine.account_id == scope.actor.account_id)
    decisions = []
    for (vid,) in scope.session.execute(vms):
        offering_ids = scope.session.scalars(
            select(Backup.offering_id)
            .where(Backup.vm_id == vid, Backup.status == BackupStatus.BACKED_UP)
            .distinct()
        ).all()
        for offering_id in offering_ids:
            offering = scope.session.get(BackupOffering, offering_id)
            if offering is not None:
                decisions.append(prune_offering(scope, vid, offering, dry_run=dry_run))
        for schedule in scope.session.scalars(select(BackupSchedule).where(BackupSchedule.vm_id == vid)):
            decisions.append(prune_schedule(scope, schedule, dry_run=dry_run))
    return [d for d in decisions if d.expire]
