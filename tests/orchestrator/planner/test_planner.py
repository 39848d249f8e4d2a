"""The SLA planner: windows and blackouts, capacity limits, EDF, levelled load, stable slots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.sla import ServiceLevel
from orchestrator.planner import VM, FixedJob, Host, Offering, Plan, PlannedJob, Pool, plan
from orchestrator.planner.timemath import window_plans

MiB = 2**20
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def win(start: str, end: str, days: list[str] | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {"start": start, "end": end}
    if days is not None:
        raw["days"] = days
    return raw


def level(
    rpo: str = "24h",
    timezone: str = "UTC",
    windows: Sequence[dict[str, Any]] = (),
    blackouts: Sequence[dict[str, Any]] = (),
) -> ServiceLevel:
    return ServiceLevel.parse(rpo=rpo, timezone=timezone, windows=list(windows), blackouts=list(blackouts))


def vm(
    vm_id: str,
    *,
    minutes: int = 10,
    host: str = "h1",
    pool: str = "p1",
    offering: str = "o",
    last_good: datetime | None = None,
) -> VM:
    """A VM whose backup takes exactly ``minutes`` (it reads 1 MiB/s)."""
    return VM(vm_id, offering, host, {pool: minutes * 60 * MiB}, last_good=last_good, throughput=MiB)


def plan_one_offering(
    vms: Sequence[VM],
    service: ServiceLevel,
    now: datetime = NOW,
    *,
    hosts: Sequence[Host] = (Host("h1", 100),),
    pools: Sequence[Pool] = (Pool("p1", 1000),),
    fixed: Sequence[FixedJob] = (),
    horizon: timedelta = DAY,
) -> Plan:
    return plan(vms, hosts, pools, [Offering("o", service)], now, horizon, fixed)


def first_jobs(result: Plan) -> dict[str, PlannedJob]:
    out: dict[str, PlannedJob] = {}
    for job in result.jobs:
        out.setdefault(job.vm_id, job)
    return out


def peak_concurrency(jobs: Sequence[PlannedJob]) -> int:
    events = sorted([(j.start, 1) for j in jobs] + [(j.end, -1) for j in jobs], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def busiest_ten_minutes(starts: Sequence[datetime]) -> int:
    """The most starts falling in any 10-minute span."""
    return max(sum(1 for t in starts if s <= t < s + timedelta(minutes=10)) for s in starts)


def local_minutes(job: PlannedJob, zone: ZoneInfo) -> list[time]:
    """Local wall time of every minute the job runs."""
    out, at = [], job.start
    while at < job.end:
        out.append(at.astimezone(zone).time())
        at += timedelta(minutes=1)
    return out


# -- a bad offering never reaches the planner -------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"windows": [win("20:00", "20:00")]}, "zero length", id="zero-length-window"),
        pytest.param(
            {"windows": [win("20:00", "06:00")], "blackouts": [win("19:00", "07:00")]},
            "cover every backup window",
            id="blackout-covers-window",
        ),
        pytest.param(
            {"rpo": "12h", "windows": [win("01:00", "03:00")]}, "can never be met", id="rpo-shorter-than-gap"
        ),
        pytest.param({"rpo": "10m"}, "shorter than any backup", id="rpo-under-15-minutes"),
    ],
)
def test_bad_offering_is_rejected_before_planning(kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        level(**{"rpo": "24h", **kwargs})


# -- windows and blackouts --------------------------------------------------------------------------

NIGHTS = level(
    rpo="24h", timezone="Europe/Berlin", windows=[win("20:00", "06:00")], blackouts=[win("23:00", "00:30")]
)


DST_NIGHTS = [
    pytest.param("Europe/Berlin", date(2026, 3, 28), id="berlin-spring"),
    pytest.param("Europe/Berlin", date(2026, 10, 24), id="berlin-autumn"),
    pytest.param("America/New_York", date(2026, 3, 7), id="new-york-spring"),
    pytest.param("America/New_York", date(2026, 10, 31), id="new-york-autumn"),
]


def plan_dst_night(timezone: str, now: datetime) -> Plan:
    """30 VMs of 5 min to 2 h, due over the day, on a 20:00-06:00 window with a 23:00-00:30 blackout."""
    service = level(
        rpo="24h", timezone=timezone, windows=[win("20:00", "06:00")], blackouts=[win("23:00", "00:30")]
    )
    vms = [
        vm(f"vm-{i}", minutes=5 + (i * 37) % 116, host=f"h{i % 3}", last_good=now - timedelta(hours=i % 9))
        for i in range(30)
    ]
    hosts = [Host(f"h{i}", 2) for i in range(3)]
    return plan_one_offering(vms, service, now, hosts=hosts, pools=[Pool("p1", 4)])


@pytest.mark.parametrize(("timezone", "evening"), DST_NIGHTS)
def test_no_job_runs_in_a_blackout_or_outside_its_window_on_dst_nights(timezone, evening):
    zone = ZoneInfo(timezone)
    result = plan_dst_night(timezone, datetime.combine(evening, time(12), zone).astimezone(UTC))

    assert len(first_jobs(result)) == 30
    for job in result.jobs:
        for t in local_minutes(job, zone):
            assert t >= time(20) or t < time(6), f"{job} runs outside the window at {t}"
            assert time(0, 30) <= t < time(23), f"{job} runs in the blackout at {t}"


@pytest.mark.parametrize(("timezone", "evening"), [DST_NIGHTS[0], DST_NIGHTS[3]])
def test_now_given_in_a_local_time_zone_plans_the_same_as_in_utc(timezone, evening):
    noon = datetime.combine(evening, time(12), ZoneInfo(timezone))

    def instants(result: Plan) -> list[tuple[str, datetime, datetime, datetime]]:
        return [(j.vm_id, *(t.astimezone(UTC) for t in (j.start, j.end, j.deadline))) for j in result.jobs]

    assert instants(plan_dst_night(timezone, noon)) == instants(
        plan_dst_night(timezone, noon.astimezone(UTC))
    )


def test_job_is_placed_in_the_open_part_it_fits_in():
    # Before the blackout only 3 h are open, after it 5.5 h: a 4 h backup must go after it.
    evening = datetime(2026, 6, 1, 12, tzinfo=BERLIN).astimezone(UTC)
    result = plan_one_offering([vm("big", minutes=240)], NIGHTS, evening)
    (job,) = result.jobs
    assert job.start >= datetime(2026, 6, 2, 0, 30, tzinfo=BERLIN)
    assert job.end <= datetime(2026, 6, 2, 6, 0, tzinfo=BERLIN)


def test_job_longer_than_any_open_part_is_unplaceable_with_a_reason():
    evening = datetime(2026, 6, 1, 12, tzinfo=BERLIN).astimezone(UTC)
    result = plan_one_offering([vm("huge", minutes=6 * 60), vm("small", minutes=30)], NIGHTS, evening)
    assert [j.vm_id for j in result.jobs] == ["small"]
    assert [u.vm_id for u in result.unplaceable] == ["huge"]
    assert "longer than any open part" in result.unplaceable[0].reason


def test_job_never_spans_two_open_parts_even_where_they_touch():
    # All-day windows touch at midnight; a job may not run across it.
    now = datetime(2026, 6, 1, 20, tzinfo=UTC)
    result = plan_one_offering([vm(f"vm-{i}", minutes=180) for i in range(20)], level(rpo="24h"), now)
    assert len(result.jobs) == 20
    assert all(j.start.date() == (j.end - timedelta(microseconds=1)).date() for j in result.jobs)


# -- capacity, property-based ------------------------------------------------------------------------

LEVELS = {
    "berlin-nights": NIGHTS,
    "any-time-6h": level(rpo="6h"),
    "ny-weeknights": level(
        rpo="3d",
        timezone="America/New_York",
        windows=[win("22:00", "04:00", ["mon", "tue", "wed", "thu", "fri"])],
    ),
}
OFFERINGS = [Offering(k, v) for k, v in LEVELS.items()]
START_DAYS = [
    datetime(2026, 3, 28, 6, tzinfo=UTC),
    datetime(2026, 10, 24, 6, tzinfo=UTC),
    datetime(2026, 3, 7, 12, tzinfo=UTC),
    datetime(2026, 6, 5, 0, tzinfo=UTC),
]


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[Host], list[Pool], datetime, list[VM], list[FixedJob]]:
    hosts = [Host(f"h{i}", draw(st.integers(1, 3))) for i in range(draw(st.integers(1, 3)))]
    pools = [
        Pool(f"p{i}", draw(st.integers(1, 4)), draw(st.sampled_from([None, 2 * MiB, 3 * MiB])))
        for i in range(draw(st.integers(1, 2)))
    ]
    now = draw(st.sampled_from(START_DAYS)) + timedelta(minutes=draw(st.integers(0, 24 * 60 - 1)))
    vms = []
    for i in range(draw(st.integers(1, 10))):
        offering = draw(st.sampled_from(OFFERINGS))
        rpo_minutes = offering.level.rpo_seconds // 60
        used = draw(st.lists(st.sampled_from(pools), min_size=1, max_size=len(pools), unique=True))
        pool_bytes = {p.id: draw(st.integers(0, 90)) * 60 * MiB for p in used}
        ago = draw(st.none() | st.integers(0, 2 * rpo_minutes))
        vms.append(
            VM(
                f"vm-{i}",
                offering.id,
                draw(st.sampled_from(hosts)).id,
                pool_bytes,
                last_good=None if ago is None else now - timedelta(minutes=ago),
                throughput=draw(st.sampled_from([MiB, 2 * MiB])),
            )
        )
    fixed = []
    for i in range(draw(st.integers(0, 3))):
        start = now + timedelta(minutes=draw(st.integers(-60, 20 * 60)))
        used = draw(st.lists(st.sampled_from(pools), max_size=len(pools), unique=True))
        fixed.append(
            FixedJob(
                f"fixed-{i}",
                draw(st.sampled_from(hosts)).id,
                {p.id: draw(st.integers(0, 60)) * 60 * MiB for p in used},
                start,
                start + timedelta(minutes=draw(st.integers(1, 120))),
            )
        )
    return hosts, pools, now, vms, fixed


def assert_limits_hold(
    result: Plan, vms: Sequence[VM], hosts: Sequence[Host], pools: Sequence[Pool], fixed: Sequence[FixedJob]
) -> None:
    """Sweep every stretch of time: wherever a planned job runs, its host and pools are within limits.

    Fixed jobs count towards the load; they may overload a host on their own, but then no planned
    job may be added there.
    """
    by_id = {v.id: v for v in vms}
    loads = []  # (start, end, host, bytes/s per pool, planned?)
    for j in result.jobs:
        seconds = (j.end - j.start).total_seconds()
        rates = {p: b / seconds for p, b in by_id[j.vm_id].pool_bytes.items()}
        loads.append((j.start, j.end, by_id[j.vm_id].host_id, rates, True))
    for f in fixed:
        seconds = (f.end - f.start).total_seconds()
        loads.append((f.start, f.end, f.host_id, {p: b / seconds for p, b in f.pool_bytes.items()}, False))
    points = sorted({t for load in loads for t in load[:2]})
    for a, b in pairwise(points):
        active = [load for load in loads if load[0] <= a and b <= load[1]]
        for host in hosts:
            on_host = [load for load in active if load[2] == host.id]
            if any(load[4] for load in on_host):
                assert len(on_host) <= host.max_concurrent, f"host {host.id} over its limit at {a}"
        for pool in pools:
            on_pool = [load for load in active if pool.id in load[3]]
            if any(load[4] for load in on_pool):
                assert len(on_pool) <= pool.max_concurrent, f"pool {pool.id} over its limit at {a}"
                if pool.bandwidth:
                    used = sum(load[3][pool.id] for load in on_pool)
                    assert used <= pool.bandwidth * (1 + 1e-6), f"pool {pool.id} over its bandwidth at {a}"


@settings(max_examples=80, deadline=None)
@given(fleet=fleets())
def test_random_fleets_respect_windows_limits_and_fixed_jobs(fleet):
    hosts, pools, now, vms, fixed = fleet
    result = plan(vms, hosts, pools, OFFERINGS, now, DAY, fixed)

    assert_limits_hold(result, vms, hosts, pools, fixed)
    open_parts = {
        o.id: [p for wp in window_plans(o.level, now - 4 * DAY, now + 4 * DAY) for p in wp.open]
        for o in OFFERINGS
    }
    for job in result.jobs:
        assert job.start >= now
        assert job.start < job.end
        assert any(p.start <= job.start and job.end <= p.end for p in open_parts[job.offering_id]), job
        if not job.late:
            assert job.start <= job.deadline
    # Nobody due within the horizon is silently dropped.
    rpo = {o.id: timedelta(seconds=o.level.rpo_seconds) for o in OFFERINGS}
    due = {v.id for v in vms if (v.last_good or now) + rpo[v.offering_id] <= now + DAY}
    assert due <= {j.vm_id for j in result.jobs} | {u.vm_id for u in result.unplaceable}
    assert not {j.vm_id for j in result.jobs} & {f.vm_id for f in fixed}


def test_fixed_job_takes_capacity_and_the_planned_job_goes_around_it():
    service = level(rpo="24h", windows=[win("01:00", "03:00")])
    now = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    busy = FixedJob(
        "adhoc", "h1", {"p1": 0}, datetime(2026, 6, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, 2, 30, tzinfo=UTC)
    )
    result = plan_one_offering([vm("a", minutes=30)], service, now, hosts=[Host("h1", 1)], fixed=[busy])
    (job,) = result.jobs
    assert job.start == datetime(2026, 6, 1, 2, 30, tzinfo=UTC)
    assert not job.late


def test_fixed_job_ending_mid_minute_still_holds_its_last_minute():
    busy = FixedJob("running", "h1", {"p1": 0}, NOW, NOW + timedelta(minutes=30, seconds=30))
    lone = vm("a", minutes=1, last_good=NOW - timedelta(hours=23, minutes=30))  # due at 12:30
    result = plan_one_offering([lone], level(rpo="24h"), hosts=[Host("h1", 1)], fixed=[busy])
    (job,) = result.jobs
    assert job.start >= busy.end or job.end <= busy.start


def test_vm_reading_from_a_pool_the_planner_was_not_given_does_not_crash_the_plan():
    stray = VM("a", "o", "h1", {"unknown": 60 * MiB}, throughput=MiB)
    result = plan_one_offering([stray], level(rpo="24h"))
    assert [j.vm_id for j in result.jobs] + [u.vm_id for u in result.unplaceable] == ["a"]


# -- who waits: earliest deadline first -------------------------------------------------------------

ONE_HOUR_AT_1AM = level(rpo="24h", windows=[win("01:00", "02:00")])
MIDNIGHT = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hosts", "pools", "host_of_later"),
    [
        pytest.param([Host("h1", 1)], [Pool("p1", 5)], "h1", id="host-concurrency"),
        pytest.param([Host("h1", 5), Host("h2", 5)], [Pool("p1", 1)], "h2", id="pool-concurrency"),
        pytest.param(
            [Host("h1", 5), Host("h2", 5)], [Pool("p1", 5, bandwidth=1.5 * MiB)], "h2", id="pool-bandwidth"
        ),
    ],
)
def test_earliest_deadline_gets_the_only_slot_and_the_other_is_late(hosts, pools, host_of_later):
    # The window fits one hour-long backup; "sooner" is due at 01:30, "later" at 01:45.
    later = vm(
        "later", minutes=60, host=host_of_later, last_good=MIDNIGHT - DAY + timedelta(hours=1, minutes=45)
    )
    sooner = vm("sooner", minutes=60, host="h1", last_good=MIDNIGHT - DAY + timedelta(hours=1, minutes=30))
    result = plan_one_offering([later, sooner], ONE_HOUR_AT_1AM, MIDNIGHT, hosts=hosts, pools=pools)

    jobs = first_jobs(result)
    assert jobs["sooner"].start == datetime(2026, 6, 1, 1, tzinfo=UTC)
    assert not jobs["sooner"].late
    assert jobs["later"].late
    assert jobs["later"].lateness_seconds > 0
    assert jobs["later"].start == datetime(2026, 6, 2, 1, tzinfo=UTC)
    assert [j.vm_id for j in result.late] == ["later"]


def test_infeasible_fleet_makes_the_latest_deadlines_wait():
    # One hour of window, two backups at a time, five hour-long backups due that morning.
    deadlines = {f"vm-{i}": MIDNIGHT + timedelta(hours=1, minutes=10 * i) for i in range(5)}
    vms = [vm(v, minutes=60, last_good=d - DAY) for v, d in reversed(deadlines.items())]
    result = plan_one_offering(vms, ONE_HOUR_AT_1AM, MIDNIGHT, hosts=[Host("h1", 2)])

    on_time = {j.vm_id for j in result.jobs if not j.late}
    waiting = {j.vm_id for j in result.late} | {u.vm_id for u in result.unplaceable}
    assert on_time == {"vm-0", "vm-1"}
    assert waiting == {"vm-2", "vm-3", "vm-4"}
    assert all(j.lateness_seconds > 0 for j in result.late)


def test_late_job_still_fits_inside_an_open_part():
    # Due at 01:00 but the host is busy until 01:45: 15 minutes are left, too few for 30.
    busy = FixedJob(
        "adhoc", "h1", {"p1": 0}, MIDNIGHT + timedelta(hours=1), MIDNIGHT + timedelta(hours=1, minutes=45)
    )
    due = vm("a", minutes=30, last_good=MIDNIGHT - DAY + timedelta(hours=1))
    result = plan_one_offering([due], ONE_HOUR_AT_1AM, MIDNIGHT, hosts=[Host("h1", 1)], fixed=[busy])
    (job,) = result.jobs
    assert job.late
    assert job.start == datetime(2026, 6, 2, 1, tzinfo=UTC)


def test_vm_with_no_capacity_anywhere_is_unplaceable_with_a_reason():
    blocked = FixedJob("x", "h1", {"p1": 0}, NOW - timedelta(hours=1), NOW + 5 * DAY)
    result = plan_one_offering([vm("a")], level(rpo="24h"), hosts=[Host("h1", 1)], fixed=[blocked])
    assert result.jobs == []
    assert [u.vm_id for u in result.unplaceable] == ["a"]
    assert "no capacity" in result.unplaceable[0].reason


# -- levelled load ---------------------------------------------------------------------------------


def test_ample_capacity_spreads_vms_over_the_window():
    service = level(rpo="24h", timezone="Europe/Berlin", windows=[win("20:00", "04:00")])
    vms = [vm(f"vm-{i}", minutes=4, host=f"h{i % 4}") for i in range(60)]
    noon = datetime(2026, 6, 1, 12, tzinfo=BERLIN).astimezone(UTC)
    result = plan_one_offering(vms, service, noon, hosts=[Host(f"h{i}", 10) for i in range(4)])

    assert len(result.jobs) == 60
    assert not result.late
    assert peak_concurrency(result.jobs) <= 10
    assert busiest_ten_minutes([j.start for j in result.jobs]) <= 6


def test_fresh_vms_without_windows_are_spread_not_piled_on_one_minute():
    vms = [vm(f"vm-{i}", minutes=4) for i in range(40)]
    result = plan_one_offering(vms, level(rpo="4h"))
    starts = [j.start for j in first_jobs(result).values()]
    assert len(starts) == 40
    assert busiest_ten_minutes(starts) <= 8
    assert peak_concurrency(result.jobs) <= 10


def test_fresh_vms_planned_during_their_window_are_spread_not_piled_on_one_minute():
    service = level(rpo="24h", timezone="Europe/Berlin", windows=[win("20:00", "04:00")])
    vms = [vm(f"vm-{i}", minutes=4) for i in range(40)]
    result = plan_one_offering(vms, service, datetime(2026, 6, 1, 22, tzinfo=BERLIN).astimezone(UTC))
    starts = [j.start for j in first_jobs(result).values()]
    assert len(starts) == 40
    assert busiest_ten_minutes(starts) <= 8


# -- stable slots ----------------------------------------------------------------------------------


def test_slot_is_the_same_local_time_night_after_night():
    vms = [vm(f"vm-{i}", minutes=10 + 7 * i) for i in range(12)]
    seen: dict[str, list[time]] = {v.id: [] for v in vms}
    last_good: dict[str, datetime | None] = {v.id: None for v in vms}
    for night in range(3):
        noon = datetime(2026, 6, 1 + night, 12, tzinfo=BERLIN).astimezone(UTC)
        today = [VM(v.id, v.offering_id, v.host_id, v.pool_bytes, last_good[v.id], v.throughput) for v in vms]
        result = plan_one_offering(today, NIGHTS, noon)
        assert len(result.jobs) == len(vms)
        for job in result.jobs:
            seen[job.vm_id].append(job.start.astimezone(BERLIN).time())
            last_good[job.vm_id] = job.start
    for vm_id, times in seen.items():
        assert len(set(times)) == 1, f"{vm_id} moved: {times}"
    assert len({times[0] for times in seen.values()}) > 6  # and the VMs do not share one slot


# -- deadlines, queues, repeated jobs --------------------------------------------------------------


def test_deadline_is_last_good_plus_rpo():
    last = NOW - timedelta(hours=3, minutes=17)
    (job,) = plan_one_offering([vm("a", last_good=last)], level(rpo="24h")).jobs
    assert job.deadline == last + timedelta(hours=24)
    assert job.start <= job.deadline
    assert not job.late


def test_never_backed_up_vm_is_due_one_rpo_from_now():
    (job,) = plan_one_offering([vm("a")], level(rpo="24h")).jobs
    assert job.deadline == NOW + timedelta(hours=24)


def test_overdue_vm_keeps_its_real_deadline_and_reports_its_lateness():
    last = NOW - timedelta(days=2)
    result = plan_one_offering([vm("a", last_good=last)], level(rpo="24h"))
    job = result.jobs[0]
    assert job.late
    assert job.deadline == last + timedelta(hours=24)
    assert job.lateness_seconds >= 24 * 3600


def test_a_job_is_bound_to_the_primary_pool():
    a = VM("a", "o", "h1", {"fast": 10 * MiB, "slow": 30 * MiB}, throughput=MiB)
    b = VM("b", "o", "h1", {"x": 10 * MiB, "y": 10 * MiB}, throughput=MiB)  # a tie goes to the larger id
    pools = [Pool(p, 10) for p in ("fast", "slow", "x", "y")]
    result = plan_one_offering([a, b], level(rpo="24h"), pools=pools)
    assert {j.vm_id: j.pool_id for j in result.jobs} == {"a": "slow", "b": "y"}


def test_rpo_shorter_than_the_horizon_gives_a_job_every_rpo():
    jobs = plan_one_offering([vm("a", minutes=20)], level(rpo="4h")).jobs
    assert 5 <= len(jobs) <= 7
    assert jobs[0].start <= NOW + timedelta(hours=4)
    for before, after in pairwise(jobs):
        assert before.end <= after.start <= before.start + timedelta(hours=4)
        assert after.deadline == before.start + timedelta(hours=4)
    assert not any(j.late for j in jobs)


def test_no_job_starts_before_now():
    now = NOW + timedelta(seconds=30)
    vms = [vm(f"vm-{i}", last_good=now - timedelta(hours=23, minutes=59)) for i in range(10)]
    result = plan_one_offering(vms, level(rpo="24h"), now)
    assert result.jobs
    assert all(j.start >= now for j in result.jobs)


# -- determinism -----------------------------------------------------------------------------------


def mixed_fleet() -> tuple[list[VM], list[Host], list[Pool], list[FixedJob]]:
    hosts = [Host("h1", 2), Host("h2", 1)]
    pools = [Pool("p1", 2, bandwidth=2 * MiB), Pool("p2", 3)]
    vms = [
        VM(
            f"vm-{i}",
            list(LEVELS)[i % 3],
            f"h{1 + i % 2}",
            {"p1": (i % 5) * 600 * MiB, "p2": (i % 3) * 900 * MiB},
            last_good=None if i % 4 == 0 else NOW - timedelta(hours=i),
            throughput=MiB,
        )
        for i in range(12)
    ]
    fixed = [FixedJob("adhoc", "h1", {"p1": 1200 * MiB}, NOW + timedelta(hours=9), NOW + timedelta(hours=10))]
    return vms, hosts, pools, fixed


def test_plan_is_deterministic():
    vms, hosts, pools, fixed = mixed_fleet()
    first = plan(vms, hosts, pools, OFFERINGS, NOW, DAY, fixed)
    second = plan(vms, hosts, pools, OFFERINGS, NOW, DAY, fixed)
    assert first.jobs
    assert first == second


_PRINT_PLAN = """
import json
from tests.orchestrator.planner.test_planner import DAY, NOW, OFFERINGS, mixed_fleet, plan
vms, hosts, pools, fixed = mixed_fleet()
result = plan(vms, hosts, pools, OFFERINGS, NOW, DAY, fixed)
print(json.dumps([[j.vm_id, j.start.isoformat(), j.pool_id, j.late] for j in result.jobs]))
"""


def test_plan_does_not_depend_on_the_process_hash_seed():
    root = Path(__file__).resolve().parents[3]
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", _PRINT_PLAN], cwd=root, env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(run.stdout))
    assert outputs[0]
    assert outputs[0] == outputs[1]
