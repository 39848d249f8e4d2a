"""The SLA planner put to work: its inputs read from the inventory and history, its plan
stored as ``planned`` backup jobs, and those released when their time comes.

Re-planning is rolling: every run starts from what actually happened (the newest good
restore point of each VM, what is queued, running or planned now) and adds what became due
within the horizon; jobs planned earlier keep their time, so a VM's slot stays put. A
failed SLA backup leaves its VM's last good point where it was, so the next plan brings it
back inside its window while its deadline allows, without a retry rule of its own.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from orchestrator import planner
from orchestrator.domain.actor import acting_as
from orchestrator.domain.errors import DomainError
from orchestrator.domain.jobparams import PlannedBackup
from orchestrator.domain.models import (
    USABLE_STATUSES,
    Backup,
    BackupOffering,
    BackupOrigin,
    Host,
    Job,
    JobKind,
    JobState,
    StoragePool,
    VirtualMachine,
    utcnow,
)
from orchestrator.engine import routing
from orchestrator.engine.core import Core, Scope
from orchestrator.planner.model import DEFAULT_THROUGHPUT
from orchestrator.usecases import backups, jobs

# Weight of the newest restore point in a VM's size estimate.
EWMA_ALPHA = 0.3
HISTORY = 8
# Hosts the inventory does not name (a VM without a host) share no limit.
UNLIMITED = 1_000_000


@dataclass(frozen=True)
class Inputs:
    vms: list[planner.VM]
    hosts: list[planner.Host]
    pools: list[planner.Pool]
    offerings: list[planner.Offering]
    fixed: list[planner.FixedJob]


def _ewma(values: list[float], empty: float) -> float:
    """Oldest first; ``empty`` when there are none."""
    if not values:
        return empty
    estimate = values[0]
    for value in values[1:]:
        estimate = EWMA_ALPHA * value + (1 - EWMA_ALPHA) * estimate
    return estimate


def _history(session: Session, vm_ids: list[str]) -> dict[str, list[Backup]]:
    """The newest good restore points per VM, oldest first."""
    ranked = (
        select(
            Backup.id,
            func.row_number()
            .over(partition_by=Backup.vm_id, order_by=Backup.created_at.desc())
            .label("rank"),
        )
        .where(Backup.vm_id.in_(vm_ids), Backup.status.in_(USABLE_STATUSES))
        .subquery()
    )
    rows = session.scalars(
        select(Backup)
        .join(ranked, ranked.c.id == Backup.id)
        .where(ranked.c.rank <= HISTORY)
        .order_by(Backup.created_at)
    )
    out: dict[str, list[Backup]] = defaultdict(list)
    for row in rows:
        out[row.vm_id].append(row)
    return out


def _throughputs(session: Session, point_ids: list[str]) -> dict[str, float]:
    """Bytes per second each finished backup job achieved."""
    rates = {}
    for job in session.scalars(
        select(Job).where(
            Job.kind == JobKind.BACKUP, Job.state == JobState.SUCCEEDED, Job.subject_id.in_(point_ids)
        )
    ):
        if job.started_at and job.finished_at and job.result:
            seconds = (job.finished_at - job.started_at).total_seconds()
            if seconds > 0 and job.result.get("size"):
                rates[job.subject_id] = job.result["size"] / seconds
    return rates


def gather(session: Session, now: datetime) -> Inputs:
    offerings = [
        planner.Offering(o.id, o.service_level())
        for o in session.scalars(select(BackupOffering).where(BackupOffering.removed_at.is_(None)))
    ]
    hosts = [planner.Host(h.id, h.max_concurrent_backups) for h in session.scalars(select(Host))]
    hosts.append(planner.Host("", UNLIMITED))
    pools = [
        planner.Pool(p.id, p.max_concurrent_backups, p.bandwidth_bytes_per_s)
        for p in session.scalars(select(StoragePool))
    ]
    vms_rows = list(
        session.scalars(
            select(VirtualMachine).where(
                VirtualMachine.removed_at.is_(None), VirtualMachine.backup_offering_id.is_not(None)
            )
        )
    )
    history = _history(session, [v.id for v in vms_rows])
    rates = _throughputs(session, [p.id for points in history.values() for p in points])
    vms = []
    for vm in vms_rows:
        points = [p for p in history.get(vm.id, []) if p.offering_id == vm.backup_offering_id]
        full: defaultdict[str, int] = defaultdict(int)
        for volume in vm.live_volumes:
            full[volume.pool_id] += volume.size
        total = sum(full.values()) or 1
        # The next backup is a full when nothing is there yet, else about what recent ones moved.
        expected = _ewma([float(p.size) for p in points], float(total))
        throughput = _ewma([rates[p.id] for p in points if p.id in rates], DEFAULT_THROUGHPUT)
        vms.append(
            planner.VM(
                id=vm.id,
                offering_id=vm.backup_offering_id or "",
                host_id=vm.host_id or "",
                pool_bytes={pool: int(expected * size / total) for pool, size in full.items()},
                last_good=points[-1].created_at if points else None,
                throughput=throughput,
            )
        )
    fixed = _fixed(session, now, {v.id: v for v in vms})
    # A VM being backed up (or planned) is planned as if that backup succeeds; if it fails,
    # the next plan sees the older restore point again.
    pending: dict[str, datetime] = {}
    for f in fixed:
        pending[f.vm_id] = max(f.start, pending.get(f.vm_id, f.start))
    vms = [
        replace(v, last_good=max(filter(None, (v.last_good, pending[v.id])))) if v.id in pending else v
        for v in vms
    ]
    return Inputs(vms, hosts, pools, offerings, fixed)


def _fixed(session: Session, now: datetime, vms: dict[str, planner.VM]) -> list[planner.FixedJob]:
    """Backups queued or running, and SLA backups planned earlier: the plan works around them.

    Keeping earlier planned jobs where they are (rather than moving them at every round)
    keeps each VM's time stable and stops the choices from narrowing as the night goes on.
    """
    fixed = []
    active = session.execute(
        select(Job, Backup.vm_id)
        .join(Backup, Backup.id == Job.subject_id)
        .where(Job.kind == JobKind.BACKUP, Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
    ).all()
    planned = session.execute(
        select(Job, Job.subject_id).where(Job.kind == JobKind.BACKUP, Job.state == JobState.PLANNED)
    ).all()
    for job, vm_id in [*active, *planned]:
        vm = vms.get(vm_id)
        if vm is None:
            continue
        start = max(job.started_at or job.not_before, now)
        seconds = max(60.0, vm.bytes / vm.throughput)
        fixed.append(
            planner.FixedJob(vm.id, vm.host_id, vm.pool_bytes, start, start + timedelta(seconds=seconds))
        )
    return fixed


def plan_inputs(inputs: Inputs, now: datetime, horizon: timedelta = timedelta(hours=24)) -> planner.Plan:
    return planner.plan(inputs.vms, inputs.hosts, inputs.pools, inputs.offerings, now, horizon, inputs.fixed)


def compute(
    core: Core, now: datetime | None = None, horizon: timedelta = timedelta(hours=24)
) -> planner.Plan:
    now = now or utcnow()
    with core.db.session() as session:
        inputs = gather(session, now)
    return plan_inputs(inputs, now, horizon)


def stored(core: Core, now: datetime | None = None, horizon: timedelta = timedelta(hours=24)) -> planner.Plan:
    """The plan the dispatcher keeps: SLA backups planned to start within the horizon."""
    now = now or utcnow()
    with core.db.session() as session:
        rows = session.execute(
            select(Job, VirtualMachine.backup_offering_id)
            .join(VirtualMachine, VirtualMachine.id == Job.subject_id)
            .where(
                Job.state == JobState.PLANNED,
                Job.kind == JobKind.BACKUP,
                Job.not_before < now + horizon,
            )
            .order_by(Job.not_before, Job.id)
        ).all()
    result = planner.Plan()
    for job, offering_id in rows:
        params = PlannedBackup.of(job)
        result.jobs.append(
            planner.PlannedJob(
                vm_id=job.subject_id,
                offering_id=offering_id or "",
                start=job.not_before,
                end=datetime.fromisoformat(params.expected_end),
                deadline=job.deadline or job.not_before,
                pool_id=job.pool_id or "",
                reason=params.reason,
                late=params.late,
            )
        )
    return result


@dataclass(frozen=True)
class PlanView:
    plan: planner.Plan
    vm_names: dict[str, str]
    pool_names: dict[str, str]


def show(scope: Scope, *, horizon: timedelta = timedelta(hours=24), fresh: bool = False) -> PlanView:
    """For operators: the stored plan within the horizon, or with ``fresh`` a dry plan made
    now from the inventory (nothing stored), with the names of its VMs and pools."""
    scope.actor.require_admin("see the SLA plan")
    result = compute(scope.core, horizon=horizon) if fresh else stored(scope.core, horizon=horizon)
    vm_ids = {j.vm_id for j in result.jobs} | {u.vm_id for u in result.unplaceable}
    vm_names = scope.session.execute(
        select(VirtualMachine.id, VirtualMachine.name).where(VirtualMachine.id.in_(vm_ids))
    ).all()
    pool_names = scope.session.execute(
        select(StoragePool.id, StoragePool.name).where(StoragePool.id.in_({j.pool_id for j in result.jobs}))
    ).all()
    return PlanView(result, dict(vm_names), dict(pool_names))


def replan(core: Core, now: datetime | None = None, horizon: timedelta = timedelta(hours=24)) -> planner.Plan:
    """Add the SLA jobs now due within the horizon, from what actually happened; jobs planned
    earlier stay where they are (a failed or cancelled one comes back through its VM)."""
    now = now or utcnow()
    result = compute(core, now, horizon)
    with core.db.session() as session:
        _store(session, result)
    return result


def replan_offering(
    scope: Scope,
    offering_id: str,
    why: str,
    now: datetime | None = None,
    horizon: timedelta = timedelta(hours=24),
) -> planner.Plan:
    """Plan the SLA backups of the offering's VMs afresh in the scope's transaction: their
    planned jobs are cancelled (``why``) and placed again, around everyone else's, under the
    offering as it now stands. For a change of its SLA, which a rolling re-plan would leave
    standing at the old times."""
    now = now or utcnow()
    assigned = select(VirtualMachine.id).where(VirtualMachine.backup_offering_id == offering_id)
    jobs.cancel_planned(scope, assigned, why)
    scope.session.flush()
    inputs = gather(scope.session, now)
    mine = [v for v in inputs.vms if v.offering_id == offering_id]
    result = plan_inputs(replace(inputs, vms=mine), now, horizon)
    _store(scope.session, result)
    return result


def _store(session: Session, result: planner.Plan) -> None:
    """The plan's jobs as ``planned`` backup jobs of their VMs' owners."""
    owners = dict(
        session.execute(
            select(VirtualMachine.id, VirtualMachine.account_id).where(
                VirtualMachine.id.in_({j.vm_id for j in result.jobs})
            )
        ).all()
    )
    session.add_all(
        jobs.new_job(
            kind=JobKind.BACKUP,
            state=JobState.PLANNED,
            account_id=owners[j.vm_id],
            requested_by=None,
            subject_type="vm",
            subject_id=j.vm_id,
            placement=routing.planned_placement(j.pool_id),
            not_before=j.start,
            deadline=j.deadline,
            params=PlannedBackup(reason=j.reason, late=j.late, expected_end=j.end.isoformat()),
        )
        for j in result.jobs
    )


# Planned jobs released per transaction: a night's plan is released in a few hundred commits
# and one broker round trip per batch instead of one of each per job.
RELEASE_BATCH = 500


def _due(now: datetime) -> Select[str, str]:
    return (
        select(Job.id, Job.account_id)
        .where(Job.state == JobState.PLANNED, Job.kind == JobKind.BACKUP, Job.not_before <= now)
        .order_by(Job.not_before)
    )


def release_due(core: Core, now: datetime | None = None, *, max_seconds: float | None = None) -> list[str]:
    """Turn planned jobs whose start has come into queued backups (restore point rows),
    earliest first. With ``max_seconds``, stop after the batch that reaches it: the rest
    stays due for the next call (``any_due``), and the caller gets to its other work."""
    now = now or utcnow()
    released: list[str] = []
    started = time.monotonic()
    while True:
        with core.db.session() as session:
            due = session.execute(_due(now).limit(RELEASE_BATCH)).all()
        by_account: dict[str, list[str]] = defaultdict(list)
        for job_id, account_id in due:
            by_account[account_id].append(job_id)
        for account_id, job_ids in by_account.items():
            released += _release(core, account_id, job_ids)
        # Every job of the batch left ``planned`` (released or cancelled), so the next
        # query moves on.
        out_of_time = max_seconds is not None and time.monotonic() - started >= max_seconds
        if len(due) < RELEASE_BATCH or out_of_time:
            return released


def any_due(core: Core, now: datetime | None = None) -> bool:
    with core.db.session() as session:
        return session.execute(_due(now or utcnow()).limit(1)).first() is not None


def _release(core: Core, account_id: str, job_ids: list[str]) -> list[str]:
    """One account's due jobs in one transaction, as that account."""
    released = []
    with core.scope(acting_as(account_id)) as scope:
        session = scope.session
        planned = {
            job.id: job for job in session.scalars(select(Job).where(Job.id.in_(job_ids)).with_for_update())
        }
        # The VMs with what ``create_backup`` reads of them, loaded at once: its lookups
        # then find them in the session instead of asking the database one by one (held
        # here because the session only keeps weak references).
        vms = session.scalars(
            select(VirtualMachine)
            .where(VirtualMachine.id.in_({job.subject_id for job in planned.values()}))
            .options(*backups.WITH_REF)
        ).all()
        for job_id in job_ids:
            job = planned.get(job_id)
            if job is None or job.state is not JobState.PLANNED:
                continue
            try:
                with scope.savepoint():
                    backups.create_backup(scope, job.subject_id, origin=BackupOrigin.SLA, planned=job)
                released.append(job_id)
            except DomainError as exc:
                # The VM left its offering, was destroyed, or is already being backed up.
                job.state = JobState.CANCELLED
                job.finished_at = utcnow()
                job.error = f"not released: {exc.message}"
        del vms
    return released
