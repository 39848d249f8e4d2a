"""User backup schedules, in CloudStack's format, one per VM and interval type.

``schedule`` is ``MM`` (HOURLY), ``MM:HH`` (DAILY), ``MM:HH:DD`` (WEEKLY, DD 1-7 with
1 = Sunday, as CloudStack counts) or ``MM:HH:DD`` (MONTHLY, DD 1-28). Times are local to
the schedule's time zone. Each schedule keeps at most ``max_backups`` restore points of
its own (0 = no limit); it never prunes ad-hoc or SLA restore points.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from orchestrator.domain import validate
from orchestrator.domain.actor import acting_as
from orchestrator.domain.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from orchestrator.domain.models import BackupOrigin, BackupSchedule, IntervalType, VirtualMachine, utcnow
from orchestrator.domain.sla import parse_timezone
from orchestrator.engine.core import Core, Scope
from orchestrator.usecases import audit, backups, lookup

_FORMATS = {
    IntervalType.HOURLY: ("MM", (59,)),
    IntervalType.DAILY: ("MM:HH", (59, 23)),
    IntervalType.WEEKLY: ("MM:HH:DD", (59, 23, 7)),
    IntervalType.MONTHLY: ("MM:HH:DD", (59, 23, 28)),
}
MAX_BACKUPS_LIMIT = 1000


def cron_expression(interval: IntervalType, schedule: str) -> str:
    """The cron line for a CloudStack schedule string, with a clear error for bad input."""
    shape, limits = _FORMATS[interval]
    parts = str(schedule).strip().split(":")
    if len(parts) != len(limits) or not all(p.isascii() and p.isdigit() for p in parts):
        raise InvalidArgument(
            f"schedule: {schedule!r} does not match {shape} for a {interval.value} schedule", field="schedule"
        )
    values = [int(p) for p in parts]
    lows = (0, 0, 1)
    for name, value, low, high in zip(("minute", "hour", "day"), values, lows, limits, strict=False):
        if not low <= value <= high:
            raise InvalidArgument(
                f"schedule: {name} {value} out of range {low}-{high} in {schedule!r}", field="schedule"
            )
    if interval is IntervalType.HOURLY:
        return f"{values[0]} * * * *"
    if interval is IntervalType.DAILY:
        return f"{values[0]} {values[1]} * * *"
    if interval is IntervalType.WEEKLY:
        return f"{values[0]} {values[1]} * * {values[2] - 1}"
    return f"{values[0]} {values[1]} {values[2]} * *"


def next_run(interval: IntervalType, schedule: str, timezone: str, after: datetime) -> datetime:
    """The first run strictly after ``after``, in UTC.

    Hourly runs follow real time, so none is lost or doubled when clocks change. Daily and
    longer runs follow the local wall clock: a time the autumn change repeats runs once
    (at its first occurrence), a time the spring change skips runs just after the gap.
    """
    zone = parse_timezone(timezone)
    expression = cron_expression(interval, schedule)
    if interval is IntervalType.HOURLY:
        minute = int(expression.split()[0])
        t = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        while t.astimezone(zone).minute != minute:
            t += timedelta(minutes=1)
        return t
    wall = croniter(expression, after.astimezone(zone).replace(tzinfo=None))
    while True:
        candidate = wall.get_next(datetime).replace(tzinfo=zone)
        if candidate > after:
            return candidate.astimezone(UTC)


def create(
    scope: Scope,
    *,
    vm_id: str,
    interval_type: str,
    schedule: str,
    timezone: str = "UTC",
    max_backups: int = 0,
) -> BackupSchedule:
    """Create the VM's schedule for this interval type, or update it if it exists (as CloudStack).

    Requests racing to create the same schedule all succeed: the one whose insert the unique
    (vm, interval type) index refuses updates the row the first one made, as if it came second."""
    vm = lookup.vm(scope, vm_id)
    backups.require_user_driven(scope, vm)
    interval = validate.parse_enum(IntervalType, str(interval_type).upper(), "interval_type")
    fill = partial(_apply, schedule=schedule, timezone=timezone, max_backups=max_backups)
    row = _find(scope, vm.id, interval)
    if row is None:
        try:
            with scope.savepoint():
                row = BackupSchedule(vm_id=vm.id, interval_type=interval)
                fill(row)
                scope.session.add(row)
                scope.session.flush()
        except IntegrityError:
            row = _find(scope, vm.id, interval)
            if row is None:
                raise
    fill(row)
    scope.session.flush()
    audit.record(scope, "schedule.save", "schedule", row.id, vm=vm.id, interval=interval.value)
    return row


def _find(scope: Scope, vm_id: str, interval: IntervalType) -> BackupSchedule | None:
    return scope.session.scalar(
        select(BackupSchedule).where(BackupSchedule.vm_id == vm_id, BackupSchedule.interval_type == interval)
    )


def _apply(row: BackupSchedule, *, schedule: str, timezone: str, max_backups: int) -> None:
    parse_timezone(timezone)
    max_backups = validate.non_negative(max_backups, "max_backups") or 0
    if max_backups > MAX_BACKUPS_LIMIT:
        raise InvalidArgument(f"max_backups: at most {MAX_BACKUPS_LIMIT}", field="max_backups")
    row.next_run_at = next_run(row.interval_type, schedule, timezone, utcnow())
    row.schedule = str(schedule).strip()
    row.timezone = timezone
    row.max_backups = max_backups


def show(scope: Scope, schedule_id: str) -> BackupSchedule:
    row = scope.session.get(BackupSchedule, schedule_id)
    if row is None or not scope.actor.can_see(row.vm.account_id) or row.vm.removed_at is not None:
        raise NotFound.of("backup schedule", schedule_id)
    return row


def update(
    scope: Scope,
    schedule_id: str,
    *,
    schedule: str | None = None,
    timezone: str | None = None,
    max_backups: int | None = None,
) -> BackupSchedule:
    row = show(scope, schedule_id)
    _apply(
        row,
        schedule=row.schedule if schedule is None else schedule,
        timezone=row.timezone if timezone is None else timezone,
        max_backups=row.max_backups if max_backups is None else max_backups,
    )
    audit.record(scope, "schedule.update", "schedule", row.id)
    return row


def list_schedules(scope: Scope, vm_id: str | None = None) -> list[BackupSchedule]:
    stmt = (
        select(BackupSchedule)
        .join(VirtualMachine, VirtualMachine.id == BackupSchedule.vm_id)
        .where(VirtualMachine.removed_at.is_(None))
        .order_by(VirtualMachine.name, BackupSchedule.interval_type)
    )
    if vm_id:
        stmt = stmt.where(BackupSchedule.vm_id == lookup.vm(scope, vm_id).id)
    if not scope.actor.is_admin:
        stmt = stmt.where(VirtualMachine.account_id == scope.actor.account_id)
    return list(scope.session.scalars(stmt))


def delete(scope: Scope, schedule_id: str) -> None:
    row = show(scope, schedule_id)
    scope.session.delete(row)
    audit.record(scope, "schedule.delete", "schedule", schedule_id)


def fire_due(core: Core, now: datetime | None = None) -> list[str]:
    """Queue a backup for every schedule whose time has come, then move it to its next run.

    Each firing carries the key ``schedule:<id>:<planned time>``, so firing the same
    schedule twice (two dispatchers, a retry) still makes one restore point. A run that
    finds the VM's previous backup still going is skipped, not stacked.
    """
    now = now or utcnow()
    with core.db.session() as session:
        due_ids = [
            (row.id, row.vm.account_id)
            for row in session.scalars(
                select(BackupSchedule)
                .join(VirtualMachine, VirtualMachine.id == BackupSchedule.vm_id)
                .where(BackupSchedule.next_run_at <= now, VirtualMachine.removed_at.is_(None))
                .order_by(BackupSchedule.next_run_at)
            )
        ]
    fired: list[str] = []
    for schedule_id, owner_id in due_ids:
        with core.scope(acting_as(owner_id)) as scope:
            row = scope.session.get(BackupSchedule, schedule_id, with_for_update=True)
            if row is None or row.next_run_at is None or row.next_run_at > now:
                continue
            planned = row.next_run_at
            row.next_run_at = next_run(row.interval_type, row.schedule, row.timezone, now)
            try:
                with scope.savepoint():
                    job = backups.create_backup(
                        scope,
                        row.vm_id,
                        origin=BackupOrigin.SCHEDULE,
                        schedule=row,
                        idempotency_key=f"schedule:{row.id}:{planned.isoformat()}",
                    )
                fired.append(job.id)
            except (Conflict, PermissionDenied) as exc:
                # A backup still running, or an offering that no longer allows user schedules.
                audit.record(scope, "schedule.skip", "schedule", row.id, reason=exc.message)
    return fired
