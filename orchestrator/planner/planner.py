"""The SLA planner: a start time, deadline and queue for every backup due within a horizon.

How a VM's start is chosen:

1. Each offering's windows (minus blackouts) are cut into *segments* no longer than its
   RPO, whose starts and ends are also at most one RPO apart across the gap between two
   windows (``cut_segments``: a 12 h RPO on 18:00-08:00 gives 18:00-20:00 and 06:00-08:00,
   the only times that bridge the 10 h gap); every VM has a stable, hashed slot in each
   segment (like a hashed cron slot), spread over the segment's open time, so nothing
   changed means the same time every night and "was this run late?" stays a fair question.
2. VMs are taken earliest deadline first (``last_good + RPO``), the deadline counted as the
   latest start from which the job still fits in an open part (a long job due just before
   a blackout goes early). A VM gets the latest segment whose slot is still on time; if the
   slot is full (host or pool concurrency, pool bandwidth) the nearest free start inside
   the window and before the deadline is taken, else an earlier segment, else the first
   free start after the deadline — which is reported as late.
3. A job always fits inside one open part of a window (it must finish before the window
   closes or a blackout starts); one that never fits is reported as unplaceable.
4. Each job is followed by room for it to overrun its estimate (``OVERRUN_HOLD``), which
   later jobs keep clear of where capacity allows and use only where they would otherwise
   be late: a job planned right at its deadline does not queue behind a neighbour's overrun.
5. Room to retry. Where an offering's RPO is longer than its windows make the spacing of
   its backups (an RPO of 16 h on an 18:00-08:00 window: two backups a night, 12 h apart),
   the slack is kept rather than spent: segments are cut and slots chosen against
   ``RPO - retry room`` (``retry_room``: the most slack that costs no extra backup), so each
   backup starts one retry room before its deadline, and its slot leaves room in the window
   for a failed attempt to run again (twice, where the room is long enough). Where the RPO
   equals the spacing (12 h on that window, 1 d on a nightly one) there is no such room: a
   failed backup misses its RPO, and the capacity report says so.

Hashed slots spread the load evenly over each window, which keeps the peak low and the
capacity nobody was given free for retries; earliest-deadline-first decides who waits
when there is not enough capacity for everyone.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np

from orchestrator.domain.sla import ServiceLevel
from orchestrator.planner.model import VM, FixedJob, Host, Offering, Plan, PlannedJob, Pool, Unplaceable
from orchestrator.planner.timeline import MINUTE, Timeline
from orchestrator.planner.timemath import window_plans

# Late placements may land this far past the horizon.
OVERRUN = timedelta(days=2)
# How many earlier segments to try before a job is placed late.
EARLIER_SEGMENTS = 2
# Backups run over their estimate. Each job's reservation (host and pool slots, pool
# bandwidth) is followed by room for an overrun of OVERRUN_HOLD of its estimate (at least a
# minute), so that the next job planned in its slot does not queue behind it: a job planned
# right at its deadline would miss it by the wait. A job is placed clear of the room kept for
# others where capacity allows (with its own room, else with OVERRUN_MIN of it), and into
# that room only where it would otherwise be late: room for overruns never costs a deadline.
OVERRUN_HOLD = 1.0
OVERRUN_MIN = 0.15
# How soon a failed backup runs again: the re-plan's period plus the job's own backoff.
RETRY_AFTER = timedelta(minutes=15)


def hold_minutes(d: int) -> tuple[int, ...]:
    """The reservations tried for a job of ``d`` estimated minutes, longest first."""
    return (*dict.fromkeys(d + max(1, math.ceil(d * f)) for f in (OVERRUN_HOLD, OVERRUN_MIN)), d)


def slot_fraction(vm_id: str) -> float:
    """A stable number in [0, 1) per VM: where in each segment its slot lies."""
    digest = hashlib.blake2b(vm_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class _Segment:
    start: int  # minute index
    length: int
    window: int  # index into the offering's windows


@dataclass
class _Calendar:
    """An offering's windows as minute indices on the plan's timeline."""

    zone: ZoneInfo
    rpo_minutes: int
    retry_room: int  # minutes kept before each deadline for a retry (``retry_room``)
    windows: list[tuple[int, int]]  # whole occurrence, for reasons
    parts: list[list[tuple[int, int]]]  # open parts per window
    segments: list[_Segment]
    segment_starts: list[int]
    all_parts: list[tuple[int, int]]
    part_starts: list[int]
    longest_part: int

    def open_between(self, lo: int, hi: int, d: int) -> bool:
        """Whether a job of ``d`` minutes can start in [lo, hi] and finish in an open part."""
        i = bisect_right(self.part_starts, hi) - 1
        while i >= 0 and self.all_parts[i][1] - d >= lo:
            a, b = self.all_parts[i]
            if max(a, lo) <= min(b - d, hi):
                return True
            i -= 1
        return False

    def latest_start(self, deadline: int, d: int) -> int:
        """The latest start by ``deadline`` from which ``d`` minutes fit in one open part."""
        if d <= self.longest_part:
            i = bisect_right(self.part_starts, deadline) - 1
            while i >= 0:
                a, b = self.all_parts[i]
                if min(deadline, b - d) >= a:
                    return min(deadline, b - d)
                i -= 1
        return deadline


def cut_segments(windows: Sequence[tuple[int, int]], rpo: int) -> list[tuple[int, int, int]]:
    """Cut windows (sorted ``(start, end)`` pairs) into segments ``(start, end, window)``.

    A VM's slots sit at the same fraction of every segment, so two consecutive slots are at
    most one RPO apart as long as consecutive segments *start* and *end* at most one RPO
    apart — across the gap between two windows too. Each window is cut evenly into the
    fewest segments no longer than the RPO; then its first segment is cut short to end
    within one RPO of the previous window's end, and its last to start within one RPO of
    the next window's start. That can leave a hole in the middle of a long window (an RPO
    of 12 h on a 18:00-08:00 window gives 18:00-20:00 and 06:00-08:00: the only times from
    which the 10 h gap can be bridged); if it breaks the spacing, more segments are cut.
    """
    out: list[tuple[int, int, int]] = []
    for w, (a, b) in enumerate(windows):
        head = windows[w - 1][1] + rpo if w > 0 else b
        tail = windows[w + 1][0] - rpo if w + 1 < len(windows) else a
        fewest = max(1, math.ceil((b - a) / rpo))
        for count in range(fewest, fewest + 8):
            cuts = [a + round(i * (b - a) / count) for i in range(count + 1)]
            segs = [[cuts[i], cuts[i + 1]] for i in range(count)]
            # One segment cut at both ends can be cut to nothing (a 16 h RPO on 18:00-08:00:
            # no single time of night bridges both gaps): then it takes two.
            whole = count > 1 or max(segs[0][0], tail) <= min(segs[0][1], head)
            segs[0][1] = max(segs[0][0], min(segs[0][1], head))
            segs[-1][0] = min(segs[-1][1], max(segs[-1][0], tail))
            if whole and all(y[0] - x[0] <= rpo and y[1] - x[1] <= rpo for x, y in pairwise(segs)):
                break
        out.extend((s, e, w) for s, e in segs)
    return out


def _backups_needed(windows: Sequence[tuple[int, int]], rpo: int, room: int) -> int | None:
    """How many backups a VM takes from the second window to the last when each is at most
    ``rpo - room`` after the one before (slots at the start, middle and end of their
    segments; the most of the three); None if that spacing cannot be kept. The first window
    is left out: the calendar starts in it, and may cut it short."""
    segments = cut_segments(windows, rpo - room)
    first, limit = windows[1 if len(windows) > 2 else 0][0], windows[-1][0]
    most = 0
    for fraction in (0.0, 0.5, 1.0):
        slots = [s + int(fraction * (e - s)) for s, e, _ in segments]
        at, count = slots[bisect_left(slots, first) if slots[-1] >= first else 0], 0
        while True:
            i = bisect_right(slots, at + rpo - room) - 1
            if slots[i] <= at:
                if i + 1 < len(slots):
                    return None  # a gap too wide to bridge
                break
            if slots[i] > limit:
                break
            at, count = slots[i], count + 1
        most = max(most, count)
    return most


def retry_room(windows: Sequence[tuple[int, int]], rpo: int) -> int:
    """The most minutes before each deadline that can be kept free for a retry without a
    single backup more than spacing them a full RPO apart would take."""
    if len(windows) < 2:
        return 0
    base = _backups_needed(windows, rpo, 0)
    gap = max(b[0] - a[1] for a, b in pairwise(windows))
    # The count only grows with the room: bisect for the last room that keeps it.
    lo, hi = 0, max(0, rpo - max(gap, 1))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        needed = _backups_needed(windows, rpo, mid)
        if base is not None and needed is not None and needed <= base:
            lo = mid
        else:
            hi = mid - 1
    return lo


def offering_retry_room(level: ServiceLevel, start: datetime) -> int:
    """``retry_room`` of an offering, in minutes, judged over two weeks (or four RPOs) from
    ``start``, whatever the horizon: enough backups to tell one spacing from another, and
    every weekday's windows."""
    span = max(timedelta(days=14), 4 * timedelta(seconds=level.rpo_seconds))
    windows = [
        ((wp.window.start - start) // MINUTE, (wp.window.end - start) // MINUTE)
        for wp in window_plans(level, start, start + span)
    ]
    return retry_room(windows, max(1, level.rpo_seconds // 60))


def _calendar(offering: Offering, timeline: Timeline, end: datetime) -> _Calendar:
    level = offering.level
    rpo_minutes = max(1, level.rpo_seconds // 60)
    windows, parts = [], []
    for wp in window_plans(level, timeline.start - timedelta(seconds=level.rpo_seconds), end):
        windows.append((timeline.index(wp.window.start), timeline.index(wp.window.end)))
        parts.append([(timeline.index(p.start), timeline.index(p.end)) for p in wp.open])
    room = offering_retry_room(level, timeline.start)
    segments = [_Segment(s, e - s, w) for s, e, w in cut_segments(windows, rpo_minutes - room)]
    flat = [p for ps in parts for p in ps]
    return _Calendar(
        zone=ZoneInfo(level.timezone),
        rpo_minutes=rpo_minutes,
        retry_room=room,
        windows=windows,
        parts=parts,
        segments=segments,
        segment_starts=[s.start for s in segments],
        all_parts=flat,
        part_starts=[a for a, _ in flat],
        longest_part=max((b - a for a, b in flat), default=0),
    )


def _slot(seg: _Segment, parts: Sequence[tuple[int, int]], fraction: float, d: int) -> int:
    """The start at ``fraction`` of the segment's open time where a job of ``d`` minutes fits.

    Spread over open time only, so slots never land in a blackout (to be pushed to its edge,
    all together).
    """
    end = seg.start + seg.length
    rooms = [(max(a, seg.start), min(b - d, end)) for a, b in parts]
    rooms = [(a, b) for a, b in rooms if a <= b]
    if not rooms:
        return seg.start + int(fraction * max(0, seg.length - d))
    x = fraction * sum(b - a for a, b in rooms)
    for a, b in rooms:
        if x <= b - a:
            return a + int(x)
        x -= b - a
    return rooms[-1][1]


_BIAS = 1 << 40  # minute indices are far smaller
_INDEX = (1 << 32) - 1


def _pack(key: int, deadline: int, i: int) -> int:
    """Heap order: the key, then the deadline, then the VM's index (which the low bits keep)."""
    key = min(max(key, -_BIAS + 1), _BIAS - 1)
    deadline = min(max(deadline, -_BIAS + 1), _BIAS - 1)
    return ((key + _BIAS) << 113) | ((deadline + _BIAS) << 64) | i


class Planner:
    def __init__(
        self,
        hosts: Iterable[Host],
        pools: Iterable[Pool],
        offerings: Iterable[Offering],
        now: datetime,
        horizon: timedelta = timedelta(hours=24),
        retry_after: timedelta = RETRY_AFTER,
    ) -> None:
        self.hosts = {h.id: h for h in hosts}
        self.retry_after = max(1, math.ceil(retry_after / MINUTE))
        self.pools = {p.id: p for p in pools}
        self.offerings = {o.id: o for o in offerings}
        # UTC, so minutes are real minutes across clock changes; rounded up, so nothing starts
        # before now.
        utc = now.astimezone(UTC)
        start = utc.replace(second=0, microsecond=0)
        if start < utc:
            start += MINUTE
        self.end = start + horizon
        self.timeline = Timeline(
            start, int((horizon + OVERRUN) // MINUTE), self.hosts.values(), self.pools.values()
        )
        self.calendars = {
            oid: _calendar(o, self.timeline, self.end + OVERRUN) for oid, o in self.offerings.items()
        }
        self._local_names: dict[tuple[int, str], str] = {}

    # -- shapes of one job ----------------------------------------------------------------
    def _duration_and_rates(self, vm: VM) -> tuple[int, dict[str, float]]:
        speed = vm.throughput
        for pool_id in vm.pool_bytes:
            bandwidth = self.pools[pool_id].bandwidth if pool_id in self.pools else None
            if bandwidth:
                # The reservation below adds the overrun allowance: keep it within the pool.
                speed = min(speed, bandwidth / (1 + OVERRUN_MIN))
        minutes = max(1, math.ceil(vm.bytes / speed / 60)) if vm.bytes else 1
        # The bandwidth a job is expected to take, overrun included (it runs longer at the same rate).
        rates = {p: b / (minutes * 60) * (1 + OVERRUN_MIN) for p, b in vm.pool_bytes.items()}
        return minutes, rates

    def reserve_fixed(self, jobs: Iterable[FixedJob]) -> None:
        for job in jobs:
            start = self.timeline.index(job.start)
            # Rounded up: a job ending at 12:30:30 still holds the minute from 12:30.
            end = -(-(job.end - self.timeline.start) // MINUTE)
            length = max(1, end - start)
            rates = {p: b / (length * 60) for p, b in job.pool_bytes.items()}
            self.timeline.reserve(job.host_id, rates, start, length)

    # -- placement -------------------------------------------------------------------------
    def _nearest(
        self,
        vm: VM,
        rates: dict[str, float],
        parts: Sequence[tuple[int, int]],
        lo: int,
        hi: int,
        d: int,
        hold: int,
        slot: int,
    ) -> int | None:
        """The feasible start nearest ``slot`` in [lo, hi]: the job fits a part, and ``hold``
        minutes from it fit the capacity left — with the room kept for other jobs' overruns
        when ``hold`` is longer than the job (room to overrun itself), without when not."""
        timeline, room = self.timeline, hold > d
        for a, b in parts:  # most jobs get their very slot: check it alone first
            if max(a, lo, 0) <= slot <= min(b - d, hi, timeline.minutes - hold):
                if not timeline.blocked(vm.host_id, rates, slot, slot + hold, room).any():
                    return slot
                break
        best: int | None = None
        for a, b in parts:
            first, last = max(a, lo), min(b - d, hi)
            if first > last:
                continue
            starts = timeline.feasible_starts(vm.host_id, rates, first, last, hold, room)
            if starts.size == 0:
                continue
            i = int(np.searchsorted(starts, slot))
            for j in (i, i - 1):
                if 0 <= j < starts.size and (best is None or abs(int(starts[j]) - slot) < abs(best - slot)):
                    best = int(starts[j])
        return best

    def _place(
        self, vm: VM, deadline: int, lower: int, d: int, rates: dict[str, float], fresh: bool = False
    ) -> tuple[int, str, bool] | str:
        """(start, reason, late) or why the job cannot be placed."""
        cal = self.calendars[vm.offering_id]
        if d > cal.longest_part:
            return (
                f"a backup takes ~{d} min, longer than any open part of its windows "
                f"({cal.longest_part} min): it can never finish inside one"
            )
        soon = False
        if cal.retry_room:
            # Aim one retry room early, the slot leaving room in its window for two retries
            # (each a failed attempt and the wait, then the attempt that works) as far as the
            # retry room goes; without room only where capacity leaves nothing earlier.
            aim = deadline - cal.retry_room
            span = d + min(2 * (d + self.retry_after), cal.retry_room)
            placed = self._on_time(vm, cal, aim, lower, d, span, rates, fresh)
            if placed is not None:
                return placed
            # Already inside its retry room (its backup failed or ran late, or it joined the
            # offering close to a deadline): as soon as it can, so that one more failure
            # still leaves time — not at its slot by the deadline.
            soon = not cal.open_between(max(lower, 0), aim, d)
        placed = self._on_time(vm, cal, deadline, lower, d, d, rates, fresh, soon)
        if placed is not None:
            return placed
        for a, b in cal.all_parts:
            if b - d < max(lower, deadline + 1):
                continue
            starts = self.timeline.feasible_starts(vm.host_id, rates, max(a, lower, deadline + 1), b - d, d)
            if starts.size:
                start = int(starts[0])
                return start, f"late by {start - deadline} min: no capacity before its deadline", True
        return "no capacity in any window before the plan's end"

    def _on_time(
        self,
        vm: VM,
        cal: _Calendar,
        aim: int,
        lower: int,
        d: int,
        span: int,
        rates: dict[str, float],
        fresh: bool,
        soon: bool = False,
    ) -> tuple[int, str, bool] | None:
        """The start by ``aim`` for a job of ``d`` minutes whose slot leaves ``span`` minutes
        in its open part (or, ``soon``, the earliest), or None if there is no capacity for it."""
        fraction = slot_fraction(vm.id)
        k = bisect_right(cal.segment_starts, aim) - 1
        tried = 0
        while k >= 0 and tried <= EARLIER_SEGMENTS:
            seg = cal.segments[k]
            slot = _slot(seg, cal.parts[seg.window], fraction, span)
            if slot > aim and fresh:
                # VMs never backed up share one deadline (now + RPO): clamped to it they would
                # all start on the same minute. Their slot in the previous segment, if still
                # ahead, else a hashed start in what is still on time, spreads them instead.
                earlier = cal.segments[k - 1] if k > 0 else None
                if earlier and _slot(earlier, cal.parts[earlier.window], fraction, span) >= max(lower, 0):
                    k -= 1
                    continue
                low = max(lower, seg.start, 0)
                slot = low + int(fraction * max(0, aim - low)) if aim >= low else aim
            # Past the deadline the slot is out of reach: aim as close to it as still on time.
            slot = min(slot, aim)
            if soon:
                slot = max(lower, seg.start, 0)
            elif slot < lower:
                # The VM's previous job already sits past this slot: go as late as still on
                # time, so the job bridges as much as it can (never a chain of back-to-back runs).
                slot = aim
            k -= 1
            if seg.start + seg.length <= lower:
                break
            tried += 1
            # With room for an overrun if there is capacity for it, else just the estimate.
            for hold in hold_minutes(d):
                start = self._nearest(vm, rates, cal.parts[seg.window], lower, aim, d, hold, slot)
                if start is not None:
                    if soon:
                        how = "as soon as it can, inside its retry room,"
                    elif start == slot:
                        how = "at its slot"
                    else:
                        how = f"{start - slot:+d} min from its slot (capacity)"
                    return start, f"{how} in the window of {self._local(seg.start, cal)}", False
        return None

    def _local(self, index: int, cal: _Calendar) -> str:
        key = (index, cal.zone.key)
        text = self._local_names.get(key)
        if text is None:
            text = self._local_names[key] = (
                self.timeline.at(index).astimezone(cal.zone).strftime("%Y-%m-%d %H:%M %Z")
            )
        return text

    def plan(self, vms: Sequence[VM], fixed: Iterable[FixedJob] = ()) -> Plan:
        self.reserve_fixed(fixed)
        result = Plan()
        end_index = self.timeline.index(self.end)
        # Earliest deadline first, where a job's deadline is the latest start from which it
        # still fits in an open part before it: a long job due just before a blackout must
        # start well before its nominal deadline and goes first.
        # The heap holds one int per VM: (key, deadline, VM index) packed, compared in one go.
        heap: list[int] = []
        shapes: dict[int, tuple[int, dict[str, float], str]] = {}
        deadlines: dict[int, int] = {}
        lowers: dict[int, int] = {}
        rpos = {k: timedelta(seconds=o.level.rpo_seconds) for k, o in self.offerings.items()}

        def push(key: int, deadline: int, i: int, lower: int) -> None:
            deadlines[i], lowers[i] = deadline, lower
            heap.append(_pack(key, deadline, i))

        for i, vm in enumerate(vms):
            # A VM never backed up gets its first restore point within one RPO of now.
            last_good = vm.last_good.astimezone(UTC) if vm.last_good else self.timeline.start
            deadline = self.timeline.index(last_good + rpos[vm.offering_id])
            if deadline <= end_index:
                d, rates = self._duration_and_rates(vm)
                shapes[i] = (d, rates, vm.primary_pool)
                push(self.calendars[vm.offering_id].latest_start(deadline, d), deadline, i, 0)
        heapq.heapify(heap)
        order: list[tuple[int, str, PlannedJob]] = []
        while heap:
            i = heapq.heappop(heap) & _INDEX
            deadline, lower, vm = deadlines[i], lowers[i], vms[i]
            d, rates, pool_id = shapes[i]
            placed = self._place(vm, deadline, lower, d, rates, fresh=vm.last_good is None and lower == 0)
            if isinstance(placed, str):
                result.unplaceable.append(Unplaceable(vm.id, placed))
                continue
            start, reason, late = placed
            self.timeline.reserve(vm.host_id, rates, start, d, hold_minutes(d)[0])
            job = PlannedJob(
                vm_id=vm.id,
                offering_id=vm.offering_id,
                start=self.timeline.at(start),
                end=self.timeline.at(start + d),
                deadline=self.timeline.at(deadline),
                pool_id=pool_id,
                reason=reason,
                late=late,
            )
            order.append((start, vm.id, job))
            cal = self.calendars[vm.offering_id]
            following = start + cal.rpo_minutes
            if following <= end_index:
                deadlines[i], lowers[i] = following, start + d
                heapq.heappush(heap, _pack(cal.latest_start(following, d), following, i))
        order.sort(key=lambda item: (item[0], item[1]))
        result.jobs = [job for _, _, job in order]
        return result


def plan(
    vms: Sequence[VM],
    hosts: Iterable[Host],
    pools: Iterable[Pool],
    offerings: Iterable[Offering],
    now: datetime,
    horizon: timedelta = timedelta(hours=24),
    fixed: Iterable[FixedJob] = (),
) -> Plan:
    """Plan every backup due within ``horizon`` of ``now``; see the module docstring."""
    return Planner(hosts, pools, offerings, now, horizon).plan(vms, fixed)
