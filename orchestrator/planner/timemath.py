"""Where backups may run, in UTC instants: an offering's windows minus its blackouts.

Windows are defined on the local wall clock of the offering's time zone and expanded
per local calendar day, so on the days clocks change a window occurs exactly once — it is
an hour shorter or longer in real time, never lost and never doubled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from orchestrator.domain.sla import ServiceLevel, TimeRange


@dataclass(frozen=True, order=True)
class Interval:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant of a wall time: its first occurrence when the autumn change repeats it,
    the moment the clocks jump when the spring change skips it (so a window starting or
    ending in the gap keeps the part of it that exists)."""
    if at == time.max:
        day, at = day + timedelta(days=1), time.min
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if second >= first:
        return first
    # Skipped: ``second`` (after-change offset) lies before the jump, ``first`` after it.
    instant = second
    before = second.astimezone(zone).utcoffset()
    while instant < first and instant.astimezone(zone).utcoffset() == before:
        instant += timedelta(minutes=1)
    return instant


def occurrences(
    ranges: Iterable[TimeRange], zone: ZoneInfo, start: datetime, end: datetime
) -> list[Interval]:
    """Every occurrence of the ranges that overlaps [start, end), in UTC, sorted and merged."""
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    found = []
    for rng in ranges:
        day = first
        while day <= last:
            if day.weekday() in rng.days:
                begin = _local(day, rng.start, zone)
                end_day = day if rng.end > rng.start or rng.end == time.max else day + timedelta(days=1)
                finish = _local(end_day, rng.end, zone)
                if finish > start and begin < end and finish > begin:
                    found.append(Interval(begin, finish))
            day += timedelta(days=1)
    return merge(found)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Overlapping intervals become one; touching ones stay apart (one window per day)."""
    out: list[Interval] = []
    for iv in sorted(intervals):
        if out and iv.start < out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


def subtract(base: list[Interval], holes: list[Interval]) -> list[Interval]:
    """``base`` minus ``holes``; both sorted and merged."""
    out: list[Interval] = []
    j = 0
    for iv in base:
        cursor = iv.start
        while j < len(holes) and holes[j].end <= cursor:
            j += 1
        k = j
        while k < len(holes) and holes[k].start < iv.end:
            if holes[k].start > cursor:
                out.append(Interval(cursor, holes[k].start))
            cursor = max(cursor, holes[k].end)
            k += 1
        if cursor < iv.end:
            out.append(Interval(cursor, iv.end))
    return out


@dataclass(frozen=True)
class WindowPlan:
    """One window occurrence and the parts of it that blackouts leave open."""

    window: Interval
    open: tuple[Interval, ...]


def window_plans(level: ServiceLevel, start: datetime, end: datetime) -> list[WindowPlan]:
    """Window occurrences overlapping [start, end) with their open parts (blackouts removed).

    An offering without windows has one all-day window per local day, so hashed slots still
    spread its VMs over the day.
    """
    zone = ZoneInfo(level.timezone)
    windows = level.windows or (TimeRange(time.min, time.max),)
    blackouts = occurrences(level.blackouts, zone, start - timedelta(days=1), end + timedelta(days=1))
    plans = []
    for occurrence in occurrences(windows, zone, start, end):
        open_parts = subtract([occurrence], blackouts)
        if open_parts:
            plans.append(WindowPlan(occurrence, tuple(open_parts)))
    return plans
