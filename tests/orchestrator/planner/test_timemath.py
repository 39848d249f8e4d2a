"""Windows and blackouts as UTC intervals: midnight, weekdays, DST days, merge and subtract."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.domain.sla import ServiceLevel, TimeRange
from orchestrator.planner.timemath import Interval, merge, occurrences, subtract, window_plans

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
T0 = datetime(2026, 6, 1, tzinfo=UTC)
MON, TUE, WED, FRI, SAT, SUN = 0, 1, 2, 4, 5, 6


def rng(start: str, end: str, days: list[str] | None = None) -> TimeRange:
    raw: dict[str, Any] = {"start": start, "end": end}
    if days is not None:
        raw["days"] = days
    return TimeRange.parse(raw, "windows[0]")


def local(zone: ZoneInfo, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def iv(a: int, b: int) -> Interval:
    """An interval from minute a to minute b after T0."""
    return Interval(T0 + timedelta(minutes=a), T0 + timedelta(minutes=b))


def minutes_of(intervals: list[Interval]) -> set[int]:
    out: set[int] = set()
    for i in intervals:
        out |= set(
            range(int((i.start - T0) / timedelta(minutes=1)), int((i.end - T0) / timedelta(minutes=1)))
        )
    return out


def wall(zone: ZoneInfo, at: datetime) -> tuple[date, time]:
    moment = at.astimezone(zone)
    return moment.date(), moment.time()


# -- windows across midnight -----------------------------------------------------------------------


def test_window_across_midnight_ends_on_the_next_day():
    found = occurrences([rng("22:00", "02:00")], ZoneInfo("UTC"), T0, T0 + timedelta(days=2))
    assert found[1] == Interval(datetime(2026, 6, 1, 22, tzinfo=UTC), datetime(2026, 6, 2, 2, tzinfo=UTC))
    assert all(o.seconds == 4 * 3600 for o in found)


def test_occurrence_begun_the_evening_before_the_range_is_included():
    start = datetime(2026, 6, 2, 1, tzinfo=UTC)
    found = occurrences([rng("22:00", "02:00")], ZoneInfo("UTC"), start, start + timedelta(hours=2))
    assert found == [Interval(datetime(2026, 6, 1, 22, tzinfo=UTC), datetime(2026, 6, 2, 2, tzinfo=UTC))]


def test_occurrence_ending_exactly_at_the_range_start_is_left_out():
    start = datetime(2026, 6, 2, 2, tzinfo=UTC)
    found = occurrences([rng("22:00", "02:00")], ZoneInfo("UTC"), start, start + timedelta(hours=3))
    assert found == []


def test_window_ending_at_24_00_ends_at_the_next_local_midnight():
    found = occurrences([rng("22:00", "24:00")], BERLIN, T0, T0 + timedelta(hours=23))
    assert [(o.start.astimezone(BERLIN), o.end.astimezone(BERLIN)) for o in found] == [
        (local(BERLIN, date(2026, 6, 1), 22), local(BERLIN, date(2026, 6, 2), 0))
    ]


# -- DST -------------------------------------------------------------------------------------------

# (zone, evening the night starts, real hours of a 20:00-06:00 window that night)
DST_NIGHTS = [
    pytest.param(BERLIN, date(2026, 3, 28), 9, id="berlin-spring"),
    pytest.param(BERLIN, date(2026, 10, 24), 11, id="berlin-autumn"),
    pytest.param(NEW_YORK, date(2026, 3, 7), 9, id="new-york-spring"),
    pytest.param(NEW_YORK, date(2026, 10, 31), 11, id="new-york-autumn"),
    pytest.param(BERLIN, date(2026, 6, 6), 10, id="berlin-summer"),
]


@pytest.mark.parametrize(("zone", "evening", "hours"), DST_NIGHTS)
def test_overnight_window_on_a_dst_night_occurs_once_with_its_real_length(zone, evening, hours):
    noon = local(zone, evening, 12)
    found = occurrences([rng("20:00", "06:00")], zone, noon, noon + timedelta(days=1))
    assert len(found) == 1
    (night,) = found
    assert wall(zone, night.start) == (evening, time(20))
    assert wall(zone, night.end) == (evening + timedelta(days=1), time(6))
    assert night.seconds == hours * 3600


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        pytest.param(BERLIN, date(2026, 3, 29), 2, id="berlin-spring"),
        pytest.param(BERLIN, date(2026, 10, 25), 4, id="berlin-autumn"),
        pytest.param(NEW_YORK, date(2026, 3, 8), 2, id="new-york-spring"),
        pytest.param(NEW_YORK, date(2026, 11, 1), 4, id="new-york-autumn"),
    ],
)
def test_window_containing_the_clock_change_is_an_hour_shorter_or_longer(zone, day, hours):
    midnight = local(zone, day, 0)
    found = occurrences([rng("01:00", "04:00")], zone, midnight, midnight + timedelta(hours=20))
    assert len(found) == 1
    assert wall(zone, found[0].start) == (day, time(1))
    assert wall(zone, found[0].end) == (day, time(4))
    assert found[0].seconds == hours * 3600


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        pytest.param(BERLIN, date(2026, 10, 25), id="berlin"),
        pytest.param(NEW_YORK, date(2026, 11, 1), id="ny"),
    ],
)
def test_window_in_the_repeated_hour_is_not_doubled(zone, day):
    midnight = local(zone, day, 0)
    found = occurrences(
        [rng("01:15", "01:45"), rng("02:15", "02:45")], zone, midnight, midnight + timedelta(days=1)
    )
    # 01:15 exists twice in New York, 02:15 twice in Berlin; each window still runs once.
    assert [o.seconds for o in found] == [30 * 60, 30 * 60]


@pytest.mark.parametrize(
    ("zone", "day"),
    [pytest.param(BERLIN, date(2026, 3, 29), id="berlin"), pytest.param(NEW_YORK, date(2026, 3, 8), id="ny")],
)
def test_window_starting_in_the_skipped_hour_is_not_lost(zone, day):
    # 02:00-03:00 does not exist on the spring-forward day, but 03:00-03:30 does.
    midnight = local(zone, day, 0)
    found = occurrences([rng("02:30", "03:30")], zone, midnight, midnight + timedelta(days=1))
    assert len(found) == 1
    assert found[0].seconds > 0


@settings(max_examples=100, deadline=None)
@given(
    zone=st.sampled_from(
        [BERLIN, NEW_YORK, ZoneInfo("Australia/Sydney"), ZoneInfo("Australia/Lord_Howe"), ZoneInfo("UTC")]
    ),
    evening=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
)
def test_every_local_evening_has_exactly_one_night_window_of_wall_length_plus_offset_change(zone, evening):
    noon = local(zone, evening, 12)
    found = occurrences([rng("20:00", "06:00")], zone, noon, noon + timedelta(hours=23))
    assert len(found) == 1
    (night,) = found
    assert wall(zone, night.start) == (evening, time(20))
    assert wall(zone, night.end) == (evening + timedelta(days=1), time(6))
    shift = night.start.astimezone(zone).utcoffset() - night.end.astimezone(zone).utcoffset()
    assert timedelta(seconds=night.seconds) == timedelta(hours=10) + shift


# -- weekdays --------------------------------------------------------------------------------------


def test_window_restricted_to_weekdays_occurs_only_on_those_local_days():
    start = local(BERLIN, date(2026, 6, 1), 0)  # a Monday
    found = occurrences([rng("22:00", "02:00", ["mon", "wed"])], BERLIN, start, start + timedelta(days=14))
    assert [o.start.astimezone(BERLIN).weekday() for o in found] == [MON, WED, MON, WED]
    assert all(o.seconds == 4 * 3600 for o in found)


def test_friday_overnight_window_runs_into_saturday():
    start = local(BERLIN, date(2026, 6, 1), 0)
    found = occurrences([rng("22:00", "03:00", ["fri"])], BERLIN, start, start + timedelta(days=7))
    assert len(found) == 1
    assert found[0].start.astimezone(BERLIN).weekday() == FRI
    assert found[0].end.astimezone(BERLIN).weekday() == SAT


def test_weekday_is_the_local_day_not_the_utc_day():
    # Monday 21:00 in New York is already Tuesday in UTC.
    start = local(NEW_YORK, date(2026, 6, 1), 0)
    found = occurrences([rng("21:00", "23:00", ["mon"])], NEW_YORK, start, start + timedelta(days=7))
    assert len(found) == 1
    assert found[0].start.astimezone(NEW_YORK).weekday() == MON
    assert found[0].start.astimezone(UTC).weekday() == TUE


# -- window plans: all-day default and blackouts ----------------------------------------------------


def test_offering_without_windows_has_one_all_day_window_per_local_day():
    level = ServiceLevel.parse(rpo="1d", timezone="Europe/Berlin")
    start = local(BERLIN, date(2026, 3, 28), 0)
    plans = window_plans(level, start, local(BERLIN, date(2026, 3, 31), 0))
    assert [wall(BERLIN, p.window.start) for p in plans] == [
        (date(2026, 3, d), time(0)) for d in (28, 29, 30)
    ]
    assert [wall(BERLIN, p.window.end) for p in plans] == [(date(2026, 3, d), time(0)) for d in (29, 30, 31)]
    assert [p.window.seconds / 3600 for p in plans] == [24, 23, 24]
    assert all(p.open == (p.window,) for p in plans)


def test_blackout_inside_a_window_cuts_a_hole():
    level = ServiceLevel.parse(
        rpo="1d",
        timezone="Europe/Berlin",
        windows=[{"start": "20:00", "end": "06:00"}],
        blackouts=[{"start": "23:00", "end": "00:30"}],
    )
    start = local(BERLIN, date(2026, 6, 1), 12)
    (plan,) = window_plans(level, start, start + timedelta(hours=20))
    d1, d2 = date(2026, 6, 1), date(2026, 6, 2)
    assert plan.window == Interval(local(BERLIN, d1, 20), local(BERLIN, d2, 6))
    assert plan.open == (
        Interval(local(BERLIN, d1, 20), local(BERLIN, d1, 23)),
        Interval(local(BERLIN, d2, 0, 30), local(BERLIN, d2, 6)),
    )


def test_blackout_begun_the_evening_before_cuts_the_start_of_a_morning_window():
    level = ServiceLevel.parse(
        rpo="1d",
        timezone="Europe/Berlin",
        windows=[{"start": "00:00", "end": "08:00"}],
        blackouts=[{"start": "22:00", "end": "02:00"}],
    )
    day = date(2026, 6, 2)
    (plan,) = window_plans(level, local(BERLIN, day, 0), local(BERLIN, day, 12))
    assert plan.open == (Interval(local(BERLIN, day, 2), local(BERLIN, day, 8)),)


def test_blackout_across_the_autumn_clock_change_has_its_real_length():
    level = ServiceLevel.parse(
        rpo="1d",
        timezone="Europe/Berlin",
        windows=[{"start": "20:00", "end": "06:00"}],
        blackouts=[{"start": "01:00", "end": "04:00"}],
    )
    (plan,) = window_plans(
        level, local(BERLIN, date(2026, 10, 24), 12), local(BERLIN, date(2026, 10, 25), 12)
    )
    assert [p.seconds / 3600 for p in plan.open] == [5, 2]
    assert plan.window.seconds - sum(p.seconds for p in plan.open) == 4 * 3600


def test_blackout_covering_a_whole_day_drops_that_days_window():
    level = ServiceLevel.parse(
        rpo="2d",
        windows=[{"start": "01:00", "end": "03:00"}],
        blackouts=[{"start": "00:00", "end": "24:00", "days": ["sun"]}],
    )
    start = datetime(2026, 6, 1, tzinfo=UTC)
    plans = window_plans(level, start, start + timedelta(days=7))
    assert len(plans) == 6
    assert SUN not in {p.window.start.weekday() for p in plans}


# -- merge and subtract ----------------------------------------------------------------------------


def test_interval_seconds():
    assert iv(0, 90).seconds == 90 * 60


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        pytest.param([iv(0, 10), iv(5, 20)], [iv(0, 20)], id="overlapping"),
        pytest.param([iv(0, 30), iv(5, 10)], [iv(0, 30)], id="contained"),
        pytest.param([iv(0, 10), iv(10, 20)], [iv(0, 10), iv(10, 20)], id="touching-stay-apart"),
        pytest.param([iv(30, 40), iv(0, 10), iv(5, 12)], [iv(0, 12), iv(30, 40)], id="unsorted"),
        pytest.param([], [], id="empty"),
    ],
)
def test_merge(given_, expected):
    assert merge(given_) == expected


@pytest.mark.parametrize(
    ("base", "holes", "expected"),
    [
        pytest.param([iv(0, 60)], [], [iv(0, 60)], id="no-holes"),
        pytest.param([iv(0, 60)], [iv(20, 30)], [iv(0, 20), iv(30, 60)], id="hole-inside"),
        pytest.param([iv(0, 60)], [iv(-10, 15)], [iv(15, 60)], id="hole-over-start"),
        pytest.param([iv(0, 60)], [iv(45, 90)], [iv(0, 45)], id="hole-over-end"),
        pytest.param([iv(0, 60)], [iv(-1, 61)], [], id="hole-covers-all"),
        pytest.param([iv(0, 10), iv(20, 30)], [iv(5, 25)], [iv(0, 5), iv(25, 30)], id="hole-spans-two"),
        pytest.param([iv(0, 60)], [iv(10, 20), iv(20, 30)], [iv(0, 10), iv(30, 60)], id="touching-holes"),
        pytest.param([iv(0, 10)], [iv(10, 20)], [iv(0, 10)], id="hole-touches-end"),
    ],
)
def test_subtract(base, holes, expected):
    assert subtract(base, holes) == expected


spans = st.lists(
    st.tuples(st.integers(0, 200), st.integers(1, 40)).map(lambda t: iv(t[0], t[0] + t[1])), max_size=8
)


@settings(max_examples=100, deadline=None)
@given(raw=spans)
def test_merge_keeps_coverage_and_leaves_no_overlap(raw):
    merged = merge(raw)
    assert minutes_of(merged) == minutes_of(raw)
    assert all(a.end <= b.start for a, b in itertools.pairwise(merged))


@settings(max_examples=100, deadline=None)
@given(raw_base=spans, raw_holes=spans)
def test_subtract_is_exactly_base_minus_holes(raw_base, raw_holes):
    base, holes = merge(raw_base), merge(raw_holes)
    out = subtract(base, holes)
    assert minutes_of(out) == minutes_of(base) - minutes_of(holes)
    assert not any(o.start < h.end and h.start < o.end for o in out for h in holes)
    assert all(o.start < o.end for o in out)
    assert all(a.end <= b.start for a, b in itertools.pairwise(out))
