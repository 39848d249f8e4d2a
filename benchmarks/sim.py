"""Discrete-event simulation of a backup fleet: the planner against the classic ways.

A seeded synthetic fleet (``make_fleet``) runs for N virtual days. A *strategy* decides only
*when each backup is submitted*; the simulated runtime, the same for every strategy, does the
rest the way a real dispatcher with semaphores would:

* a submitted job waits FIFO in its pool's queue and starts as soon as a slot on its pool and
  a slot on its host are both free (a job whose host is full does not hold up the jobs behind
  it); nothing starts after the end of the simulation;
* a running job reads at min(its throughput, its share of the pool's bandwidth); the
  bandwidth is shared max-min fairly between the pool's running jobs;
* a job moves the bytes its VM changed since its last restore point (its change rate times
  the time elapsed at the snapshot, capped at the VM's full size; ``FleetSpec.bytes_grow``)
  times a lognormal overrun factor, so a late backup moves more, and a job takes longer than
  planned; it fails with the configured probability part-way through;
* a failed job is retried by the runtime, whatever the strategy, at the first open instant
  after a backoff at which its estimated length still fits in the open part (or, if no
  part is long enough for it, at the next open instant) — across a blackout or to the next
  window if need be (``Calendar.next_open``);
* a restore point is the start of a successful job (the snapshot). An RPO miss is a gap
  between consecutive restore points of a VM — or from its last one to the end of the
  simulation — longer than its RPO; jobs running at the end are let finish to count.

Every random draw of the runtime is keyed by (VM, attempt number), so every strategy sees
the same overrun and the same failures for the k-th backup of a VM (common random numbers).

Everything inside is in seconds since the start of the simulation (``Fleet.t0``, UTC).
"""

from __future__ import annotations

import heapq
import math
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from orchestrator.domain.sla import ServiceLevel
from orchestrator.planner import planner as planner_module
from orchestrator.planner.capacity import BANDWIDTH, Capacity, lower_bounds, nightly_work, retry_rooms
from orchestrator.planner.model import VM, FixedJob, Host, Offering, Pool
from orchestrator.planner.planner import cut_segments, offering_retry_room, plan
from orchestrator.planner.timemath import window_plans

MiB = 2**20
GiB = 2**30
HOUR = 3600.0
DAY = 86400.0
_NORMAL = NormalDist()


def default_offerings(timezone: str = "Europe/Berlin") -> list[Offering]:
    """gold: RPO 16 h, 18:00-08:00; silver: 30 h, 20:00-06:00 but not 22:00-23:00; bronze:
    54 h, 22:00-06:00. Each RPO leaves room to retry a failed backup (4 h, 6 h, 6 h) beyond
    the spacing its windows need: two backups a night, one a night, one every other night."""
    return [
        Offering(
            "gold",
            ServiceLevel.parse(rpo="16h", windows=[{"start": "18:00", "end": "08:00"}], timezone=timezone),
        ),
        Offering(
            "silver",
            ServiceLevel.parse(
                rpo="30h",
                windows=[{"start": "20:00", "end": "06:00"}],
                blackouts=[{"start": "22:00", "end": "23:00"}],
                timezone=timezone,
            ),
        ),
        Offering(
            "bronze",
            ServiceLevel.parse(rpo="54h", windows=[{"start": "22:00", "end": "06:00"}], timezone=timezone),
        ),
    ]


# -- the fleet -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetSpec:
    """What to generate. Sizes, change rates and throughputs are lognormal (median, sigma)."""

    vms: int = 1000
    hosts: int | None = None  # default: one per 40 VMs
    pools: int | None = None  # default: one per 500 VMs
    days: int = 7
    seed: int = 1
    timezone: str = "Europe/Berlin"
    start: date = date(2026, 11, 23)  # the simulation starts at local noon that day
    mix: tuple[float, float, float] = (0.2, 0.5, 0.3)  # gold, silver, bronze
    host_slots: int = 4
    pool_slots: int = 16
    pool_bandwidth: float = 700 * MiB  # bytes/s, each pool x uniform(0.85, 1.15)
    cross_pool: float = 0.1  # share of VMs on another pool than their host's
    size_median: float = 250 * GiB
    size_sigma: float = 0.8
    change_median: float = 0.04  # of the size, per day
    change_sigma: float = 0.6
    throughput_median: float = 80 * MiB
    throughput_sigma: float = 0.35
    max_job_seconds: float = 1.5 * HOUR  # estimates are capped here (a huge VM gets a bigger pipe)
    load: float = 1.0  # multiplies every change rate: > 1 to overload the fleet
    failure_rate: float = 0.02
    overrun_median: float = 1.1  # actual bytes = estimate x lognormal(median, sigma)
    overrun_sigma: float = 0.25
    retry_backoff: float = 15 * 60
    steady_slack: float = HOUR  # at the start, no VM is due sooner than this after its window opens
    # A job's bytes: what changed since the last restore point (False: always ``est_bytes``,
    # for hand-made examples whose arithmetic should stay exact).
    bytes_grow: bool = True

    @property
    def n_hosts(self) -> int:
        return self.hosts or max(1, self.vms // 40)

    @property
    def n_pools(self) -> int:
        return self.pools or max(1, self.vms // 500)


@dataclass
class Calendar:
    """An offering's windows in simulation seconds."""

    rpo: float
    retry_room: float  # the planner's (``planner.retry_room``)
    parts: list[tuple[float, float]]  # open parts, sorted
    part_starts: list[float]
    # Planner segments: (start, end, open parts of the segment, start of the next segment).
    segments: list[tuple[float, float, list[tuple[float, float]], float]]

    def __post_init__(self) -> None:
        self.segment_starts = [s for s, _, _, _ in self.segments]
        self.longest_part = max((b - a for a, b in self.parts), default=0.0)

    def part_at(self, t: float) -> tuple[float, float] | None:
        i = bisect_right(self.part_starts, t) - 1
        if i >= 0 and self.parts[i][0] <= t < self.parts[i][1]:
            return self.parts[i]
        return None

    def next_open(self, t: float, need: float) -> float | None:
        """The first instant from ``t`` in an open part that leaves ``need`` seconds before the
        part ends; if no part is that long, the first open instant from ``t``. None past the
        calendar's end."""
        i = max(0, bisect_right(self.part_starts, t) - 1)
        fits = need <= self.longest_part
        for a, b in self.parts[i:]:
            start = max(t, a)
            if start < b and (not fits or start + need <= b):
                return start
        return None

    def due(self, last_good: float) -> float:
        """When a VM last backed up at ``last_good`` became due: the last segment start before
        its deadline (the one at which a cron on the segment starts submits it), but after
        ``last_good``. The common reference for every strategy's wait."""
        starts = self.segment_starts
        i = max(bisect_left(starts, last_good + self.rpo) - 1, bisect_right(starts, last_good))
        return starts[i] if i < len(starts) else last_good + self.rpo


@dataclass
class Fleet:
    spec: FleetSpec
    t0: datetime
    end: float
    hosts: list[Host]
    pools: list[Pool]
    offerings: list[Offering]
    calendars: list[Calendar]  # per offering index
    vm_ids: list[str]
    offering: np.ndarray  # offering index per VM
    host: np.ndarray
    pool: np.ndarray
    est_bytes: np.ndarray  # a backup's expected bytes (change over one RPO)
    full_bytes: np.ndarray  # the VM's size: what its change is capped at
    throughput: np.ndarray
    est_seconds: np.ndarray  # alone at full speed
    rpo: np.ndarray
    last_good: np.ndarray  # initial restore point, seconds (negative: before the start)
    failure_rate: float
    overrun_mu: float
    overrun_sigma: float
    retry_backoff: float
    seed: int

    @property
    def size(self) -> int:
        return len(self.vm_ids)

    def at(self, seconds: float) -> datetime:
        return self.t0 + timedelta(seconds=float(seconds))

    def seconds(self, at: datetime) -> float:
        return (at - self.t0).total_seconds()

    def planner_vms(self) -> list[VM]:
        off = [o.id for o in self.offerings]
        return [
            VM(
                self.vm_ids[i],
                off[self.offering[i]],
                self.hosts[self.host[i]].id,
                {self.pools[self.pool[i]].id: int(self.est_bytes[i])},
                last_good=self.at(self.last_good[i]),
                throughput=float(self.throughput[i]),
            )
            for i in range(self.size)
        ]

    def nights(self) -> list[date]:
        """Local dates whose windows open inside the simulation."""
        zone = ZoneInfo(self.spec.timezone)
        first = self.t0.astimezone(zone).date()
        return [first + timedelta(days=d) for d in range(self.spec.days)]

    def capacity(self, terms: Sequence[str] | None = None) -> list[Capacity]:
        """``capacity.lower_bounds`` of every night of the simulation, from the planner's estimates."""
        vms = self.planner_vms()
        return [
            lower_bounds(nightly_work(vms, self.pools, self.offerings, night), self.hosts, self.pools, terms)
            for night in self.nights()
        ]


def _calendar(offering: Offering, t0: datetime, end: float) -> Calendar:
    level = offering.level
    plans = window_plans(level, t0 - timedelta(days=4), t0 + timedelta(seconds=end) + timedelta(days=4))

    def sec(at: datetime) -> float:
        return (at - t0).total_seconds()

    parts = [(sec(p.start), sec(p.end)) for wp in plans for p in wp.open]
    windows = [(round(sec(wp.window.start)), round(sec(wp.window.end))) for wp in plans]
    # The planner's segments: cut one retry room short of the RPO where that is free.
    room = offering_retry_room(level, t0) * 60
    cut = cut_segments(windows, level.rpo_seconds - room)
    segments = []
    for i, (s, e, w) in enumerate(cut):
        opens = [(max(a, s), min(b, e)) for a, b in ((sec(p.start), sec(p.end)) for p in plans[w].open)]
        opens = [(a, b) for a, b in opens if a < b] or [(s, max(s + 60, e))]
        following = cut[i + 1][0] if i + 1 < len(cut) else s + level.rpo_seconds
        segments.append((float(s), float(e), opens, float(following)))
    return Calendar(float(level.rpo_seconds), float(room), parts, [a for a, _ in parts], segments)


def _uniform_in(parts: Sequence[tuple[float, float]], u: np.ndarray) -> np.ndarray:
    """Map uniforms in [0, 1) onto the union of disjoint intervals, uniformly."""
    lengths = np.array([b - a for a, b in parts], dtype=float)
    cum = np.concatenate(([0.0], np.cumsum(lengths)))
    x = u * cum[-1]
    k = np.clip(np.searchsorted(cum, x, side="right") - 1, 0, len(parts) - 1)
    starts = np.array([a for a, _ in parts], dtype=float)
    return starts[k] + (x - cum[k])


def make_fleet(spec: FleetSpec, offerings: Sequence[Offering] | None = None) -> Fleet:
    """A deterministic synthetic fleet in a steady state: every VM backed up in its last window."""
    rng = np.random.default_rng(spec.seed)
    offerings = list(offerings or default_offerings(spec.timezone))
    n, nh, np_ = spec.vms, spec.n_hosts, spec.n_pools
    zone = ZoneInfo(spec.timezone)
    t0 = datetime(spec.start.year, spec.start.month, spec.start.day, 12, tzinfo=zone).astimezone(UTC)
    end = spec.days * DAY
    hosts = [Host(f"h{i:05d}", spec.host_slots) for i in range(nh)]
    bandwidth = spec.pool_bandwidth * rng.uniform(0.85, 1.15, np_)
    pools = [Pool(f"p{i:03d}", spec.pool_slots, float(bandwidth[i])) for i in range(np_)]
    home = rng.integers(0, np_, nh)
    host = rng.integers(0, nh, n)
    pool = np.where(rng.random(n) < spec.cross_pool, rng.integers(0, np_, n), home[host])
    mix = np.array(spec.mix[: len(offerings)], dtype=float)
    offering = rng.choice(len(offerings), n, p=mix / mix.sum())
    size = rng.lognormal(math.log(spec.size_median), spec.size_sigma, n)
    change = np.clip(rng.lognormal(math.log(spec.change_median), spec.change_sigma, n), 0.002, 0.5)
    throughput = np.clip(
        rng.lognormal(math.log(spec.throughput_median), spec.throughput_sigma, n), 10 * MiB, None
    )
    rpo = np.array([o.level.rpo_seconds for o in offerings], dtype=float)[offering]
    speed = np.minimum(throughput, bandwidth[pool])
    est_bytes = np.minimum(size * change * spec.load * rpo / DAY, speed * spec.max_job_seconds).astype(
        np.int64
    )
    est_bytes = np.maximum(est_bytes, 1)
    calendars = [_calendar(o, t0, end) for o in offerings]
    # Steady state: the last restore point lies in an open part, late enough that the next one
    # is due no sooner than `steady_slack` (and the offering's retry room) after its next
    # segment opens — where a planned cadence would have put it.
    last_good = np.empty(n)
    for k, cal in enumerate(calendars):
        idx = np.flatnonzero(offering == k)
        if idx.size == 0:
            continue
        upcoming = next(s for s, _, _, _ in cal.segments if s >= 0)
        lo = upcoming - cal.rpo + cal.retry_room + spec.steady_slack
        allowed = [(max(a, lo), min(b, 0.0)) for a, b in cal.parts if b > lo and a < 0]
        allowed = [(a, b) for a, b in allowed if a < b] or [(lo, lo + 1)]
        last_good[idx] = _uniform_in(allowed, rng.random(idx.size))
    return Fleet(
        spec=spec,
        t0=t0,
        end=end,
        hosts=hosts,
        pools=pools,
        offerings=offerings,
        calendars=calendars,
        vm_ids=[f"vm{i:06d}" for i in range(n)],
        offering=offering,
        host=host,
        pool=pool,
        est_bytes=est_bytes,
        full_bytes=np.maximum(size, est_bytes),
        throughput=throughput,
        est_seconds=est_bytes / speed,
        rpo=rpo,
        last_good=last_good,
        failure_rate=spec.failure_rate,
        overrun_mu=math.log(spec.overrun_median),
        overrun_sigma=spec.overrun_sigma,
        retry_backoff=spec.retry_backoff,
        seed=spec.seed,
    )


# -- random draws keyed by (VM, attempt) ------------------------------------------------------------

_M64 = (1 << 64) - 1


def unit(seed: int, vm: int, attempt: int, stream: int) -> float:
    """A uniform in (0, 1), a pure function of its arguments (splitmix64)."""
    x = (
        seed * 0x9E3779B97F4A7C15
        + vm * 0xD1B54A32D192ED03
        + attempt * 0xABC98388FB8FAC03
        + stream * 0x8CB92BA72F3D8DD7
    ) & _M64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _M64
    x ^= x >> 31
    return ((x >> 11) + 0.5) / 2**53


# -- the runtime -----------------------------------------------------------------------------------

_FINISH, _RETRY, _SUBMIT, _WAKE = 0, 1, 2, 3  # same instant: capacity is freed before it is taken


class _Job:
    __slots__ = (
        "attempt",
        "due",
        "fails",
        "host",
        "left",
        "pool",
        "rate",
        "seq",
        "start",
        "submit",
        "tp",
        "version",
        "vm",
    )

    def __init__(
        self, vm: int, pool: int, host: int, submit: float, attempt: int, due: float, fails: bool, tp: float
    ):
        self.vm, self.pool, self.host, self.submit = vm, pool, host, submit
        self.attempt, self.due, self.fails, self.tp = attempt, due, fails, tp
        self.left = 0.0  # bytes: known at the snapshot, when it starts
        self.start = -1.0
        self.rate = 0.0
        self.version = 0
        self.seq = 0


class Strategy(Protocol):
    """Decides when each backup is submitted; the runtime does the rest."""

    name: str
    plan_seconds: float  # wall time spent planning
    plan_calls: int

    def start(self, sim: Simulation) -> None:
        """Called once at time 0: schedule submissions and wake-ups."""

    def wake(self, sim: Simulation, now: float) -> None:
        """Called at every time asked for with ``sim.wake_at``."""


@dataclass
class JobLog:
    """Every attempt that started: what the metrics are computed from."""

    vm: array = field(default_factory=lambda: array("i"))
    pool: array = field(default_factory=lambda: array("i"))
    host: array = field(default_factory=lambda: array("i"))
    submit: array = field(default_factory=lambda: array("d"))
    due: array = field(default_factory=lambda: array("d"))  # ``Calendar.due`` of its last restore point
    start: array = field(default_factory=lambda: array("d"))
    end: array = field(default_factory=lambda: array("d"))
    ok: array = field(default_factory=lambda: array("b"))


class Simulation:
    """One run of one strategy on a fleet (``run()``, then ``metrics()`` and ``log``).

    ``count_windows``: per pool index, the stretches (simulation seconds) in which the bytes
    it moves are counted for ``utilisation_vs_bound`` — ``assess`` gives the busiest pool's.
    """

    def __init__(
        self,
        fleet: Fleet,
        strategy: Strategy,
        count_windows: dict[int, list[tuple[float, float]]] | None = None,
    ):
        f = self.fleet = fleet
        self.strategy = strategy
        self.now = 0.0
        self.end = f.end
        self._events: list[tuple[float, int, int, Any, int]] = []
        self._seq = 0
        self._cancelled: set[int] = set()
        n = f.size
        self.last_good: list[float] = f.last_good.tolist()
        self.busy = [False] * n  # a job queued, running or waiting to be retried
        self.attempts = [0] * n
        self._vm_pool = f.pool.tolist()
        self._vm_host = f.host.tolist()
        self._tp = f.throughput.tolist()
        self._est = f.est_bytes.tolist()
        self._full = f.full_bytes.tolist()
        self._grow = f.spec.bytes_grow
        self._est_seconds = f.est_seconds.tolist()
        self._rpo = f.rpo.tolist()
        self._cal = [f.calendars[k] for k in f.offering.tolist()]
        self._pool_free = [p.max_concurrent for p in f.pools]
        self._pool_limit = [p.max_concurrent for p in f.pools]
        self._pool_bw = [p.bandwidth for p in f.pools]
        self._host_free = [h.max_concurrent for h in f.hosts]
        self._host_limit = [h.max_concurrent for h in f.hosts]
        self._queue: list[list[tuple[int, _Job]]] = [[] for _ in f.pools]  # FIFO by submission
        self._blocked: list[list[tuple[int, _Job]]] = [[] for _ in f.hosts]  # waiting on a full host
        self.running: list[list[_Job]] = [[] for _ in f.pools]
        self._pool_waiting = [0] * len(f.pools)
        self._pool_clock = [0.0] * len(f.pools)
        self.retry_at: dict[int, float] = {}
        # metrics
        self.waiting = 0
        self.peak_backlog = 0
        self.peak_pool_running = [0] * len(f.pools)
        self.peak_pool_submitted = [0] * len(f.pools)
        self.peak_host_running = [0] * len(f.hosts)
        self.rpo_misses = 0
        # Misses where an attempt did start by the deadline but failed (its retry came too late).
        self.rpo_misses_after_failure = 0
        self.failed_in_time = [False] * n
        self.max_lateness = 0.0
        self.lateness_total = 0.0
        self.moved = [0.0] * len(f.pools)
        self.count_windows = count_windows or {}
        self.counted = dict.fromkeys(self.count_windows, 0.0)
        self._count_starts = {p: [a for a, _ in w] for p, w in self.count_windows.items()}
        self.submitted = self.dropped = self.failures = self.retries = 0
        self.log = JobLog()
        self.unstarted_waits: list[float] = []
        self.unstarted_due_waits: list[float] = []
        # Per deadline: the deadline less the start of the restore point that met it (or came
        # late); a deadline passed with none by the end counts the end (a bound on its lateness).
        self.deadline_slacks: list[float] = []

    # -- what strategies call ----------------------------------------------------------------------
    def submit(self, vm: int, at: float) -> int:
        """Submit a backup of ``vm`` at ``at`` (dropped then if the VM already has one in flight).

        Returns a token for ``cancel``.
        """
        self._seq += 1
        token = self._seq
        heapq.heappush(self._events, (max(at, self.now), _SUBMIT, token, vm, token))
        return token

    def wake_at(self, at: float) -> None:
        self._push(at, _WAKE, None, 0)

    def cancel(self, token: int) -> None:
        """Forget a submission not yet made (a re-plan replaces it)."""
        self._cancelled.add(token)

    def inflight(self) -> list[tuple[int, str, float]]:
        """(vm, "running" | "queued" | "retry", start or expected start) of every VM with a job."""
        out = [(j.vm, "running", j.start) for jobs in self.running for j in jobs]
        out += [(j.vm, "queued", self.now) for q in self._queue for _, j in q]
        out += [(j.vm, "queued", self.now) for b in self._blocked for _, j in b]
        out += [(vm, "retry", t) for vm, t in self.retry_at.items()]
        return out

    # -- the event loop ----------------------------------------------------------------------------
    def _push(self, at: float, kind: int, obj: Any, extra: int) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, kind, self._seq, obj, extra))

    def run(self) -> Simulation:
        self.strategy.start(self)
        events, end = self._events, self.end
        while events:
            at, kind, _, obj, extra = heapq.heappop(events)
            if at > end and kind != _FINISH:
                continue
            self.now = at
            if kind == _FINISH:
                if obj.version == extra:
                    self._finish(obj)
            elif kind == _SUBMIT:
                if extra in self._cancelled:
                    self._cancelled.discard(extra)
                elif self.busy[obj]:
                    self.dropped += 1
                else:
                    self.submitted += 1
                    self._enqueue(obj)
            elif kind == _RETRY:
                del self.retry_at[obj]
                self.retries += 1
                self._enqueue(obj)
            else:
                self.strategy.wake(self, at)
        self.now = end
        for vm, lg in enumerate(self.last_good):
            self._restore_point(vm, lg, end)
        # Jobs that never started waited at least until the end.
        unstarted = [j for q in (*self._queue, *self._blocked) for _, j in q]
        self.unstarted_waits = [end - j.submit for j in unstarted]
        self.unstarted_due_waits = [end - j.due for j in unstarted]
        return self

    def _restore_point(self, vm: int, previous: float, at: float) -> None:
        late = at - previous - self._rpo[vm]
        if at < self.end or late > 0:
            self.deadline_slacks.append(-late)
        if late > 0:
            self.rpo_misses += 1
            self.max_lateness = max(self.max_lateness, late)
            self.lateness_total += late
            if self.failed_in_time[vm]:
                self.rpo_misses_after_failure += 1
        self.failed_in_time[vm] = False

    def _enqueue(self, vm: int) -> None:
        f = self.fleet
        k = self.attempts[vm]
        self.attempts[vm] = k + 1
        fails = unit(f.seed, vm, k, 2) < f.failure_rate
        p = self._vm_pool[vm]
        due = self._cal[vm].due(self.last_good[vm])
        job = _Job(vm, p, self._vm_host[vm], self.now, k, due, fails, self._tp[vm])
        self._seq += 1
        job.seq = self._seq
        self.busy[vm] = True
        heapq.heappush(self._queue[p], (job.seq, job))
        self.waiting += 1
        self.peak_backlog = max(self.peak_backlog, self.waiting)
        self._pool_waiting[p] += 1
        queued = self._pool_waiting[p] + len(self.running[p])
        if queued > self.peak_pool_submitted[p]:
            self.peak_pool_submitted[p] = queued
        if self._dispatch(p):
            self._reshare(p)

    def _dispatch(self, p: int) -> bool:
        """Start what pool ``p`` can run now, oldest first; True if anything started."""
        queue, started = self._queue[p], False
        host_free, blocked = self._host_free, self._blocked
        while self._pool_free[p] > 0 and queue and self.now <= self.end:
            seq, job = heapq.heappop(queue)
            if host_free[job.host] > 0:
                self._start(job)
                started = True
            else:
                blocked[job.host].append((seq, job))
        return started

    def _start(self, job: _Job) -> None:
        p, h = job.pool, job.host
        self._advance(p)
        self._pool_free[p] -= 1
        self._host_free[h] -= 1
        self._pool_waiting[p] -= 1
        self.waiting -= 1
        job.start = self.now
        job.rate = 0.0
        job.left = self._work(job)
        self.running[p].append(job)
        r = len(self.running[p])
        if r > self.peak_pool_running[p]:
            self.peak_pool_running[p] = r
        r = self._host_limit[h] - self._host_free[h]
        if r > self.peak_host_running[h]:
            self.peak_host_running[h] = r

    def _work(self, job: _Job) -> float:
        """The bytes the job moves: known at its snapshot (now)."""
        f, vm, k = self.fleet, job.vm, job.attempt
        if self._grow:
            # ``est_bytes`` is the change over one RPO: the same rate per second elapsed.
            elapsed = max(self.now - self.last_good[vm], 0.0)
            work = min(self._est[vm] * elapsed / self._rpo[vm], self._full[vm])
        else:
            work = self._est[vm]
        work *= math.exp(f.overrun_mu + f.overrun_sigma * _NORMAL.inv_cdf(unit(f.seed, vm, k, 1)))
        if job.fails:
            work *= unit(f.seed, vm, k, 3)
        return max(work, 1.0)

    def _advance(self, p: int) -> None:
        """Progress pool ``p``'s running jobs to now."""
        dt = self.now - self._pool_clock[p]
        if dt <= 0:
            return
        total = 0.0
        for j in self.running[p]:
            j.left -= j.rate * dt
            total += j.rate
        self.moved[p] += total * dt
        if p in self.count_windows and total:
            self.counted[p] += total * self._overlap(p, self._pool_clock[p], self.now)
        self._pool_clock[p] = self.now

    def _overlap(self, p: int, a: float, b: float) -> float:
        windows, starts = self.count_windows[p], self._count_starts[p]
        i = max(0, bisect_right(starts, a) - 1)
        out = 0.0
        while i < len(windows) and windows[i][0] < b:
            lo, hi = max(a, windows[i][0]), min(b, windows[i][1])
            if hi > lo:
                out += hi - lo
            i += 1
        return out

    def _reshare(self, p: int) -> None:
        """Max-min fair shares of the pool's bandwidth; re-time the jobs whose rate changed."""
        self._advance(p)
        jobs = self.running[p]
        bandwidth = self._pool_bw[p]
        if bandwidth is None or sum(j.tp for j in jobs) <= bandwidth:
            rates = [(j, j.tp) for j in jobs]
        else:
            rates, left, count = [], bandwidth, len(jobs)
            for j in sorted(jobs, key=lambda j: j.tp):
                r = min(j.tp, left / count)
                rates.append((j, r))
                left -= r
                count -= 1
        now = self.now
        for j, r in rates:
            if r != j.rate:
                j.rate = r
                j.version += 1
                self._push(now + max(j.left, 0.0) / r, _FINISH, j, j.version)

    def _finish(self, job: _Job) -> None:
        p, h, vm, now = job.pool, job.host, job.vm, self.now
        self._advance(p)
        self.running[p].remove(job)
        self._pool_free[p] += 1
        self._host_free[h] += 1
        log = self.log
        log.vm.append(vm)
        log.pool.append(p)
        log.host.append(h)
        log.submit.append(job.submit)
        log.due.append(job.due)
        log.start.append(job.start)
        log.end.append(now)
        log.ok.append(not job.fails)
        if job.fails:
            self.failures += 1
            if job.start <= self.last_good[vm] + self._rpo[vm]:
                self.failed_in_time[vm] = True
            retry = self._cal[vm].next_open(now + self.fleet.retry_backoff, self._est_seconds[vm])
            if retry is not None and retry <= self.end:
                self.retry_at[vm] = retry
                self._push(retry, _RETRY, vm, 0)
            else:
                self.busy[vm] = False
        else:
            self._restore_point(vm, self.last_good[vm], job.start)
            self.last_good[vm] = max(self.last_good[vm], job.start)
            self.busy[vm] = False
        touched = {p}
        blocked = self._blocked[h]
        if blocked:
            self._blocked[h] = []
            for item in blocked:
                heapq.heappush(self._queue[item[1].pool], item)
                touched.add(item[1].pool)
        for q in sorted(touched, key=lambda q: self._queue[q][0][0] if self._queue[q] else math.inf):
            self._dispatch(q)
            self._reshare(q)

    # -- metrics -----------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """The run's figures.

        rpo_misses: VM intervals between consecutive good restore points (or from the last to
            the end) longer than the RPO; ``rpo_misses_after_failure`` of them had an attempt
            started by the deadline that failed. max_lateness_s: the longest excess.
            vm_hours_beyond_rpo: all excesses summed — the exposure. In overload the miss
            count alone rewards starving a few VMs for days (one long miss each) over
            spreading the delay; the exposure does not.
        peak_concurrency_ratio: most jobs running at once on a pool over its limit (the
            runtime never exceeds 1); ``peak_host_concurrency_ratio`` the same for hosts;
            ``peak_submitted_ratio``: most jobs submitted and not finished on a pool (queued or
            running) over its limit — what the strategy asked for at once.
        peak_backlog: most jobs submitted and waiting, fleet-wide.
        wait_from_due_p95_s: 95th percentile of when the VM became due (``Calendar.due``: the
            segment start at which a cron would submit it; the same for every strategy) to the
            start of each attempt; a job never started counts its wait until the end.
            Negative: started before it was due (the planner may run a backup a segment early).
        wait_from_submit_p95_s: the same from each job's own submission — only the queue; a
            strategy that submits a job when it may start has about 0 by construction, so
            this one does not compare strategies.
        deadline_slack_p5_s: 5th percentile, over every deadline reached, of the deadline less
            the start of the restore point that met it (negative: late; a deadline with no
            restore point by the end counts the end).
        utilisation_vs_bound: bytes moved on the counted pool inside its counted stretches over
            its bandwidth times their length. plan_seconds: wall time the strategy spent planning.
        hours_outside_windows: backup time spent outside its offering's open parts (a queue
            that runs on past the window's end, into the hours it was meant to keep free).
        """
        f, log = self.fleet, self.log
        starts = np.frombuffer(log.start, dtype=np.float64)
        waits = np.concatenate(
            (starts - np.frombuffer(log.submit, dtype=np.float64), np.asarray(self.unstarted_waits))
        )
        due_waits = np.concatenate(
            (starts - np.frombuffer(log.due, dtype=np.float64), np.asarray(self.unstarted_due_waits))
        )
        pool_ratio = [r / lim for r, lim in zip(self.peak_pool_running, self._pool_limit, strict=True)]
        host_ratio = [r / lim for r, lim in zip(self.peak_host_running, self._host_limit, strict=True)]
        submitted = [r / lim for r, lim in zip(self.peak_pool_submitted, self._pool_limit, strict=True)]
        util = None
        for p, windows in self.count_windows.items():
            seconds = sum(b - a for a, b in windows)
            bandwidth = self._pool_bw[p]
            if seconds and bandwidth:
                util = self.counted[p] / (bandwidth * seconds)
        return {
            "rpo_misses": self.rpo_misses,
            "rpo_misses_after_failure": self.rpo_misses_after_failure,
            "max_lateness_s": round(self.max_lateness, 1),
            "vm_hours_beyond_rpo": round(self.lateness_total / HOUR, 1),
            "peak_concurrency_ratio": round(max(pool_ratio, default=0.0), 4),
            "peak_host_concurrency_ratio": round(max(host_ratio, default=0.0), 4),
            "peak_submitted_ratio": round(max(submitted, default=0.0), 4),
            "peak_backlog": self.peak_backlog,
            "wait_from_due_p95_s": _percentile(due_waits, 95),
            "wait_from_submit_p95_s": _percentile(waits, 95),
            "deadline_slack_p5_s": _percentile(np.asarray(self.deadline_slacks), 5),
            "utilisation_vs_bound": None if util is None else round(util, 4),
            # Clamped: summing open time across parts leaves float noise below zero.
            "hours_outside_windows": round(max(self._seconds_outside_windows(), 0.0) / HOUR, 1),
            "plan_seconds": round(self.strategy.plan_seconds, 3),
            "plan_calls": self.strategy.plan_calls,
            "jobs": len(log.start),
            "failures": self.failures,
            "retries": self.retries,
            "tb_moved": round(sum(self.moved) / 1e12, 3),
            "vms": f.size,
        }

    def _seconds_outside_windows(self) -> float:
        f, log = self.fleet, self.log
        starts = np.frombuffer(log.start, dtype=np.float64)
        ends = np.frombuffer(log.end, dtype=np.float64)
        offering = f.offering[np.asarray(log.vm, dtype=np.int64)]
        outside = 0.0
        for k, cal in enumerate(f.calendars):
            mine = offering == k
            if mine.any():
                s, e = starts[mine], ends[mine]
                inside = _open_seconds_until(cal.parts, e) - _open_seconds_until(cal.parts, s)
                outside += float(((e - s) - inside).sum())
        return outside


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values.size else None


def _open_seconds_until(parts: Sequence[tuple[float, float]], t: np.ndarray) -> np.ndarray:
    """Open time from the first part up to each of ``t`` (parts sorted and disjoint)."""
    a = np.array([x for x, _ in parts])
    b = np.array([y for _, y in parts])
    before = np.concatenate(([0.0], np.cumsum(b - a)))
    i = np.searchsorted(a, t, side="right") - 1
    j = i.clip(0)
    return np.where(i >= 0, before[j] + np.minimum(t, b[j]) - a[j], 0.0)


# -- strategies ------------------------------------------------------------------------------------


class CronStrategy:
    """The classic ways: at every segment start of an offering (its window opening, plus 06:00
    for the 16 h gold RPO on a 18:00-08:00 window), submit every VM of it that would be overdue
    by the next one. ``order`` is how the burst is submitted:

    * "random" (herd): all at once, in random order (many crons firing together);
    * "fixed" (FIFO): all at once, always in the same order (Bacula's Maximum Concurrent Jobs);
    * "hashed" (jitter_hashed): each VM at its own stable offset into the segment's open time,
      what a competent operator configures (Jenkins ``H``, systemd's ``RandomizedDelaySec``
      with ``FixedRandomDelay=true``) with the range set to the window less the job's length;
      only a VM whose deadline falls before its offset is moved, to the same share of the open
      time left before its deadline — so it never starts after the deadline where there is
      room before it;
    * "random_delay" (jitter_random): a new random time over the segment's open time every
      night, ignoring the deadline — a strawman, kept only labelled as such.
    """

    plan_seconds = 0.0
    plan_calls = 0
    SEEDS = {"random": 1, "fixed": 2, "random_delay": 3, "hashed": 4}

    def __init__(self, name: str, order: str) -> None:
        self.name, self.order = name, order

    def start(self, sim: Simulation) -> None:
        f = sim.fleet
        self.rng = np.random.default_rng([f.seed, self.SEEDS[self.order]])
        # The hashed offsets: one per VM for the whole run, a pure function of the VM.
        self.offset = np.array([unit(f.seed, vm, 0, 5) for vm in range(f.size)])
        self.by_offering = [np.flatnonzero(f.offering == k) for k in range(len(f.calendars))]
        self.points: dict[float, list[tuple[int, int]]] = {}
        for k, cal in enumerate(f.calendars):
            for i, (s, _, _, _) in enumerate(cal.segments):
                if 0 <= s < f.end:
                    self.points.setdefault(s, []).append((k, i))
        for t in sorted(self.points):
            sim.wake_at(t)

    def wake(self, sim: Simulation, now: float) -> None:
        f = sim.fleet
        last_good = np.asarray(sim.last_good)
        busy = np.asarray(sim.busy, dtype=bool)
        for k, i in self.points.get(now, ()):
            cal = f.calendars[k]
            _, _, opens, following = cal.segments[i]
            idx = self.by_offering[k]
            due = idx[~busy[idx] & (last_good[idx] + cal.rpo <= following)]
            if self.order == "random":
                due = self.rng.permutation(due)
            if self.order == "random_delay":
                times = self._random_delay(opens, f.est_seconds[due])
            elif self.order == "hashed":
                times = self._hashed(now, opens, f.est_seconds[due], last_good[due] + cal.rpo, due)
            else:
                times = np.full(len(due), now)
            for vm, at in zip(due.tolist(), times.tolist(), strict=True):
                sim.submit(vm, at)

    def _random_delay(self, opens: list[tuple[float, float]], seconds: np.ndarray) -> np.ndarray:
        """Uniform over the open parts, each shortened so that the job still ends inside it."""
        starts = np.array([a for a, _ in opens])
        room = np.maximum(0.0, np.array([b - a for a, b in opens])[None, :] - seconds[:, None])
        room[room.sum(axis=1) == 0, 0] = 1e-9  # fits nowhere: its first part's start
        cum = np.cumsum(room, axis=1)
        x = self.rng.random(len(seconds)) * cum[:, -1]
        part = (cum <= x[:, None]).sum(axis=1).clip(0, len(opens) - 1)
        before = np.where(part > 0, cum[np.arange(len(seconds)), part - 1], 0.0)
        return starts[part] + x - before

    def _hashed(
        self,
        now: float,
        opens: list[tuple[float, float]],
        seconds: np.ndarray,
        deadlines: np.ndarray,
        vms: np.ndarray,
    ) -> np.ndarray:
        """Each VM's stable offset into the open parts, each shortened so the job still ends
        inside it; the same offset into the open time before the deadline for a VM whose slot
        lies after it; now for one with no room at all."""
        starts = np.array([a for a, _ in opens])
        ends = np.array([b for _, b in opens])
        h = self.offset[vms]
        latest = ends[None, :] - seconds[:, None]  # the last start that still ends in the part
        slot = _spread(starts, latest, h)
        late = slot > deadlines
        if late.any():
            slot[late] = _spread(starts, np.minimum(latest[late], deadlines[late, None]), h[late])
        return np.where(np.isnan(slot), now, slot)


def _spread(starts: np.ndarray, latest: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Row i: the point ``share[i]`` of the way through the union of [starts[j], latest[i, j]]
    (disjoint, in order); NaN where that union is empty."""
    room = np.maximum(0.0, latest - starts[None, :])
    cum = np.cumsum(room, axis=1)
    x = share * cum[:, -1]
    part = (cum <= x[:, None]).sum(axis=1).clip(0, len(starts) - 1)
    before = np.where(part > 0, cum[np.arange(len(share)), part - 1], 0.0)
    return np.where(cum[:, -1] > 0, starts[part] + x - before, np.nan)


def herd() -> CronStrategy:
    return CronStrategy("herd", "random")


def jitter_hashed() -> CronStrategy:
    return CronStrategy("jitter_hashed", "hashed")


def jitter_random() -> CronStrategy:
    return CronStrategy("jitter_random", "random_delay")


def fifo() -> CronStrategy:
    return CronStrategy("fifo", "fixed")


class PlannerStrategy:
    """The planner on a rolling horizon: every ``every`` seconds while a window is open (and at
    its opening), ``plan(...)`` from the actual state and submit each job planned up to the next
    re-plan (plus ``freeze``) at its start.

    A submission made by an earlier plan and due within ``freeze`` is a commitment: it is kept,
    and passed to the next plans as ``fixed`` (like the jobs running or queued), with room for
    an overrun (``hold``, a share of its planned length) — so a job is never moved at the last
    minute, and a re-plan only places the VMs with nothing in flight: those whose backup just
    finished or failed, and those newly due within the horizon.
    """

    name = "planner"

    def __init__(
        self,
        every: float = HOUR,
        horizon: timedelta = timedelta(hours=24),
        freeze: float = DAY,
        hold: float | None = None,
    ) -> None:
        self.every, self.horizon, self.freeze = every, horizon, freeze
        self.hold = planner_module.OVERRUN_HOLD if hold is None else hold
        self.plan_seconds = 0.0
        self.plan_calls = 0
        self.call_seconds: list[float] = []
        self.pending: dict[int, tuple[float, int, float]] = {}  # vm -> (submission, token, seconds)

    def start(self, sim: Simulation) -> None:
        f = sim.fleet
        self.base = f.planner_vms()
        self.index = {v: i for i, v in enumerate(f.vm_ids)}
        self.times = [
            t
            for t in np.arange(0.0, f.end, self.every).tolist()
            if any(a < t + self.every and t < b for cal in f.calendars for a, b in cal.parts)
        ]
        for t in self.times:
            sim.wake_at(t)

    def wake(self, sim: Simulation, now: float) -> None:
        f, t0 = sim.fleet, sim.fleet.t0
        slack = 1 + self.hold
        busy: dict[int, tuple[float, float]] = {}  # vm -> (start, end) that a plan must leave be
        for vm, state, start in sim.inflight():
            seconds = float(f.est_seconds[vm]) * slack
            busy[vm] = (start, max(start + seconds, now + 60.0) if state == "running" else start + seconds)
        pending, self.pending = self.pending, {}
        for vm, (at, token, seconds) in pending.items():
            if at < now or vm in busy:
                continue  # made (or dropped) already
            if at <= now + self.freeze:
                busy[vm] = (at, at + seconds * slack)
                self.pending[vm] = (at, token, seconds)
            else:
                sim.cancel(token)
        fixed = []
        for vm, (start, end) in busy.items():
            # Its slots held for the stretch, its estimated bytes spread over it.
            b = self.base[vm]
            fixed.append(
                FixedJob(
                    b.id, b.host_id, b.pool_bytes, t0 + timedelta(seconds=start), t0 + timedelta(seconds=end)
                )
            )
        last_good = sim.last_good
        vms = [
            VM(
                b.id,
                b.offering_id,
                b.host_id,
                b.pool_bytes,
                t0 + timedelta(seconds=last_good[i]),
                b.throughput,
            )
            for i, b in enumerate(self.base)
            if i not in busy
        ]
        clock = time.perf_counter()
        result = plan(vms, f.hosts, f.pools, f.offerings, f.at(now), self.horizon, fixed)
        spent = time.perf_counter() - clock
        self.plan_seconds += spent
        self.plan_calls += 1
        self.call_seconds.append(spent)
        i = bisect_right(self.times, now)
        until = (self.times[i] if i < len(self.times) else f.end) + self.freeze
        for job in result.jobs:
            at = (job.start - t0).total_seconds()
            if at > until:
                break
            vm = self.index[job.vm_id]
            if vm not in self.pending:
                seconds = (job.end - job.start).total_seconds()
                self.pending[vm] = (at, sim.submit(vm, at), seconds)


def strategies() -> list[Strategy]:
    return [herd(), fifo(), jitter_random(), jitter_hashed(), PlannerStrategy()]


# -- a whole comparison ----------------------------------------------------------------------------


@dataclass
class FleetReport:
    fleet: Fleet
    feasible: bool
    worst_pool: tuple[str, Any] | None  # (id, capacity.Bound) with the highest ratio over all nights
    worst_host: tuple[str, Any] | None
    busiest_pool: int  # index: the highest bytes/bandwidth ratio
    busiest_ratio: float  # > 1: its demand exceeds its window
    busiest_windows: list[tuple[float, float]]  # where that demand must run, simulation seconds
    # VMs whose failed backup cannot run again before its deadline (``capacity.retry_rooms``).
    vms_without_retry_room: int = 0


def assess(fleet: Fleet) -> FleetReport:
    """Capacity feasibility of every night, where the busiest pool's bytes must flow, and
    which VMs have no room to retry."""
    nights = fleet.capacity()
    worst_pool = max((c.worst("pool") for c in nights if c.pools), key=lambda kv: kv[1].ratio, default=None)
    worst_host = max((c.worst("host") for c in nights if c.hosts), key=lambda kv: kv[1].ratio, default=None)
    by_bytes = fleet.capacity([BANDWIDTH])
    index = {p.id: i for i, p in enumerate(fleet.pools)}
    ratios = {pid: max(c.pools[pid].ratio for c in by_bytes) for pid in index}
    busiest = max(ratios, key=lambda pid: (ratios[pid], pid))
    windows = sorted(
        (fleet.seconds(iv.start), fleet.seconds(iv.end)) for c in by_bytes for iv in c.pools[busiest].window
    )
    return FleetReport(
        fleet=fleet,
        feasible=all(c.feasible for c in nights),
        worst_pool=worst_pool,
        worst_host=worst_host,
        busiest_pool=index[busiest],
        busiest_ratio=ratios[busiest],
        busiest_windows=[(a, b) for a, b in windows if b > 0 and a < fleet.end],
        vms_without_retry_room=sum(
            len(r.short)
            for r in retry_rooms(
                fleet.planner_vms(),
                fleet.pools,
                fleet.offerings,
                fleet.t0,
                timedelta(seconds=fleet.spec.retry_backoff),
            )
        ),
    )


def simulate(fleet: Fleet, strategy: Strategy, report: FleetReport | None = None) -> Simulation:
    report = report or assess(fleet)
    return Simulation(fleet, strategy, {report.busiest_pool: report.busiest_windows}).run()
