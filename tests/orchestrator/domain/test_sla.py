"""Service levels: durations, windows, blackouts, time zones and the RPO feasibility check."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.sla import (
    DAY_NAMES,
    MINUTES_PER_DAY,
    MINUTES_PER_WEEK,
    ServiceLevel,
    TimeRange,
    format_duration,
    parse_duration,
    parse_timezone,
)

MON, SUN = 0, 6


def window(start: str, end: str, days: list[str] | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {"start": start, "end": end}
    if days is not None:
        raw["days"] = days
    return raw


def reparse(level: ServiceLevel) -> ServiceLevel:
    raw = level.to_dict()
    return ServiceLevel.parse(
        rpo=raw["rpo_seconds"],
        timezone=raw["timezone"],
        windows=raw["windows"],
        blackouts=raw["blackouts"],
    )


# -- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90m", 90 * 60),
        ("6h", 6 * 3600),
        ("1d12h", 36 * 3600),
        ("1d 12h", 36 * 3600),
        ("6H", 6 * 3600),
        ("2w", 14 * 86400),
        ("45s", 45),
        ("3600", 3600),
        (3600, 3600),
    ],
)
def test_parse_duration_accepts_units_and_plain_seconds(value, seconds):
    assert parse_duration(value, field_name="rpo") == seconds


@pytest.mark.parametrize("value", ["abc", "", "   ", "5x", "6h30", "1.5h", "-1h", "h"])
def test_parse_duration_rejects_text_that_is_not_a_duration(value):
    with pytest.raises(
        InvalidArgument, match=r"^rpo: .* is not a duration \(use e\.g\. 30m, 6h, 1d\)"
    ) as exc:
        parse_duration(value, field_name="rpo")
    assert exc.value.field == "rpo"


@pytest.mark.parametrize("value", [0, -1, "0", "0m", "0h0m"])
def test_parse_duration_rejects_zero_and_negative(value):
    with pytest.raises(InvalidArgument, match=r"^retention: must be positive, got ") as exc:
        parse_duration(value, field_name="retention")
    assert exc.value.field == "retention"


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_rejects_booleans_even_though_they_are_ints(value):
    with pytest.raises(InvalidArgument, match=rf"^rpo: expected a duration, got {value}$"):
        parse_duration(value, field_name="rpo")


@pytest.mark.parametrize("value", ["²", "³h", "①"])
def test_parse_duration_rejects_non_ascii_digit_characters_as_invalid_argument(value):
    # str.isdigit() is true for superscripts and circled digits, which int() cannot parse.
    with pytest.raises(InvalidArgument, match="is not a duration"):
        parse_duration(value, field_name="rpo")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(604800, "1w"), (86400, "1d"), (36 * 3600, "36h"), (5400, "90m"), (45, "45s"), (61, "61s")],
)
def test_format_duration_uses_the_largest_whole_unit(seconds, text):
    assert format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=10 * 604800))
def test_format_duration_round_trips_through_parse_duration(seconds):
    assert parse_duration(format_duration(seconds), field_name="x") == seconds


# -- time zones ---------------------------------------------------------------------------


def test_parse_timezone_accepts_iana_names():
    assert parse_timezone("Europe/Berlin").key == "Europe/Berlin"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "utc", "../etc/passwd"])
def test_parse_timezone_rejects_unknown_names(name):
    with pytest.raises(InvalidArgument, match=r"^tz: unknown time zone ") as exc:
        parse_timezone(name, field_name="tz")
    assert exc.value.field == "tz"


@pytest.mark.parametrize("name", ["America", "Europe"])
def test_parse_timezone_rejects_a_region_name_that_is_not_a_zone(name):
    # "America" is a directory in the tz database, not a zone.
    with pytest.raises(InvalidArgument, match=rf"unknown time zone '{name}'"):
        parse_timezone(name)


def test_service_level_rejects_unknown_time_zone():
    with pytest.raises(InvalidArgument, match="timezone: unknown time zone 'Nowhere/Special'"):
        ServiceLevel.parse(rpo="1d", timezone="Nowhere/Special")


# -- time ranges --------------------------------------------------------------------------


def test_window_within_a_day_has_its_length_in_minutes():
    assert TimeRange.parse(window("01:00", "03:30"), "w").minutes == 150


def test_window_crossing_midnight_ends_the_next_day():
    rng = TimeRange.parse(window("22:00", "02:00"), "w")
    assert rng.minutes == 240


def test_window_crossing_midnight_covers_the_following_morning():
    rng = TimeRange.parse(window("22:00", "02:00", ["tue"]), "w")
    tuesday = 1 * MINUTES_PER_DAY
    covered = set(rng.week_minutes())
    assert covered == set(range(tuesday + 22 * 60, tuesday + 26 * 60))


def test_sunday_night_window_wraps_into_monday_morning():
    rng = TimeRange.parse(window("22:00", "02:00", ["sun"]), "w")
    covered = set(rng.week_minutes())
    sunday_late = set(range(SUN * MINUTES_PER_DAY + 22 * 60, MINUTES_PER_WEEK))
    monday_early = set(range(0, 2 * 60))
    assert covered == sunday_late | monday_early
    assert max(covered) == MINUTES_PER_WEEK - 1


def test_end_of_24_00_means_end_of_day():
    rng = TimeRange.parse(window("18:00", "24:00"), "w")
    assert rng.end == time.max
    assert rng.minutes == 6 * 60
    assert rng.to_dict()["end"] == "24:00"


def test_whole_day_window_from_00_00_to_24_00():
    rng = TimeRange.parse(window("00:00", "24:00", ["wed"]), "w")
    assert rng.minutes == MINUTES_PER_DAY
    assert set(rng.week_minutes()) == set(range(2 * MINUTES_PER_DAY, 3 * MINUTES_PER_DAY))


@pytest.mark.parametrize(("start", "end"), [("08:00", "08:00"), ("00:00", "00:00")])
def test_zero_length_window_is_rejected(start, end):
    with pytest.raises(InvalidArgument, match=r"^windows\[0\]: window of zero length") as exc:
        TimeRange.parse(window(start, end), "windows[0]")
    assert exc.value.field == "windows[0]"


@pytest.mark.parametrize("end", ["00:00", "06:00", "24:00"])
def test_window_cannot_start_at_24_00(end):
    # 24:00 only ends a day; accepting it as a start made 24:00-00:00 a window of no time.
    with pytest.raises(InvalidArgument, match=r"^windows\[0\]\.start: 24:00 ends a day; start at 00:00$"):
        TimeRange.parse(window("24:00", end), "windows[0]")


@pytest.mark.parametrize("bad", ["24:30", "25:00", "12:60", "noon", "1200", "12:5", "", "-1:00"])
def test_bad_clock_is_rejected_naming_the_field(bad):
    with pytest.raises(InvalidArgument, match=r"^w\.start: .* is not a time of day HH:MM$"):
        TimeRange.parse(window(bad, "10:00"), "w")


def test_window_without_start_or_end_is_rejected():
    with pytest.raises(InvalidArgument, match=r"^w: needs 'start' and 'end' \(HH:MM\)$"):
        TimeRange.parse({"start": "10:00"}, "w")


def test_days_default_to_every_day():
    assert TimeRange.parse(window("01:00", "02:00"), "w").days == frozenset(range(7))


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (["mon"], {0}),
        (["Monday", "FRIDAY"], {0, 4}),
        ([" sun "], {6}),
        (["sat", "sun", "sat"], {5, 6}),
        (list(DAY_NAMES), set(range(7))),
    ],
)
def test_day_names_short_long_and_any_case(days, expected):
    assert TimeRange.parse(window("01:00", "02:00", days), "w").days == frozenset(expected)


@pytest.mark.parametrize("bad", ["funday", "mo", "1", "", "lundi"])
def test_unknown_day_name_is_rejected(bad):
    with pytest.raises(InvalidArgument, match=rf"^w\.days: '{bad}' is not a day of the week$") as exc:
        TimeRange.parse(window("01:00", "02:00", ["mon", bad]), "w")
    assert exc.value.field == "w.days"


@pytest.mark.parametrize("bad", ["Monkey", "sunshine", "saturnine"])
def test_word_that_merely_starts_like_a_day_is_rejected(bad):
    with pytest.raises(InvalidArgument, match="is not a day of the week"):
        TimeRange.parse(window("01:00", "02:00", [bad]), "w")


def test_empty_day_list_is_rejected():
    with pytest.raises(InvalidArgument, match=r"^w\.days: at least one day is needed$"):
        TimeRange.parse(window("01:00", "02:00", []), "w")


# -- service levels -----------------------------------------------------------------------


def test_no_windows_means_any_minute_of_the_week():
    level = ServiceLevel.parse(rpo="15m")
    assert len(level.allowed_minutes) == MINUTES_PER_WEEK
    assert level.longest_gap_minutes() == 0


@pytest.mark.parametrize("rpo", ["14m", "1m", 60, 899])
def test_rpo_below_15_minutes_is_rejected(rpo):
    with pytest.raises(
        InvalidArgument, match=r"^rpo: .* is shorter than any backup can take \(minimum 15m\)$"
    ):
        ServiceLevel.parse(rpo=rpo)


def test_rpo_of_exactly_15_minutes_is_accepted():
    assert ServiceLevel.parse(rpo=900).rpo_seconds == 900


def test_bad_rpo_is_rejected_as_rpo():
    with pytest.raises(InvalidArgument, match=r"^rpo: 'soon' is not a duration") as exc:
        ServiceLevel.parse(rpo="soon")
    assert exc.value.field == "rpo"


def test_nightly_window_with_rpo_shorter_than_the_daytime_gap_is_rejected():
    with pytest.raises(
        InvalidArgument,
        match=r"^rpo: 6h can never be met: backups are not allowed for 14h in a row between windows$",
    ) as exc:
        ServiceLevel.parse(rpo="6h", windows=[window("20:00", "06:00")])
    assert exc.value.field == "rpo"


def test_nightly_window_with_daily_rpo_is_accepted():
    level = ServiceLevel.parse(rpo="24h", windows=[window("20:00", "06:00")])
    assert level.longest_gap_minutes() == 14 * 60
    assert level.windows == (TimeRange(time(20), time(6)),)


def test_rpo_equal_to_the_longest_gap_is_accepted():
    level = ServiceLevel.parse(rpo="14h", windows=[window("20:00", "06:00")])
    assert level.longest_gap_minutes() == 14 * 60


def test_weekday_only_window_makes_the_weekend_the_longest_gap():
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    # Last window Friday 20:00-24:00, next Monday 20:00: Saturday + Sunday + Monday daytime.
    with pytest.raises(InvalidArgument, match="not allowed for 68h in a row"):
        ServiceLevel.parse(rpo="1d", windows=[window("20:00", "24:00", weekdays)])
    assert ServiceLevel.parse(rpo="68h", windows=[window("20:00", "24:00", weekdays)])


def test_blackout_inside_a_window_leaves_the_rest_of_the_window_allowed():
    level = ServiceLevel.parse(
        rpo="1w",
        windows=[window("00:00", "06:00", ["mon"]), window("00:00", "24:00", ["tue", "wed"])],
        blackouts=[window("02:00", "03:00", ["mon"])],
    )
    allowed = level.allowed_minutes
    assert 1 * 60 in allowed
    assert 2 * 60 not in allowed
    assert 2 * 60 + 59 not in allowed
    assert 3 * 60 in allowed
    assert 5 * 60 + 59 in allowed
    assert 6 * 60 not in allowed


def test_blackout_without_windows_removes_those_hours_from_the_whole_week():
    level = ServiceLevel.parse(rpo="6h", blackouts=[window("00:00", "06:00")])
    assert len(level.allowed_minutes) == 7 * 18 * 60
    assert level.longest_gap_minutes() == 6 * 60
    with pytest.raises(InvalidArgument, match="not allowed for 6h in a row"):
        ServiceLevel.parse(rpo="5h", blackouts=[window("00:00", "06:00")])


def test_blackout_covering_every_window_is_rejected():
    with pytest.raises(
        InvalidArgument, match=r"^blackouts: the blackout hours cover every backup window$"
    ) as exc:
        ServiceLevel.parse(
            rpo="1w",
            windows=[window("22:00", "02:00"), window("12:00", "13:00", ["sat"])],
            blackouts=[window("21:00", "03:00"), window("11:00", "14:00")],
        )
    assert exc.value.field == "blackouts"


def test_blackout_outside_every_window_is_refused_as_blocking_nothing():
    with pytest.raises(
        InvalidArgument, match=r"^blackouts\[1\]: 12:00-13:00 lies outside every window"
    ) as exc:
        ServiceLevel.parse(
            rpo="1d",
            windows=[window("20:00", "06:00")],
            blackouts=[window("22:00", "23:00"), window("12:00", "13:00")],
        )
    assert exc.value.field == "blackouts"
    # Touching a window by one minute is enough to mean something.
    assert ServiceLevel.parse(
        rpo="1d", windows=[window("20:00", "06:00")], blackouts=[window("05:59", "08:00")]
    )


def test_blackout_covering_the_whole_week_without_windows_is_rejected():
    with pytest.raises(InvalidArgument, match="blackout hours cover every backup window"):
        ServiceLevel.parse(rpo="1w", blackouts=[window("00:00", "24:00")])


def test_bad_window_and_bad_blackout_name_their_position():
    with pytest.raises(InvalidArgument, match=r"^windows\[1\]\.end: "):
        ServiceLevel.parse(rpo="1d", windows=[window("01:00", "02:00"), window("01:00", "99:00")])
    with pytest.raises(InvalidArgument, match=r"^blackouts\[0\]\.days: "):
        ServiceLevel.parse(rpo="1d", blackouts=[window("01:00", "02:00", ["someday"])])


def test_to_dict_round_trips():
    level = ServiceLevel.parse(
        rpo="4d12h",
        timezone="Europe/Berlin",
        windows=[window("20:00", "06:00", ["mon", "fri"]), window("12:00", "24:00", ["sat", "sun"])],
        blackouts=[window("23:00", "00:30", ["fri"])],
    )
    raw = level.to_dict()
    assert raw == {
        "rpo_seconds": 108 * 3600,
        "timezone": "Europe/Berlin",
        "windows": [
            {"start": "20:00", "end": "06:00", "days": ["mon", "fri"]},
            {"start": "12:00", "end": "24:00", "days": ["sat", "sun"]},
        ],
        "blackouts": [{"start": "23:00", "end": "00:30", "days": ["fri"]}],
    }
    again = reparse(level)
    assert again == level
    assert again.allowed_minutes == level.allowed_minutes


# -- property: longest gap against a brute force ------------------------------------------


def _minute(clock: str) -> int:
    hour, minute = clock.split(":")
    return int(hour) * 60 + int(minute)


def _brute_force_allowed(windows: list[dict[str, Any]], blackouts: list[dict[str, Any]]) -> list[bool]:
    allowed = [not windows] * MINUTES_PER_WEEK

    def mark(raw: dict[str, Any], value: bool) -> None:
        start, end = _minute(raw["start"]), _minute(raw["end"])
        length = end - start if end > start else end - start + MINUTES_PER_DAY
        days = [DAY_NAMES.index(d) for d in raw["days"]] if "days" in raw else range(7)
        for day in days:
            for k in range(length):
                allowed[(day * MINUTES_PER_DAY + start + k) % MINUTES_PER_WEEK] = value

    for raw in windows:
        mark(raw, True)
    for raw in blackouts:
        mark(raw, False)
    return allowed


def _longest_circular_false_run(flags: list[bool]) -> int:
    if all(flags):
        return 0
    longest = run = 0
    for flag in flags + flags:
        run = 0 if flag else run + 1
        longest = max(longest, run)
    return min(longest, len(flags))


_starts = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
_ends = st.one_of(_starts, st.just("24:00"))
_days = st.one_of(st.none(), st.lists(st.sampled_from(DAY_NAMES), min_size=1, max_size=7, unique=True))


@st.composite
def _ranges(draw: st.DrawFn) -> dict[str, Any]:
    start, end = draw(_starts), draw(_ends)
    assume(start != end)
    return window(start, end, draw(_days))


@settings(max_examples=150, deadline=None)
@given(windows=st.lists(_ranges(), max_size=3), blackouts=st.lists(_ranges(), max_size=3))
def test_longest_gap_matches_brute_force(windows, blackouts):
    expected_allowed = _brute_force_allowed(windows, blackouts)
    if not any(expected_allowed):
        with pytest.raises(InvalidArgument, match="blackout hours cover every backup window"):
            ServiceLevel.parse(rpo="1w", windows=windows, blackouts=blackouts)
        return
    in_windows = _brute_force_allowed(windows, [])
    if any(_brute_force_allowed(windows, [b]) == in_windows for b in blackouts):
        with pytest.raises(InvalidArgument, match="lies outside every window"):
            ServiceLevel.parse(rpo="1w", windows=windows, blackouts=blackouts)
        return
    level = ServiceLevel.parse(rpo="1w", windows=windows, blackouts=blackouts)
    assert level.allowed_minutes == {m for m, ok in enumerate(expected_allowed) if ok}
    assert level.longest_gap_minutes() == _longest_circular_false_run(expected_allowed)
    assert reparse(level) == level
