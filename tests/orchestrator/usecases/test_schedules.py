"""User backup schedules (CloudStack format) and their max_backups pruning."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.domain.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from orchestrator.domain.models import (
    BackupOrigin,
    BackupSchedule,
    BackupStatus,
    IntervalType,
    JobState,
    utcnow,
)
from orchestrator.usecases import assignments, backups, jobs, schedules


def _create(world, interval, schedule, actor=None, vm_id=None, **kw):
    with world.core.scope(actor or world.alice) as s:
        return schedules.create(
            s, vm_id=vm_id or world.alice_vm, interval_type=interval, schedule=schedule, **kw
        )


def _list(world, actor=None, vm_id=None):
    with world.core.scope(actor or world.alice) as s:
        return schedules.list_schedules(s, vm_id)


# -- creating ------------------------------------------------------------------------------------


def test_identical_schedules_created_at_once_make_one_row(world):
    # Each caller checks, finds none, and inserts: all but one insert break the unique
    # (vm, interval type) index, and those update the row the winner made instead.
    callers = 12
    start = threading.Barrier(callers)

    def create(minute: int) -> str:
        start.wait()
        return _create(world, "DAILY", f"{minute}:2", max_backups=minute).id

    with ThreadPoolExecutor(callers) as pool:
        ids = list(pool.map(create, range(callers)))

    assert len(set(ids)) == 1
    (row,) = _list(world)
    # The last one to commit wins, whole: its time and its count together.
    assert row.schedule == f"{row.max_backups}:2"


def test_hourly_schedule_runs_at_the_minute(world):
    before = utcnow()
    row = _create(world, "HOURLY", "30")

    assert row.interval_type is IntervalType.HOURLY
    assert row.schedule == "30"
    assert (row.next_run_at.minute, row.next_run_at.second) == (30, 0)
    assert before < row.next_run_at <= before + timedelta(hours=1)


def test_daily_schedule_runs_at_minute_and_hour(world):
    before = utcnow()
    row = _create(world, "DAILY", "30:02")

    assert row.interval_type is IntervalType.DAILY
    assert (row.next_run_at.hour, row.next_run_at.minute) == (2, 30)
    assert before < row.next_run_at <= before + timedelta(days=1)


def test_weekly_schedule_day_one_is_sunday(world):
    before = utcnow()
    row = _create(world, "WEEKLY", "0:3:1")

    assert row.next_run_at.weekday() == 6  # Sunday, as CloudStack counts day 1
    assert (row.next_run_at.hour, row.next_run_at.minute) == (3, 0)
    assert before < row.next_run_at <= before + timedelta(days=7)


def test_weekly_schedule_day_seven_is_saturday(world):
    row = _create(world, "WEEKLY", "0:3:7")

    assert row.next_run_at.weekday() == 5


def test_monthly_schedule_runs_on_the_day(world):
    before = utcnow()
    row = _create(world, "MONTHLY", "15:4:28")

    assert (row.next_run_at.day, row.next_run_at.hour, row.next_run_at.minute) == (28, 4, 15)
    assert before < row.next_run_at <= before + timedelta(days=31)


def test_interval_type_is_case_insensitive(world):
    row = _create(world, "daily", "0:1")

    assert row.interval_type is IntervalType.DAILY


def test_next_run_honours_time_zone(world):
    before = utcnow()
    row = _create(world, "DAILY", "0:09", timezone="Asia/Kolkata")

    assert row.timezone == "Asia/Kolkata"
    local = row.next_run_at.astimezone(ZoneInfo("Asia/Kolkata"))
    assert (local.hour, local.minute) == (9, 0)
    # Kolkata is UTC+05:30, with no daylight saving.
    assert (row.next_run_at.hour, row.next_run_at.minute) == (3, 30)
    assert before < row.next_run_at <= before + timedelta(days=1)


def test_next_run_is_stored(world):
    row = _create(world, "HOURLY", "5")

    (stored,) = _list(world, vm_id=world.alice_vm)
    assert stored.next_run_at == row.next_run_at
    assert stored.next_run_at > utcnow()


def _at(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("interval", "schedule", "timezone", "after", "expected"),
    [
        (IntervalType.HOURLY, "30", "UTC", _at(2025, 1, 15, 10, 30), _at(2025, 1, 15, 11, 30)),
        (IntervalType.DAILY, "0:09", "Asia/Kolkata", _at(2025, 1, 15, 10), _at(2025, 1, 16, 3, 30)),
        (IntervalType.DAILY, "0:02", "America/New_York", _at(2025, 7, 1, 12), _at(2025, 7, 2, 6)),
        (IntervalType.DAILY, "0:02", "America/New_York", _at(2025, 1, 15, 12), _at(2025, 1, 16, 7)),
        (IntervalType.WEEKLY, "0:3:1", "UTC", _at(2025, 1, 15), _at(2025, 1, 19, 3)),
        (IntervalType.MONTHLY, "15:4:28", "UTC", _at(2025, 2, 28, 5), _at(2025, 3, 28, 4, 15)),
    ],
)
def test_next_run_on_the_local_clock(interval, schedule, timezone, after, expected):
    assert schedules.next_run(interval, schedule, timezone, after) == expected


def test_hourly_schedule_runs_every_hour_across_dst_fall_back():
    # Berlin goes from CEST (UTC+2) back to CET (UTC+1) at 01:00 UTC on 2025-10-26.
    runs = [_at(2025, 10, 25, 23, 50)]
    for _ in range(4):
        runs.append(schedules.next_run(IntervalType.HOURLY, "30", "Europe/Berlin", runs[-1]))

    gaps = [later - earlier for earlier, later in itertools.pairwise(runs[1:])]
    assert gaps == [timedelta(hours=1)] * 3


def test_daily_schedule_runs_once_on_dst_fall_back_day():
    # 02:30 happens twice in Berlin on 2025-10-26; a daily backup must not run twice.
    first = schedules.next_run(IntervalType.DAILY, "30:02", "Europe/Berlin", _at(2025, 10, 25, 23))
    second = schedules.next_run(IntervalType.DAILY, "30:02", "Europe/Berlin", first)

    assert first == _at(2025, 10, 26, 0, 30)
    assert second == _at(2025, 10, 27, 1, 30)


@pytest.mark.parametrize(
    ("interval", "schedule"),
    [
        ("HOURLY", "61"),
        ("HOURLY", "1:2"),
        ("HOURLY", "x"),
        ("HOURLY", ""),
        ("DAILY", "0:25"),
        ("DAILY", "60:1"),
        ("DAILY", "30"),
        ("WEEKLY", "0:3:8"),
        ("WEEKLY", "0:3:0"),
        ("WEEKLY", "0:3"),
        ("MONTHLY", "0:3:29"),
        ("MONTHLY", "0:3:0"),
        ("MONTHLY", "-1:3:1"),
    ],
)
def test_bad_schedule_string_is_invalid(world, interval, schedule):
    with pytest.raises(InvalidArgument, match="schedule") as err:
        _create(world, interval, schedule)
    assert err.value.field == "schedule"
    assert _list(world) == []


def test_bad_time_zone_is_invalid(world):
    with pytest.raises(InvalidArgument, match="timezone") as err:
        _create(world, "DAILY", "0:1", timezone="Nowhere/Atlantis")
    assert "Nowhere/Atlantis" in err.value.message
    assert _list(world) == []


def test_bad_interval_type_is_invalid(world):
    with pytest.raises(InvalidArgument, match="interval_type"):
        _create(world, "YEARLY", "0:1")


@pytest.mark.parametrize("max_backups", [-1, 1001])
def test_bad_max_backups_is_invalid(world, max_backups):
    with pytest.raises(InvalidArgument, match="max_backups"):
        _create(world, "DAILY", "0:1", max_backups=max_backups)


def test_same_interval_type_again_updates_the_schedule(world):
    first = _create(world, "DAILY", "30:02")
    second = _create(world, "DAILY", "0:05", max_backups=3)

    assert second.id == first.id
    (row,) = _list(world, vm_id=world.alice_vm)
    assert (row.id, row.schedule, row.max_backups) == (first.id, "0:05", 3)
    assert (row.next_run_at.hour, row.next_run_at.minute) == (5, 0)


def test_vm_can_have_one_schedule_per_interval_type(world):
    _create(world, "HOURLY", "30")
    _create(world, "DAILY", "30:02")
    _create(world, "WEEKLY", "0:3:1")
    _create(world, "MONTHLY", "15:4:28")

    rows = _list(world, vm_id=world.alice_vm)
    assert sorted(r.interval_type.value for r in rows) == ["DAILY", "HOURLY", "MONTHLY", "WEEKLY"]


def test_schedule_on_unassigned_vm_conflicts(world):
    with pytest.raises(Conflict, match="no backup offering"):
        _create(world, "DAILY", "0:1", vm_id=world.alice_vm2)


def test_user_schedule_refused_where_offering_disallows_it(world):
    with world.core.scope(world.admin) as s:
        assignments.assign(s, world.alice_vm2, world.bronze_id)

    with pytest.raises(PermissionDenied, match="bronze"):
        _create(world, "DAILY", "0:1", vm_id=world.alice_vm2)


def test_update_changes_schedule_and_next_run(world):
    row = _create(world, "DAILY", "0:1")

    with world.core.scope(world.alice) as s:
        schedules.update(s, row.id, schedule="45:22", max_backups=5)

    (stored,) = _list(world, vm_id=world.alice_vm)
    assert (stored.schedule, stored.max_backups) == ("45:22", 5)
    assert (stored.next_run_at.hour, stored.next_run_at.minute) == (22, 45)


def test_invalid_update_changes_nothing(world):
    row = _create(world, "DAILY", "0:1")

    with pytest.raises(InvalidArgument, match="schedule"), world.core.scope(world.alice) as s:
        schedules.update(s, row.id, schedule="0:24")

    (stored,) = _list(world, vm_id=world.alice_vm)
    assert stored.schedule == "0:1"
    assert stored.next_run_at == row.next_run_at


# -- listing, tenancy, deleting ------------------------------------------------------------------


def test_list_per_vm(world):
    with world.core.scope(world.alice) as s:
        assignments.assign(s, world.alice_vm2, world.gold_id)
    mine = _create(world, "DAILY", "0:1")
    other = _create(world, "DAILY", "0:1", vm_id=world.alice_vm2)

    assert [r.id for r in _list(world, vm_id=world.alice_vm)] == [mine.id]
    assert [r.id for r in _list(world, vm_id=world.alice_vm2)] == [other.id]
    assert {r.id for r in _list(world)} == {mine.id, other.id}


def test_other_tenant_does_not_see_schedules(world):
    alices = _create(world, "DAILY", "0:1")
    bobs = _create(world, "HOURLY", "0", actor=world.bob, vm_id=world.bob_vm)

    assert [r.id for r in _list(world, world.bob)] == [bobs.id]
    assert {r.id for r in _list(world, world.admin)} == {alices.id, bobs.id}
    with pytest.raises(NotFound, match=world.alice_vm):
        _list(world, world.bob, vm_id=world.alice_vm)


def test_other_tenant_cannot_create_schedule(world):
    with pytest.raises(NotFound, match=world.alice_vm):
        _create(world, "DAILY", "0:1", actor=world.bob)

    assert _list(world, world.admin) == []


def test_other_tenant_cannot_update_or_delete_schedule(world):
    row = _create(world, "DAILY", "0:1")

    with pytest.raises(NotFound, match=row.id), world.core.scope(world.bob) as s:
        schedules.update(s, row.id, schedule="0:2")
    with pytest.raises(NotFound, match=row.id), world.core.scope(world.bob) as s:
        schedules.delete(s, row.id)

    assert [(r.id, r.schedule) for r in _list(world)] == [(row.id, "0:1")]


def test_delete_schedule(world):
    daily = _create(world, "DAILY", "0:1")
    hourly = _create(world, "HOURLY", "0")

    with world.core.scope(world.alice) as s:
        schedules.delete(s, daily.id)

    assert [r.id for r in _list(world)] == [hourly.id]
    with pytest.raises(NotFound, match=daily.id), world.core.scope(world.alice) as s:
        schedules.delete(s, daily.id)


# -- max_backups ---------------------------------------------------------------------------------
# The world's dummy provider has every capability, delete_single_restore_point included.


def _scheduled_backup(world, schedule_id):
    with world.core.scope(world.admin) as s:
        row = s.session.get(BackupSchedule, schedule_id)
        job_id = backups.create_backup(s, row.vm_id, origin=BackupOrigin.SCHEDULE, schedule=row).id
    with world.core.scope(world.admin) as s:
        job = jobs.show(s, job_id)
        assert job.state is JobState.SUCCEEDED, job.error
        return job.subject_id


def _adhoc_backup(world):
    with world.core.scope(world.alice) as s:
        job_id = backups.create_backup(s, world.alice_vm).id
    with world.core.scope(world.alice) as s:
        return jobs.show(s, job_id).subject_id


def _status(world, backup_id):
    with world.core.scope(world.admin) as s:
        return backups.show(s, backup_id).status


def test_scheduled_backup_records_its_schedule(world):
    row = _create(world, "DAILY", "0:1")

    point = _scheduled_backup(world, row.id)

    with world.core.scope(world.alice) as s:
        got = backups.show(s, point)
    assert got.origin is BackupOrigin.SCHEDULE
    assert got.schedule_id == row.id
    assert got.status is BackupStatus.BACKED_UP


def test_max_backups_prunes_oldest_scheduled_points_only(world):
    row = _create(world, "DAILY", "0:1", max_backups=2)
    adhoc = _adhoc_backup(world)
    scheduled = [_scheduled_backup(world, row.id) for _ in range(3)]

    assert _status(world, adhoc) is BackupStatus.BACKED_UP
    assert [_status(world, p) for p in scheduled] == [
        BackupStatus.EXPUNGED,
        BackupStatus.BACKED_UP,
        BackupStatus.BACKED_UP,
    ]


def test_max_backups_does_not_touch_other_schedules(world):
    hourly = _create(world, "HOURLY", "0", max_backups=1)
    daily = _create(world, "DAILY", "0:1", max_backups=1)
    first_hourly = _scheduled_backup(world, hourly.id)
    daily_point = _scheduled_backup(world, daily.id)
    second_hourly = _scheduled_backup(world, hourly.id)

    assert _status(world, first_hourly) is BackupStatus.EXPUNGED
    assert _status(world, second_hourly) is BackupStatus.BACKED_UP
    assert _status(world, daily_point) is BackupStatus.BACKED_UP


def test_max_backups_zero_keeps_everything(world):
    row = _create(world, "DAILY", "0:1", max_backups=0)

    scheduled = [_scheduled_backup(world, row.id) for _ in range(3)]

    assert [_status(world, p) for p in scheduled] == [BackupStatus.BACKED_UP] * 3


def test_adhoc_backups_do_not_trigger_pruning(world):
    row = _create(world, "DAILY", "0:1", max_backups=1)
    scheduled = _scheduled_backup(world, row.id)

    adhoc = [_adhoc_backup(world) for _ in range(2)]

    assert _status(world, scheduled) is BackupStatus.BACKED_UP
    assert [_status(world, p) for p in adhoc] == [BackupStatus.BACKED_UP] * 2


def test_deleting_schedule_keeps_its_restore_points(world):
    row = _create(world, "DAILY", "0:1")
    point = _scheduled_backup(world, row.id)

    with world.core.scope(world.alice) as s:
        schedules.delete(s, row.id)

    with world.core.scope(world.alice) as s:
        kept = backups.show(s, point)
        assert kept.status is BackupStatus.BACKED_UP
        assert kept.schedule_id is None
        assert kept.origin is BackupOrigin.SCHEDULE
