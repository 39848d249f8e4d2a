"""The SLA planner: a start time, deadline and queue for every backup due within a horizon.

How a VM's start is chosen:

1. Each offering's windows (minus blackouts) are cut into *segments* no longer than its
   RPO; every VM has a stable, hashed slot in each segment (like a hashed cron slot), so
   nothing changed means the same time every night and "was this run late?" stays a fair
   question.
2. VMs are taken earliest deadline first (``last_good + RPO``). A VM gets the latest
   segment whose slot is still on time; if the slot is full (host or pool concurrency,
   pool bandwidth) the nearest free start inside the window and before the deadline is
   taken, else an earlier segment, else the first free start after the deadline — which
   is reported as late.
3. A job always fits inside one open part of a window (it must finish before the window
   closes or a blackout starts); one that never fits is reported as unplaceable.

Hashed slots spread the load evenly over each window, which keeps the peak low and the
capacity nobody was given free for retries; earliest-deadline-first decides who waits
when there is not enough capacity for everyone.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from orchestrator.planner.model import VM, FixedJob, Host, Offering, Plan, PlannedJob, Pool, Unplaceable
from orchestrator.planner.timeline import MINUTE, Timeline
from orchestrator.planner.timemath import window_plans

# Late placements may land this far past the horizon.
OVERRUN = timedelta(days=2)
# How many earlier segments to try before a job is placed late.
EARLIER_SEGMENTS = 2


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
    windows: list[tuple[int, int]]  # whole occurrence, for reasons
    parts: list[list[tuple[int, int]]]  # open parts per window
    segments: list[_Segment]
    segment_starts: list[int]
    all_parts: list[tuple[int, int]]
    longest_part: int


def _calendar(offering: Offering, timeline: Timeline, end: datetime) -> _Calendar:
    level = offering.level
    rpo_minutes = max(1, level.rpo_seconds // 60)
    windows, parts, segments = [], [], []
    for w, wp in enumerate(window_plans(level, timeline.start - timedelta(seconds=level.rpo_seconds), end)):
        a, b = timeline.index(wp.window.start), timeline.index(wp.window.end)
        windows.append((a, b))
        parts.append([(timeline.index(p.start), timeline.index(p.end)) for p in wp.open])
        count = max(1, math.ceil((b - a) / rpo_minutes))
        step = (b - a) / count
        for i in range(count):
            s = a + round(i * step)
            segments.append(_Segment(s, a + round((i + 1) * step) - s, w))
    flat = [p for ps in parts for p in ps]
    return _Calendar(
        zone=ZoneInfo(level.timezone),
        rpo_minutes=rpo_minutes,
        windows=windows,
        parts=parts,
        segments=segments,
        segment_starts=[s.start for s in segments],
        all_parts=flat,
        longest_part=max((b - a for a, b in flat), default=0),
    )


class Planner:
    def __init__(
        self,
        hosts: Iterable[Host],
        pools: Iterable[Pool],
        offerings: Iterable[Offering],
        now: datetime,
        horizon: timedelta = timedelta(hours=24),
    ) -> None:
        self.hosts = {h.id: h for h in hosts}
        self.pools = {p.id: p for p in pools}
        self.offerings = {o.id: o for o in offerings}
        start = now.replace(second=0, microsecond=0)
        self.end = start + horizon
        self.timeline = Timeline(
            start, int((horizon + OVERRUN) // MINUTE), self.hosts.values(), self.pools.values()
        )
        self.calendars = {
            oid: _calendar(o, self.timeline, self.end + OVERRUN) for oid, o in self.offerings.items()
        }

    # -- shapes of one job ----------------------------------------------------------------
    def _duration_and_rates(self, vm: VM) -> tuple[int, dict[str, float]]:
        speed = vm.throughput
        for pool_id in vm.pool_bytes:
            bandwidth = self.pools[pool_id].bandwidth if pool_id in self.pools else None
            if bandwidth:
                speed = min(speed, bandwidth)
        minutes = max(1, math.ceil(vm.bytes / speed / 60)) if vm.bytes else 1
        rates = {p: b / (minutes * 60) for p, b in vm.pool_bytes.items()}
        return minutes, rates

    def reserve_fixed(self, jobs: Iterable[FixedJob]) -> None:
        for job in jobs:
            start, end = self.timeline.index(job.start), self.timeline.index(job.end)
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
        slot: int,
    ) -> int | None:
        best: int | None = None
        for a, b in parts:
            first, last = max(a, lo), min(b - d, hi)
            if first > last:
                continue
            starts = self.timeline.feasible_starts(vm.host_id, rates, first, last, d)
            if starts.size == 0:
                continue
            i = int(np.searchsorted(starts, slot))
            for j in (i, i - 1):
                if 0 <= j < starts.size and (best is None or abs(int(starts[j]) - slot) < abs(best - slot)):
                    best = int(starts[j])
        return best

    def _place(self, vm: VM, deadline: int, lower: int) -> tuple[int, int, dict[str, float], str, bool] | str:
        cal = self.calendars[vm.offering_id]
        d, rates = self._duration_and_rates(vm)
        if d > cal.longest_part:
            return (
                f"a backup takes ~{d} min, longer than any open part of its windows "
                f"({cal.longest_part} min): it can never finish inside one"
            )
        fraction = slot_fraction(vm.id)
        k = bisect_right(cal.segment_starts, deadline) - 1
        tried = 0
        while k >= 0 and tried <= EARLIER_SEGMENTS:
            seg = cal.segments[k]
            # Past the deadline the slot is out of reach: aim as close to it as still on time.
            slot = min(seg.start + int(fraction * max(0, seg.length - d)), deadline)
            k -= 1
            if seg.start + seg.length <= lower:
                break
            tried += 1
            start = self._nearest(vm, rates, cal.parts[seg.window], lower, deadline, d, slot)
            if start is not None:
                how = "at its slot" if start == slot else f"{start - slot:+d} min from its slot (capacity)"
                return start, d, rates, f"{how} in the window of {self._local(seg.start, cal)}", False
        for a, b in cal.all_parts:
            if b - d < max(lower, deadline + 1):
                continue
            starts = self.timeline.feasible_starts(vm.host_id, rates, max(a, lower, deadline + 1), b - d, d)
            if starts.size:
                start = int(starts[0])
                return (
                    start,
                    d,
                    rates,
                    f"late by {start - deadline} min: no capacity before its deadline",
                    True,
                )
        return "no capacity in any window before the plan's end"

    def _local(self, index: int, cal: _Calendar) -> str:
        return self.timeline.at(index).astimezone(cal.zone).strftime("%Y-%m-%d %H:%M %Z")

    def plan(self, vms: Sequence[VM], fixed: Iterable[FixedJob] = ()) -> Plan:
        self.reserve_fixed(fixed)
        result = Plan()
        end_index = self.timeline.index(self.end)
        heap: list[tuple[int, int, int]] = []
        for i, vm in enumerate(vms):
            rpo = timedelta(seconds=self.offerings[vm.offering_id].level.rpo_seconds)
            # A VM never backed up gets its first restore point within one RPO of now.
            last_good = vm.last_good or self.timeline.start
            deadline = self.timeline.index(last_good + rpo)
            if deadline <= end_index:
                heap.append((deadline, i, 0))
        heapq.heapify(heap)
        while heap:
            deadline, i, lower = heapq.heappop(heap)
            vm = vms[i]
            placed = self._place(vm, deadline, lower)
            if isinstance(placed, str):
                result.unplaceable.append(Unplaceable(vm.id, placed))
                continue
            start, d, rates, reason, late = placed
            self.timeline.reserve(vm.host_id, rates, start, d)
            result.jobs.append(
                PlannedJob(
                    vm_id=vm.id,
                    offering_id=vm.offering_id,
                    start=self.timeline.at(start),
                    end=self.timeline.at(start + d),
                    deadline=self.timeline.at(max(deadline, 0)),
                    queue=f"pool.{vm.primary_pool}",
                    reason=reason,
                    late=late,
                )
            )
            following = start + self.calendars[vm.offering_id].rpo_minutes
            if following <= end_index:
                heapq.heappush(heap, (following, i, start + d))
        result.jobs.sort(key=lambda j: (j.start, j.vm_id))
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
