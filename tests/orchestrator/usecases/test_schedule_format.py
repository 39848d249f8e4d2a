"""CloudStack schedule strings: their cron form and when they next run in a time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.models import IntervalType
from orchestrator.usecases.schedules import cron_expression, next_run

BERLIN = ZoneInfo("Europe/Berlin")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- cron_expression ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "schedule", "cron"),
    [
        (IntervalType.HOURLY, "30", "30 * * * *"),
        (IntervalType.HOURLY, " 0 ", "0 * * * *"),
        (IntervalType.DAILY, "30:02", "30 2 * * *"),
        (IntervalType.DAILY, "59:23", "59 23 * * *"),
        (IntervalType.WEEKLY, "0:3:1", "0 3 * * 0"),  # 1 = Sunday in CloudStack, 0 in cron
        (IntervalType.WEEKLY, "0:3:2", "0 3 * * 1"),
        (IntervalType.WEEKLY, "0:3:7", "0 3 * * 6"),  # 7 = Saturday
        (IntervalType.MONTHLY, "15:4:28", "15 4 28 * *"),
        (IntervalType.MONTHLY, "0:0:1", "0 0 1 * *"),
    ],
)
def test_cron_expression_for_each_interval(interval, schedule, cron):
    assert cron_expression(interval, schedule) == cron


@pytest.mark.parametrize(
    ("interval", "schedule", "shape"),
    [
        (IntervalType.HOURLY, "", "MM"),
        (IntervalType.HOURLY, "abc", "MM"),
        (IntervalType.HOURLY, "30:02", "MM"),
        (IntervalType.HOURLY, "-5", "MM"),
        (IntervalType.DAILY, "30", "MM:HH"),
        (IntervalType.DAILY, "30:2:1", "MM:HH"),
        (IntervalType.DAILY, "30:", "MM:HH"),
        (IntervalType.WEEKLY, "0:3", "MM:HH:DD"),
        (IntervalType.MONTHLY, "15:4:x", "MM:HH:DD"),
    ],
)
def test_schedule_of_the_wrong_shape_is_rejected(interval, schedule, shape):
    with pytest.raises(
        InvalidArgument,
        match=rf"^schedule: '{schedule}' does not match {shape} for a {interval.value} schedule$",
    ) as exc:
        cron_expression(interval, schedule)
    assert exc.value.field == "schedule"


@pytest.mark.parametrize(
    ("interval", "schedule", "message"),
    [
        (IntervalType.HOURLY, "60", "minute 60 out of range 0-59"),
        (IntervalType.DAILY, "30:24", "hour 24 out of range 0-23"),
        (IntervalType.WEEKLY, "0:3:0", "day 0 out of range 1-7"),
        (IntervalType.WEEKLY, "0:3:8", "day 8 out of range 1-7"),
        (IntervalType.MONTHLY, "0:0:29", "day 29 out of range 1-28"),
        (IntervalType.MONTHLY, "0:0:0", "day 0 out of range 1-28"),
    ],
)
def test_schedule_value_out_of_range_is_rejected(interval, schedule, message):
    with pytest.raises(InvalidArgument, match=rf"^schedule: {message} in '{schedule}'$") as exc:
        cron_expression(interval, schedule)
    assert exc.value.field == "schedule"


@given(interval=st.sampled_from(IntervalType), schedule=st.text(max_size=12))
@example(interval=IntervalType.HOURLY, schedule="²")
@example(interval=IntervalType.DAILY, schedule="①:02")
def test_any_schedule_text_gives_cron_or_invalid_argument(interval, schedule):
    outcome: str | InvalidArgument
    try:
        outcome = cron_expression(interval, schedule)
    except InvalidArgument as exc:
        outcome = exc
    if isinstance(outcome, InvalidArgument):
        assert outcome.field == "schedule"
        assert outcome.message.startswith("schedule: ")
    else:
        assert len(outcome.split()) == 5


# -- next_run --------------------------------------------------------------------------------


def test_daily_run_lands_on_the_local_hour_in_berlin():
    after = utc("2026-01-15T12:00:00")
    run = next_run(IntervalType.DAILY, "30:02", "Europe/Berlin", after)
    local = run.astimezone(BERLIN)
    assert (local.date().isoformat(), local.hour, local.minute) == ("2026-01-16", 2, 30)
    assert run == utc("2026-01-16T01:30:00")  # CET is UTC+1


def test_daily_run_in_summer_uses_summer_time():
    run = next_run(IntervalType.DAILY, "30:02", "Europe/Berlin", utc("2026-07-01T12:00:00"))
    assert run == utc("2026-07-02T00:30:00")  # CEST is UTC+2


def test_next_run_keeps_the_time_zone_of_after():
    run = next_run(IntervalType.DAILY, "0:12", "Europe/Berlin", utc("2026-01-15T00:00:00"))
    assert run.utcoffset() == timedelta(0)


def test_weekly_day_1_runs_on_sunday_local_time():
    after = utc("2026-01-14T12:00:00")  # a Wednesday
    run = next_run(IntervalType.WEEKLY, "0:3:1", "Europe/Berlin", after)
    local = run.astimezone(BERLIN)
    assert local.weekday() == 6
    assert (local.date().isoformat(), local.hour, local.minute) == ("2026-01-18", 3, 0)


def test_monthly_runs_on_the_given_day_of_month():
    run = next_run(IntervalType.MONTHLY, "15:4:28", "Europe/Berlin", utc("2026-02-28T12:00:00"))
    local = run.astimezone(BERLIN)
    assert (local.date().isoformat(), local.hour, local.minute) == ("2026-03-28", 4, 15)


def test_hourly_runs_at_the_given_minute_of_the_next_hour():
    run = next_run(IntervalType.HOURLY, "30", "Europe/Berlin", utc("2026-01-15T10:45:00"))
    assert run == utc("2026-01-15T11:30:00")


@pytest.mark.parametrize(
    ("interval", "schedule"),
    [(IntervalType.HOURLY, "30"), (IntervalType.DAILY, "30:02"), (IntervalType.WEEKLY, "30:2:5")],
)
def test_next_run_is_strictly_after_a_run_time_it_is_given(interval, schedule):
    first = next_run(interval, schedule, "Europe/Berlin", utc("2026-01-15T00:00:00"))
    second = next_run(interval, schedule, "Europe/Berlin", first)
    assert second > first
    assert next_run(interval, schedule, "Europe/Berlin", first - timedelta(seconds=1)) == first


def test_next_run_rejects_unknown_time_zone():
    with pytest.raises(InvalidArgument, match="timezone: unknown time zone 'Europe/Atlantis'"):
        next_run(IntervalType.DAILY, "30:02", "Europe/Atlantis", utc("2026-01-15T00:00:00"))


def test_daily_run_at_a_time_skipped_by_spring_dst_is_not_lost():
    # On 2026-03-29 Berlin clocks jump from 02:00 to 03:00, so 02:30 does not exist that day.
    after = utc("2026-03-28T01:30:00")  # 02:30 CET on the 28th, the previous run
    run = next_run(IntervalType.DAILY, "30:02", "Europe/Berlin", after)
    assert after < run <= after + timedelta(hours=25)
    assert run.astimezone(BERLIN).date().isoformat() == "2026-03-29"


def test_daily_run_after_spring_dst_is_back_to_its_local_time():
    run = next_run(IntervalType.DAILY, "30:02", "Europe/Berlin", utc("2026-03-29T12:00:00"))
    local = run.astimezone(BERLIN)
    assert (local.date().isoformat(), local.hour, local.minute) == ("2026-03-30", 2, 30)


def test_hourly_schedule_keeps_running_every_hour_across_spring_dst():
    after = utc("2026-03-29T00:00:00")
    runs = []
    for _ in range(4):
        after = next_run(IntervalType.HOURLY, "30", "Europe/Berlin", after)
        runs.append(after)
    assert runs == [utc(f"2026-03-29T0{h}:30:00") for h in range(4)]


def test_daily_run_at_a_time_repeated_by_autumn_dst_runs_once():
    # On 2026-10-25 Berlin clocks go back from 03:00 to 02:00, so 02:30 happens twice.
    first = next_run(IntervalType.DAILY, "30:02", "Europe/Berlin", utc("2026-10-24T12:00:00"))
    assert first.astimezone(BERLIN).date().isoformat() == "2026-10-25"
    second = next_run(IntervalType.DAILY, "30:02", "Europe/Berlin", first)
    assert second.astimezone(BERLIN).date().isoformat() == "2026-10-26"
