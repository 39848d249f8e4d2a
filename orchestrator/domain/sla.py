"""The service level an offering sells: RPO, backup windows, blackout hours, time zone.

Plain value types, validated on construction so a bad offering never reaches the
database. The planner works on these same types.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.domain.errors import InvalidArgument

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ALL_DAYS = frozenset(range(7))
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
# Below this no real backup finishes, so an RPO under it can never be met.
MIN_RPO_SECONDS = 15 * 60
# Longer than any retention anyone sells; also keeps values inside a 64-bit column.
MAX_DURATION_SECONDS = 10 * 366 * 86400

_DURATION = re.compile(r"(\d+)\s*([smhdw])", re.ASCII)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int, *, field_name: str) -> int:
    """Seconds from an int or a string such as ``90m``, ``6h``, ``1d12h``."""
    if isinstance(value, bool):
        raise InvalidArgument(f"{field_name}: expected a duration, got {value!r}", field=field_name)
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip().lower()
        if text.isascii() and text.isdigit():
            seconds = int(text)
        else:
            parts = _DURATION.findall(text)
            if not parts or _DURATION.sub("", text).strip():
                raise InvalidArgument(
                    f"{field_name}: {value!r} is not a duration (use e.g. 30m, 6h, 1d)",
                    field=field_name,
                )
            seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise InvalidArgument(f"{field_name}: must be positive, got {value!r}", field=field_name)
    if seconds > MAX_DURATION_SECONDS:
        raise InvalidArgument(f"{field_name}: {value!r} is longer than ten years", field=field_name)
    return seconds


def format_duration(seconds: int) -> str:
    if seconds == 0:
        return "0m"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_timezone(name: str, *, field_name: str = "timezone") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: names such as "Europe" are directories of the zone database.
        raise InvalidArgument(f"{field_name}: unknown time zone {name!r}", field=field_name) from None


def _parse_clock(value: str, field_name: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip(), re.ASCII)
    if not match or int(match[1]) > 24 or int(match[2]) > 59 or (int(match[1]) == 24 and int(match[2])):
        raise InvalidArgument(f"{field_name}: {value!r} is not a time of day HH:MM", field=field_name)
    hour, minute = int(match[1]), int(match[2])
    return time.max if hour == 24 else time(hour, minute)


def _parse_days(value: Iterable[str] | None, field_name: str) -> frozenset[int]:
    if value is None:
        return ALL_DAYS
    days = set()
    for item in value:
        key = str(item).strip().lower()
        key = key[:3] if key in _FULL_DAY_NAMES else key
        if key not in DAY_NAMES:
            raise InvalidArgument(f"{field_name}: {item!r} is not a day of the week", field=field_name)
        days.add(DAY_NAMES.index(key))
    if not days:
        raise InvalidArgument(f"{field_name}: at least one day is needed", field=field_name)
    return frozenset(days)


def _minute_of_day(t: time) -> int:
    return MINUTES_PER_DAY if t == time.max else t.hour * 60 + t.minute


@dataclass(frozen=True)
class TimeRange:
    """A daily span of local time starting on the given weekdays (0 = Monday).

    ``end <= start`` means the span crosses midnight and ends on the next day.
    """

    start: time
    end: time
    days: frozenset[int] = ALL_DAYS

    @classmethod
    def parse(cls, raw: Mapping[str, Any], field_name: str) -> TimeRange:
        if not isinstance(raw, Mapping) or "start" not in raw or "end" not in raw:
            raise InvalidArgument(f"{field_name}: needs 'start' and 'end' (HH:MM)", field=field_name)
        start = _parse_clock(raw["start"], f"{field_name}.start")
        end = _parse_clock(raw["end"], f"{field_name}.end")
        if start == time.max:
            raise InvalidArgument(f"{field_name}.start: 24:00 ends a day; start at 00:00", field=field_name)
        if start == end:
            raise InvalidArgument(
                f"{field_name}: window of zero length ({raw['start']}-{raw['end']})", field=field_name
            )
        return cls(start, end, _parse_days(raw.get("days"), f"{field_name}.days"))

    @property
    def minutes(self) -> int:
        length = _minute_of_day(self.end) - _minute_of_day(self.start)
        return length if length > 0 else length + MINUTES_PER_DAY

    def week_minutes(self) -> Iterable[int]:
        """Minutes of the week (Monday 00:00 = 0) that this range covers."""
        for day in self.days:
            begin = day * MINUTES_PER_DAY + _minute_of_day(self.start)
            for m in range(begin, begin + self.minutes):
                yield m % MINUTES_PER_WEEK

    def to_dict(self) -> dict[str, Any]:
        end = "24:00" if self.end == time.max else self.end.strftime("%H:%M")
        out: dict[str, Any] = {"start": self.start.strftime("%H:%M"), "end": end}
        if self.days != ALL_DAYS:
            out["days"] = [DAY_NAMES[d] for d in sorted(self.days)]
        return out


@dataclass(frozen=True)
class ServiceLevel:
    """RPO + where backups may run. No windows means any time of day."""

    rpo_seconds: int
    timezone: str = "UTC"
    windows: tuple[TimeRange, ...] = ()
    blackouts: tuple[TimeRange, ...] = ()
    allowed_minutes: frozenset[int] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def parse(
        cls,
        *,
        rpo: str | int,
        timezone: str = "UTC",
        windows: Iterable[Mapping[str, Any]] | None = None,
        blackouts: Iterable[Mapping[str, Any]] | None = None,
    ) -> ServiceLevel:
        rpo_seconds = parse_duration(rpo, field_name="rpo")
        if rpo_seconds < MIN_RPO_SECONDS:
            raise InvalidArgument(
                f"rpo: {format_duration(rpo_seconds)} is shorter than any backup can take "
                f"(minimum {format_duration(MIN_RPO_SECONDS)})",
                field="rpo",
            )
        parse_timezone(timezone)
        win = tuple(TimeRange.parse(w, f"windows[{i}]") for i, w in enumerate(windows or ()))
        black = tuple(TimeRange.parse(b, f"blackouts[{i}]") for i, b in enumerate(blackouts or ()))
        allowed = set(range(MINUTES_PER_WEEK)) if not win else {m for w in win for m in w.week_minutes()}
        allowed_without_blackouts = allowed - {m for b in black for m in b.week_minutes()}
        if not allowed_without_blackouts:
            raise InvalidArgument(
                "blackouts: the blackout hours cover every backup window", field="blackouts"
            )
        for i, blackout in enumerate(black):
            # A blackout that no window reaches blocks nothing: most likely a typo in a time.
            if allowed.isdisjoint(blackout.week_minutes()):
                span = "-".join(blackout.to_dict()[k] for k in ("start", "end"))
                raise InvalidArgument(
                    f"blackouts[{i}]: {span} lies outside every window, so it would block nothing",
                    field="blackouts",
                )
        level = cls(rpo_seconds, timezone, win, black, frozenset(allowed_without_blackouts))
        gap = level.longest_gap_minutes()
        # Starts are continuous in time: across a gap of N blocked minutes two starts are
        # as little as N minutes apart, so an RPO of exactly N can be met.
        if gap * 60 > rpo_seconds:
            raise InvalidArgument(
                f"rpo: {format_duration(rpo_seconds)} can never be met: backups are not allowed "
                f"for {format_duration(gap * 60)} in a row between windows",
                field="rpo",
            )
        return level

    def longest_gap_minutes(self) -> int:
        """Longest stretch of the week (circular) in which no backup may start."""
        if len(self.allowed_minutes) == MINUTES_PER_WEEK:
            return 0
        ordered = sorted(self.allowed_minutes)
        gaps = [b - a - 1 for a, b in itertools.pairwise(ordered)]
        gaps.append(ordered[0] + MINUTES_PER_WEEK - ordered[-1] - 1)
        return max(gaps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rpo_seconds": self.rpo_seconds,
            "timezone": self.timezone,
            "windows": [w.to_dict() for w in self.windows],
            "blackouts": [b.to_dict() for b in self.blackouts],
        }
