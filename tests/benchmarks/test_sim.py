"""The fleet simulator: the runtime's limits, retries, metrics, and the strategies on tiny fleets."""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from datetime import timedelta

import numpy as np
import pytest

from benchmarks import sim
from orchestrator.planner.model import Host, Pool

MiB = 2**20
DAY = 86400.0


class Scripted:
    """Submits given (vm, at) pairs and nothing else."""

    name = "scripted"
    plan_seconds = 0.0
    plan_calls = 0

    def __init__(self, submissions: list[tuple[int, float]]) -> None:
        self.submissions = submissions

    def start(self, s: sim.Simulation) -> None:
        for vm, at in self.submissions:
            s.submit(vm, at)

    def wake(self, s: sim.Simulation, now: float) -> None:
        pass


def tiny(**spec) -> sim.Fleet:
    defaults = {"vms": 120, "hosts": 4, "pools": 2, "days": 2, "host_slots": 2, "pool_slots": 3}
    return sim.make_fleet(sim.FleetSpec(**{**defaults, **spec}))


def log_rows(result: sim.Simulation) -> list[tuple[int, int, int, float, float, float, bool]]:
    log = result.log
    return list(zip(log.vm, log.pool, log.host, log.submit, log.start, log.end, log.ok, strict=True))


def peak_from_intervals(intervals: list[tuple[float, float]]) -> int:
    # Ends before starts at the same instant: a slot freed is a slot taken.
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1])
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def first_silver_opening(fleet: sim.Fleet) -> float:
    silver = fleet.calendars[[o.id for o in fleet.offerings].index("silver")]
    return next(s for s, _, _, _ in silver.segments if s >= 0)


# -- the fleet --------------------------------------------------------------------------------------


def test_fleet_is_deterministic_and_starts_steady():
    a, b = tiny(seed=7), tiny(seed=7)
    assert a.vm_ids == b.vm_ids
    assert np.array_equal(a.est_bytes, b.est_bytes)
    assert np.array_equal(a.last_good, b.last_good)
    assert not np.array_equal(a.est_bytes, tiny(seed=8).est_bytes)
    # Every VM's last restore point is in the past, inside an open part of its windows, and
    # its next one is not due before its offering's next window opens.
    for vm in range(a.size):
        cal = a.calendars[a.offering[vm]]
        last = a.last_good[vm]
        assert last < 0
        assert cal.part_at(last) is not None
        opening = next(s for s, _, _, _ in cal.segments if s >= 0)
        assert last + cal.rpo >= opening


def test_unit_draws_are_pure_and_uniform():
    assert sim.unit(1, 2, 3, 4) == sim.unit(1, 2, 3, 4)
    draws = np.array([sim.unit(1, vm, 0, 1) for vm in range(5000)])
    assert draws.min() > 0
    assert draws.max() < 1
    assert abs(draws.mean() - 0.5) < 0.02


# -- the runtime ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make", [sim.herd, sim.fifo, sim.jitter_hashed, sim.jitter_random, sim.PlannerStrategy]
)
def test_limits_are_never_exceeded_whatever_is_submitted(make):
    fleet = tiny(vms=150, host_slots=1, pool_slots=2, failure_rate=0.1)
    result = sim.simulate(fleet, make())
    rows = log_rows(result)
    assert rows
    by_pool, by_host = defaultdict(list), defaultdict(list)
    for _, pool, host, submit, start, end, _ in rows:
        assert submit <= start < end
        by_pool[pool].append((start, end))
        by_host[host].append((start, end))
    for pool, intervals in by_pool.items():
        assert peak_from_intervals(intervals) <= fleet.pools[pool].max_concurrent
    for host, intervals in by_host.items():
        assert peak_from_intervals(intervals) <= fleet.hosts[host].max_concurrent
    metrics = result.metrics()
    assert metrics["peak_concurrency_ratio"] <= 1
    assert metrics["peak_host_concurrency_ratio"] <= 1
    # Nothing starts after the end; a VM never has two jobs at once.
    assert all(start <= fleet.end for *_, start, _, _ in rows)
    per_vm = defaultdict(list)
    for vm, *_, start, end, _ in rows:
        per_vm[vm].append((start, end))
    assert all(peak_from_intervals(iv) == 1 for iv in per_vm.values())


def test_a_failed_backup_is_retried_at_the_next_open_instant_after_the_backoff():
    fleet = tiny(vms=1, hosts=1, pools=1, days=2, mix=(0, 1, 0), failure_rate=1.0)
    cal = fleet.calendars[fleet.offering[0]]
    opening = first_silver_opening(fleet)
    result = sim.Simulation(fleet, Scripted([(0, opening)])).run()
    rows = log_rows(result)
    assert len(rows) >= 2
    assert not any(ok for *_, ok in rows)
    for before, after in itertools.pairwise(rows):
        retry = cal.next_open(before[5] + fleet.retry_backoff, fleet.est_seconds[0])
        assert after[3] == pytest.approx(retry)
        part = cal.part_at(after[3])
        assert part is not None
        assert after[3] + fleet.est_seconds[0] <= part[1]
    # It kept trying into the next night, not only inside the first open part.
    assert rows[-1][3] > opening + DAY
    assert result.failures == len(rows)
    assert result.retries == len(rows) - 1
    # The last failure got no retry: the next open instant is past the end.
    assert cal.next_open(rows[-1][5] + fleet.retry_backoff, fleet.est_seconds[0]) > fleet.end


def blackout_of(fleet: sim.Fleet) -> tuple[float, float]:
    """The first night's silver blackout (22:00-23:00), simulation seconds."""
    opening = first_silver_opening(fleet)
    cal = fleet.calendars[[o.id for o in fleet.offerings].index("silver")]
    (a, b), (c, _) = [part for part in cal.parts if part[0] >= opening][:2]
    assert (a, b - a, c - b) == (opening, 2 * 3600, 3600)
    return b, c


@pytest.mark.parametrize("make", [sim.herd, sim.fifo, sim.jitter_hashed])
def test_a_retry_whose_backoff_ends_in_a_blackout_runs_when_the_blackout_ends(make):
    # Twelve 600 s jobs through one pool slot from 20:00, every attempt failing part-way:
    # failures keep coming up to 22:00, and those whose backoff ends inside the blackout go
    # again at 23:00 — for the cron strategies too, not at the next night's cron.
    fleet = hand_made(vms=12, failure_rate=1.0)
    closes, reopens = blackout_of(fleet)
    rows = log_rows(sim.simulate(fleet, make()))
    crossed = [
        (before, after)
        for before, after in itertools.pairwise(sorted(rows, key=lambda r: (r[0], r[4])))
        if before[0] == after[0] and closes <= before[5] + fleet.retry_backoff < reopens
    ]
    assert crossed
    assert all(after[3] == reopens for _, after in crossed)


def test_a_retry_that_succeeds_is_the_restore_point():
    fleet = tiny(vms=300, failure_rate=0.3, days=1)
    result = sim.simulate(fleet, sim.fifo())
    rows = log_rows(result)
    failed = {vm for vm, *_, ok in rows if not ok}
    saved = [vm for vm in failed if any(v == vm and ok for v, *_, ok in rows)]
    assert saved
    for vm in saved:
        good = max(start for v, *_, start, _, ok in rows if v == vm and ok)
        assert result.last_good[vm] == good


def test_bandwidth_is_shared_and_slows_jobs_down():
    # Two 600 s jobs (alone) on a pool that fits both but has the bandwidth of one: 1200 s each.
    fleet = hand_made(pool_slots=2)
    opening = first_silver_opening(fleet)
    result = sim.Simulation(fleet, Scripted([(0, opening), (1, opening)])).run()
    rows = log_rows(result)
    assert [r[4] for r in rows] == [opening, opening]
    assert [r[5] for r in rows] == pytest.approx([opening + 1200, opening + 1200])


# -- metrics on a hand-made example -----------------------------------------------------------------


def hand_made(pool_slots: int = 1, vms: int = 2, failure_rate: float = 0.0, grow: bool = False) -> sim.Fleet:
    """``vms`` silver VMs on one host (2 slots) and one pool (``pool_slots``, 10 MiB/s); each
    backup reads 600 s worth at 10 MiB/s, exactly as estimated (``grow``: scaled by the time
    since the last backup over the RPO), and fails with ``failure_rate``. All were last backed
    up one RPO less 5 minutes before the window opens: due 5 minutes after it opens."""
    base = sim.make_fleet(
        sim.FleetSpec(
            vms=vms,
            hosts=1,
            pools=1,
            days=1,
            mix=(0, 1, 0),
            failure_rate=failure_rate,
            overrun_median=1.0,
            overrun_sigma=0.0,
            bytes_grow=grow,
        )
    )
    bandwidth = 10 * MiB
    opening = first_silver_opening(base)
    return dataclasses.replace(
        base,
        hosts=[Host("h0", 2)],
        pools=[Pool("p0", pool_slots, float(bandwidth))],
        est_bytes=np.array([600 * bandwidth] * vms, dtype=np.int64),
        full_bytes=np.array([6000 * bandwidth] * vms, dtype=np.int64),
        throughput=np.array([bandwidth] * vms, dtype=float),
        est_seconds=np.array([600.0] * vms),
        last_good=np.array([opening - base.rpo[0] + 300] * vms),
    )


def test_metrics_of_a_hand_made_night():
    fleet = hand_made()
    opening = first_silver_opening(fleet)
    report = sim.assess(fleet)
    result = sim.simulate(fleet, Scripted([(0, opening), (1, opening)]), report)
    rows = log_rows(result)
    # One pool slot: the second job waits for the first.
    assert [(r[0], r[4], r[5]) for r in rows] == [
        (0, opening, opening + 600),
        (1, opening + 600, opening + 1200),
    ]
    m = result.metrics()
    assert m["jobs"] == 2
    assert m["peak_backlog"] == 1
    # Both were due at the opening (the last segment start before their deadline) and
    # submitted then: from due and from submission, 0 s and 600 s.
    assert m["wait_from_submit_p95_s"] == pytest.approx(0.95 * 600)
    assert m["wait_from_due_p95_s"] == pytest.approx(0.95 * 600)
    # Deadlines 5 minutes after the opening: 300 s to spare, and 300 s late.
    assert m["deadline_slack_p5_s"] == pytest.approx(-300 + 0.05 * 600)
    assert m["peak_concurrency_ratio"] == 1.0
    assert m["peak_host_concurrency_ratio"] == 0.5
    assert m["peak_submitted_ratio"] == 2.0
    # vm 0 started on time; vm 1 started 600 s after the opening, 300 s past its deadline.
    # The rest of the day (to noon) is within the RPO for both.
    assert m["rpo_misses"] == 1
    assert m["max_lateness_s"] == pytest.approx(300)
    assert m["vm_hours_beyond_rpo"] == pytest.approx(300 / 3600, abs=0.05)
    assert m["hours_outside_windows"] == 0
    # 1200 s of the pool's bandwidth used in the 9 open hours of the silver night.
    assert report.busiest_windows == [
        (opening, opening + 2 * 3600),
        (opening + 3 * 3600, opening + 10 * 3600),
    ]
    assert m["utilisation_vs_bound"] == pytest.approx(1200 / (9 * 3600), abs=1e-4)
    assert m["plan_seconds"] == 0.0


def test_wait_is_measured_from_when_the_vm_became_due_not_from_its_submission():
    fleet = hand_made()
    opening = first_silver_opening(fleet)
    later = opening + 1000
    m = sim.simulate(fleet, Scripted([(0, later), (1, later)])).metrics()
    assert m["wait_from_submit_p95_s"] == pytest.approx(0.95 * 600)
    assert m["wait_from_due_p95_s"] == pytest.approx(1000 + 0.95 * 600)
    # Started 700 s and 1300 s after their deadlines; the next ones fall after the end.
    assert m["deadline_slack_p5_s"] == pytest.approx(-1300 + 0.05 * 600)


def test_a_deadline_passed_with_no_backup_counts_its_slack_to_the_end():
    fleet = hand_made()
    m = sim.Simulation(fleet, Scripted([])).run().metrics()
    deadline = fleet.last_good[0] + fleet.rpo[0]
    assert m["deadline_slack_p5_s"] == pytest.approx(deadline - fleet.end)
    assert m["wait_from_due_p95_s"] is None  # nothing was submitted


def test_a_job_moves_what_changed_since_the_last_backup_up_to_the_full_size():
    # est_bytes is the change over one RPO: one started half an RPO after its last backup
    # moves half of it, one started a day late far more, the full size at most.
    fleet = hand_made(grow=True)
    opening = first_silver_opening(fleet)
    rpo = fleet.rpo[0]
    fleet.last_good[:] = [opening - rpo / 2, opening - rpo - DAY]
    # One after the other, so that each has the pool's bandwidth to itself.
    submissions = [(0, opening), (1, opening + 1000)]
    rows = log_rows(sim.Simulation(fleet, Scripted(submissions)).run())
    seconds = {vm: end - start for vm, *_, start, end, _ in rows}
    assert seconds[0] == pytest.approx(300)
    assert seconds[1] == pytest.approx(600 * (rpo + DAY + 1000) / rpo)
    small = dataclasses.replace(fleet, full_bytes=np.array([400 * 10 * MiB] * 2, dtype=np.int64))
    rows = log_rows(sim.Simulation(small, Scripted(submissions)).run())
    seconds = {vm: end - start for vm, *_, start, end, _ in rows}
    assert seconds == pytest.approx({0: 300, 1: 400})


def test_a_job_running_into_a_blackout_counts_its_time_outside_the_window():
    fleet = hand_made()
    opening = first_silver_opening(fleet)
    # The first open part ends at 22:00 (the blackout): 300 s of the 600 s job fall in it.
    result = sim.simulate(fleet, Scripted([(0, opening + 2 * 3600 - 300)]))
    assert result.metrics()["hours_outside_windows"] == pytest.approx(300 / 3600, abs=0.05)


def test_a_vm_never_backed_up_again_counts_its_gap_to_the_end():
    fleet = hand_made()
    result = sim.Simulation(fleet, Scripted([])).run()
    m = result.metrics()
    assert m["rpo_misses"] == 2
    gap = fleet.end - (fleet.last_good[0] + fleet.rpo[0])
    assert m["max_lateness_s"] == pytest.approx(gap)
    assert m["vm_hours_beyond_rpo"] == pytest.approx(2 * gap / 3600, abs=0.05)


# -- strategies -------------------------------------------------------------------------------------


def test_herd_queues_far_more_and_runs_outside_windows_unlike_the_planner():
    fleet = tiny(vms=400, hosts=10, pools=1, days=2, pool_slots=5, host_slots=2)
    report = sim.assess(fleet)
    herd = sim.simulate(fleet, sim.herd(), report).metrics()
    planned = sim.simulate(fleet, sim.PlannerStrategy(), report).metrics()
    assert herd["peak_backlog"] > 20 * planned["peak_backlog"]
    assert herd["peak_submitted_ratio"] > planned["peak_submitted_ratio"]
    # Five slots for a burst of hundreds: the herd's queue runs on past the window's end.
    assert herd["hours_outside_windows"] > 1
    assert planned["hours_outside_windows"] == 0
    assert planned["rpo_misses"] <= herd["rpo_misses"]
    assert planned["deadline_slack_p5_s"] >= herd["deadline_slack_p5_s"]
    assert planned["plan_calls"] > 0
    assert planned["plan_seconds"] > 0


class Recording(sim.Simulation):
    """Records every submission a strategy makes: (vm, at, now, deadline)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.made: list[tuple[int, float, float, float]] = []

    def submit(self, vm: int, at: float) -> int:
        self.made.append((vm, at, self.now, self.last_good[vm] + self.fleet.rpo[vm]))
        return super().submit(vm, at)


def roomy(**spec) -> sim.Fleet:
    """A fleet with slots to spare and no failures: a job starts when it is submitted."""
    return tiny(**{"vms": 200, "hosts": 10, "host_slots": 8, "pool_slots": 40, "failure_rate": 0.0, **spec})


@pytest.mark.parametrize("make", [sim.jitter_hashed, sim.herd, sim.jitter_random])
def test_jitter_hashed_submits_each_vm_at_the_same_time_every_night_and_spreads_them(make):
    fleet = roomy(days=4)
    # Each last backed up just before its previous window closed: no deadline falls before
    # a slot, so only the hashed offsets decide.
    for k, cal in enumerate(fleet.calendars):
        closed = max(b for _, b in cal.parts if b <= 0)
        fleet.last_good[fleet.offering == k] = closed - 60
    result = sim.simulate(fleet, make())
    slots = defaultdict(set)
    for vm, _, _, submit, *_ in log_rows(result):
        slots[vm].add(round(submit % DAY))
    gold = [o.id for o in fleet.offerings].index("gold")
    # Gold runs twice a night (the 18:00 and the 06:00 segment); the others once.
    stable = all(len(slots[vm]) == (2 if fleet.offering[vm] == gold else 1) for vm in slots)
    spread = len({t for ts in slots.values() for t in ts}) > fleet.size / 2
    assert len(slots) == fleet.size
    assert (stable and spread) == (make is sim.jitter_hashed)


def test_jitter_hashed_never_submits_after_the_deadline_where_there_is_room_and_random_does():
    fleet = roomy(days=3)
    late = {}
    for make in (sim.jitter_hashed, sim.jitter_random):
        result = Recording(fleet, make(), {}).run()
        assert result.made
        late[make().name] = sum(at > max(deadline, now) for _, at, now, deadline in result.made)
        for vm, at, now, _ in result.made:
            part = fleet.calendars[fleet.offering[vm]].part_at(at)
            # Inside the window, with time to finish there (or now, where nothing fits).
            assert at == now or (part is not None and at + fleet.est_seconds[vm] <= part[1])
    assert late["jitter_hashed"] == 0
    assert late["jitter_random"] > 0


def test_planner_meets_every_rpo_on_a_feasible_fleet_without_failures():
    fleet = tiny(vms=400, hosts=10, pools=1, days=3, pool_slots=6, host_slots=3, failure_rate=0.0)
    report = sim.assess(fleet)
    assert report.feasible
    m = sim.simulate(fleet, sim.PlannerStrategy(), report).metrics()
    assert m["rpo_misses"] == 0
    assert m["jobs"] > fleet.size


def test_every_strategy_sees_the_same_overruns_and_failures():
    fleet = tiny(vms=100, failure_rate=0.2)
    failed = {}
    for make in (sim.herd, sim.fifo):
        rows = log_rows(sim.simulate(fleet, make()))
        attempts = defaultdict(int)
        outcome = {}
        for vm, *_, ok in sorted(rows, key=lambda r: r[4]):
            outcome[(vm, attempts[vm])] = ok
            attempts[vm] += 1
        failed[make().name] = outcome
    common = failed["herd"].keys() & failed["fifo"].keys()
    assert common
    assert all(failed["herd"][k] == failed["fifo"][k] for k in common)


def test_planner_strategy_passes_jobs_in_flight_as_fixed(monkeypatch):
    fleet = tiny(vms=60, days=1)
    seen = []
    real = sim.plan

    def spy(vms, hosts, pools, offerings, now, horizon, fixed):
        fixed = list(fixed)
        seen.append(({v.id for v in vms}, {f.vm_id for f in fixed}))
        return real(vms, hosts, pools, offerings, now, horizon, fixed)

    monkeypatch.setattr(sim, "plan", spy)
    sim.simulate(fleet, sim.PlannerStrategy(every=3600, horizon=timedelta(hours=24)))
    assert len(seen) > 5
    assert any(fixed for _, fixed in seen[1:])
    # A VM with a job in flight or committed is not planned again until it is done.
    assert all(not (planned & fixed) for planned, fixed in seen)
