"""Can the backups fit at all? Lower bounds on the time each pool and host needs.

For the work that has to run inside some open time, no schedule — however clever —
finishes it sooner than

    pool:  LB = max(longest job, Σ bytes / bandwidth, Σ durations / pool slots)
    host:  LB = max(longest job, Σ durations / host slots)

(durations are each job's length alone at full speed; a job that reads several pools counts
on each). LB longer than the open time means the fleet is infeasible there, whatever the
order. Each piece of work carries its own window (the open parts it may run in), so one
night with several offerings is checked stretch by stretch: for every span from a window's
start to a window's end, the work whose window lies inside that span must fit the open time
of those windows. With a single window that is exactly the formula above against the
window's length; with several it also catches a narrow window that is overloaded while the
night as a whole is not.

``lower_bounds`` is pure: work in, bounds out. ``nightly_work`` turns a fleet and a day into
the work of that night, one piece per planner segment (see ``planner.cut_segments``): a
backup is counted in the segment it must start in (a 12 h RPO on 18:00-08:00 needs one in
18:00-20:00 and one in 06:00-08:00), on average over the nights (a 2-day RPO: half a backup
a night). The bound is on the estimates: it says nothing of overruns, failures and retries,
so "fits" with little to spare is not yet a schedule that keeps every RPO.

``retry_rooms`` covers failures: per offering, the room the planner keeps before each
deadline (``planner.retry_room``) against what each VM's retry needs — a whole failed
attempt, the wait before the next, and the attempt again. An offering whose RPO equals the
spacing of its windows (1 d on a nightly window) keeps none: every failed backup of it
misses its RPO, however much capacity there is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from orchestrator.planner.model import VM, Host, Offering, Pool
from orchestrator.planner.planner import RETRY_AFTER, cut_segments, offering_retry_room
from orchestrator.planner.timemath import Interval, merge, window_plans

LONGEST = "longest job"
BANDWIDTH = "bytes/bandwidth"
POOL_SLOTS = "durations/pool slots"
HOST_SLOTS = "durations/host slots"
POOL_TERMS = (LONGEST, BANDWIDTH, POOL_SLOTS)
HOST_TERMS = (LONGEST, HOST_SLOTS)


@dataclass(frozen=True)
class Work:
    """One backup that must run inside ``window``, expected ``share`` times there.

    ``share`` is below 1 for an offering whose RPO spans several windows (a 2-day RPO with a
    nightly window runs every other night: 0.5 per night); the bound is then on the average.
    """

    host_id: str
    pool_bytes: Mapping[str, float]
    seconds: float  # its length alone at full speed
    window: tuple[Interval, ...]  # open parts, sorted
    share: float = 1.0
    # The longest open stretch it may run in, when that is not inside ``window`` (a job that
    # must start in a window may run on past it). Default: the longest part of ``window``.
    room: Interval | None = None


@dataclass(frozen=True)
class Bound:
    """The tightest lower bound of one pool or host: ``seconds`` of work in ``window_seconds``."""

    seconds: float
    term: str  # which term of the max gives it (LONGEST, BANDWIDTH, POOL_SLOTS, HOST_SLOTS)
    window_seconds: float  # the open time the work must fit (for LONGEST: its longest open part)
    window: tuple[Interval, ...]  # that open time
    speed: float = 0.0  # for LONGEST: the bytes/s that longest backup moves

    @property
    def fits(self) -> bool:
        return self.seconds <= self.window_seconds * (1 + 1e-9)

    @property
    def ratio(self) -> float:
        """LB over the open time: above 1 is infeasible."""
        if self.window_seconds > 0:
            return self.seconds / self.window_seconds
        return math.inf if self.seconds > 0 else 0.0


IDLE = Bound(0.0, "no work", 0.0, ())


@dataclass(frozen=True)
class Capacity:
    pools: dict[str, Bound]
    hosts: dict[str, Bound]

    @property
    def feasible(self) -> bool:
        return all(b.fits for b in (*self.pools.values(), *self.hosts.values()))

    def binding(self) -> list[tuple[str, str, Bound]]:
        """``("pool" | "host", id, bound)`` for everything that does not fit, worst first."""
        out = [("pool", k, b) for k, b in self.pools.items() if not b.fits]
        out += [("host", k, b) for k, b in self.hosts.items() if not b.fits]
        return sorted(out, key=lambda item: (-item[2].ratio, item[0], item[1]))

    def worst(self, kind: str) -> tuple[str, Bound] | None:
        """The pool or host (``kind``) with the highest ratio."""
        items = (self.pools if kind == "pool" else self.hosts).items()
        return max(items, key=lambda kv: (kv[1].ratio, kv[0]), default=None)


def _seconds(parts: Iterable[Interval]) -> float:
    return sum(p.seconds for p in parts)


class _Load:
    """The work of one resource that shares one window: summed and the longest."""

    __slots__ = ("bytes", "longest", "room", "seconds", "speed")

    def __init__(self, room: Interval) -> None:
        self.bytes = self.seconds = self.longest = self.speed = 0.0
        self.room = room


def _tightest(
    loads: dict[tuple[Interval, ...], _Load], slots: int, bandwidth: float | None, terms: Sequence[str]
) -> Bound:
    best = IDLE
    if not loads:
        return best

    def consider(candidate: Bound) -> None:
        nonlocal best
        if best is IDLE or candidate.ratio > best.ratio:
            best = candidate

    windows = [(w[0].start, w[-1].end, w, load) for w, load in loads.items() if w]
    if LONGEST in terms:
        for _, _, _, load in windows:
            consider(Bound(load.longest, LONGEST, load.room.seconds, (load.room,), load.speed))
    slot_term = next((t for t in (POOL_SLOTS, HOST_SLOTS) if t in terms), None)
    for a in sorted({w[0] for w in windows}):
        for b in sorted({w[1] for w in windows}):
            inside = [(w, load) for start, end, w, load in windows if a <= start and end <= b]
            if b <= a or not inside:
                continue
            window = tuple(merge(p for w, _ in inside for p in w))
            length = _seconds(window)
            if bandwidth and BANDWIDTH in terms:
                consider(Bound(sum(ld.bytes for _, ld in inside) / bandwidth, BANDWIDTH, length, window))
            if slot_term:
                consider(
                    Bound(sum(ld.seconds for _, ld in inside) / max(1, slots), slot_term, length, window)
                )
    return best


def lower_bounds(
    work: Iterable[Work],
    hosts: Iterable[Host],
    pools: Iterable[Pool],
    terms: Sequence[str] | None = None,
) -> Capacity:
    """Per pool and per host: the tightest lower bound, the term giving it, and whether it fits.

    ``terms`` restricts which terms are considered (e.g. ``[BANDWIDTH]`` to find where the
    bytes alone are the limit); a pool or host none of whose terms is among them gets an idle
    bound, as do pools and hosts without work. Pools a piece of work reads that are not in
    ``pools`` are ignored.
    """
    hosts, pools = list(hosts), list(pools)
    host_loads: dict[str, dict[tuple[Interval, ...], _Load]] = {h.id: {} for h in hosts}
    pool_loads: dict[str, dict[tuple[Interval, ...], _Load]] = {p.id: {} for p in pools}

    def add(by_window: dict[tuple[Interval, ...], _Load] | None, w: Work, nbytes: float) -> None:
        if by_window is None:
            return
        load = by_window.get(w.window)
        if load is None:
            load = by_window[w.window] = _Load(w.room or max(w.window, key=lambda p: p.seconds))
        load.bytes += nbytes * w.share
        load.seconds += w.seconds * w.share
        if w.seconds > load.longest:
            load.longest = w.seconds
            load.speed = sum(w.pool_bytes.values()) / w.seconds

    for w in work:
        add(host_loads.get(w.host_id), w, 0.0)
        for pool_id, nbytes in w.pool_bytes.items():
            add(pool_loads.get(pool_id), w, nbytes)
    pool_terms = POOL_TERMS if terms is None else [t for t in terms if t in POOL_TERMS]
    host_terms = HOST_TERMS if terms is None else [t for t in terms if t in HOST_TERMS]
    return Capacity(
        pools={p.id: _tightest(pool_loads[p.id], p.max_concurrent, p.bandwidth, pool_terms) for p in pools},
        hosts={h.id: _tightest(host_loads[h.id], h.max_concurrent, None, host_terms) for h in hosts},
    )


def each_term(work: Iterable[Work], hosts: Iterable[Host], pools: Iterable[Pool]) -> dict[str, Capacity]:
    """The bound of every term alone, per pool and host: a fix must make all of them fit, not
    only the tightest one."""
    work, hosts, pools = list(work), list(hosts), list(pools)
    return {term: lower_bounds(work, hosts, pools, terms=[term]) for term in (*POOL_TERMS, HOST_SLOTS)}


@dataclass(frozen=True)
class Remedy:
    """What must change for one pool's or host's work to fit its open time.

    A backup longer than the open time it may run in (LONGEST) is fixed by no amount of
    concurrency or pool bandwidth shared among backups: only a longer window
    (``window_seconds``) or a faster backup (``speed``) fixes it. Concurrency and bandwidth
    are asked for only where they are still short once the window is that long.
    """

    window_seconds: float | None  # the open time one backup needs; None: it fits now
    speed: float | None  # or the bytes/s one backup must move instead; None: unknown or fits
    slots: int | None  # the concurrent backups needed; None: enough
    bandwidth: float | None  # the bytes/s the pool needs; None: enough


def remedy(terms: Mapping[str, Bound], slots: int, bandwidth: float | None) -> Remedy:
    """The remedy of one pool or host from its ``terms`` (``each_term``'s bounds of it)."""
    longest = terms.get(LONGEST, IDLE)
    # Widening the window to the longest backup lengthens every term's open time as much.
    extra = 0.0 if longest.fits else longest.seconds - longest.window_seconds

    def short_by(term: str) -> float | None:
        bound = terms.get(term, IDLE)
        ratio = bound.seconds / (bound.window_seconds + extra) if bound.seconds else 0.0
        return ratio if ratio > 1 + 1e-9 else None

    slot_ratio = short_by(POOL_SLOTS) or short_by(HOST_SLOTS)
    bandwidth_ratio = short_by(BANDWIDTH) if bandwidth else None
    return Remedy(
        window_seconds=longest.seconds if extra else None,
        speed=longest.speed * longest.ratio if extra and longest.speed else None,
        slots=math.ceil(slots * slot_ratio) if slot_ratio else None,
        bandwidth=bandwidth * bandwidth_ratio if bandwidth and bandwidth_ratio else None,
    )


def duration_seconds(vm: VM, pools: Mapping[str, Pool]) -> float:
    """A backup's length alone at full speed: the VM's throughput or its slowest pool's bandwidth."""
    speed = vm.throughput
    for pool_id in vm.pool_bytes:
        pool = pools.get(pool_id)
        if pool is not None and pool.bandwidth:
            speed = min(speed, pool.bandwidth)
    return vm.bytes / speed if speed > 0 else 0.0


def night_segments(offering: Offering, day: date) -> list[tuple[tuple[Interval, ...], float, Interval]]:
    """The planner's segments of ``offering`` whose window opens on local ``day``.

    Each comes as (open parts it covers, share, room): a backup starts inside the segment once
    (``share`` 1), or in every other one when the RPO spans two segments (a 2-day RPO on a
    nightly window: 0.5), ...; ``room`` is the longest open stretch it can run in from there
    (on past the segment's end, to the end of its open part).
    """
    level = offering.level
    zone = ZoneInfo(level.timezone)
    first = datetime.combine(day, time.min, zone).astimezone(UTC)
    last = datetime.combine(day + timedelta(days=1), time.min, zone).astimezone(UTC)
    plans = window_plans(level, first - timedelta(days=3), last + timedelta(days=3))
    epoch = first
    windows = [
        (int((wp.window.start - epoch).total_seconds()), int((wp.window.end - epoch).total_seconds()))
        for wp in plans
    ]
    # The planner's spacing: one retry room short of the RPO where that is free.
    rpo = level.rpo_seconds - offering_retry_room(level, first) * 60
    segments = cut_segments(windows, rpo)
    out = []
    for i, (s, e, w) in enumerate(segments):
        opens = plans[w].window.start
        if not first <= opens < last:
            continue
        a, b = epoch + timedelta(seconds=s), epoch + timedelta(seconds=e)
        parts = tuple(
            Interval(max(a, p.start), min(b, p.end)) for p in plans[w].open if p.start < b and a < p.end
        )
        if not parts:  # a zero-length segment: the backup starts at its start, in the part holding it
            parts = tuple(Interval(a, p.end) for p in plans[w].open if p.start <= a < p.end)
        following = segments[i + 1][0] if i + 1 < len(segments) else s + rpo
        room = max(
            (Interval(max(a, p.start), p.end) for p in plans[w].open if p.end > a and p.start <= b),
            key=lambda iv: iv.seconds,
            default=parts[0],
        )
        # Runs at the latest segment still on time: every one, every other one (a 2-day RPO
        # on nightly windows), ...
        out.append((parts, 1.0 / max(1, math.floor(rpo / max(1, following - s) + 1e-9)), room))
    return out


def nightly_work(
    vms: Iterable[VM], pools: Iterable[Pool], offerings: Iterable[Offering], day: date
) -> list[Work]:
    """The backups of the night that opens on ``day`` (each offering's local date), one per segment."""
    pool_by_id = {p.id: p for p in pools}
    segments = {o.id: night_segments(o, day) for o in offerings}
    out = []
    for vm in vms:
        seconds = duration_seconds(vm, pool_by_id)
        for parts, share, room in segments.get(vm.offering_id, ()):
            if parts:
                out.append(Work(vm.host_id, vm.pool_bytes, seconds, parts, share, room))
    return out


@dataclass(frozen=True)
class RetryRoom:
    """Whether a failed backup of an offering's VMs can run again before its deadline."""

    offering_id: str
    room_seconds: float  # ``planner.retry_room``: kept before every deadline
    # VMs whose retry needs more (a whole failed attempt, the wait, the attempt again),
    # the neediest first, with what they need.
    short: list[tuple[str, float]]

    @property
    def rpo_for_all(self) -> float:
        """How much longer the RPO must be for every VM's retry to fit (0 if it does)."""
        return max(0.0, self.short[0][1] - self.room_seconds) if self.short else 0.0


def retry_rooms(
    vms: Iterable[VM],
    pools: Iterable[Pool],
    offerings: Iterable[Offering],
    start: datetime,
    retry_after: timedelta = RETRY_AFTER,
) -> list[RetryRoom]:
    pool_by_id = {p.id: p for p in pools}
    rooms = {o.id: offering_retry_room(o.level, start) * 60.0 for o in offerings}
    needs: dict[str, list[tuple[str, float]]] = {oid: [] for oid in rooms}
    for vm in vms:
        if vm.offering_id in needs:
            need = 2 * duration_seconds(vm, pool_by_id) + retry_after.total_seconds()
            needs[vm.offering_id].append((vm.id, need))
    out = []
    for oid, room in rooms.items():
        short = sorted(((v, n) for v, n in needs[oid] if n > room), key=lambda item: (-item[1], item[0]))
        out.append(RetryRoom(oid, room, short))
    return out
