"""Planner rules the fleet simulation leans on: RPO-spaced segments across window gaps,
slots spread over open time, least-laxity order, room for overruns."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from orchestrator.domain.sla import ServiceLevel
from orchestrator.planner import VM, FixedJob, Host, Offering, Pool, plan
from orchestrator.planner.planner import hold_minutes

MiB = 2**20
BERLIN = ZoneInfo("Europe/Berlin")
NOON = datetime(2026, 6, 1, 12, tzinfo=BERLIN).astimezone(UTC)


def vm(
    vm_id: str, minutes: int, offering: str = "o", host: str = "h", last_good: datetime | None = None
) -> VM:
    return VM(vm_id, offering, host, {"p": minutes * 60 * MiB}, last_good=last_good, throughput=MiB)


def test_gold_runs_twice_a_day_in_the_bands_that_bridge_the_gap():
    # RPO 12 h on 18:00-08:00: the 10 h gap is bridged only from 06:00-08:00 to 18:00-20:00.
    gold = Offering(
        "gold",
        ServiceLevel.parse(rpo="12h", windows=[{"start": "18:00", "end": "08:00"}], timezone="Europe/Berlin"),
    )
    morning = datetime(2026, 6, 1, 7, tzinfo=BERLIN).astimezone(UTC)
    vms = [vm(f"vm-{i}", 2, "gold", f"h{i % 5}", morning + timedelta(minutes=i)) for i in range(40)]
    result = plan(
        vms, [Host(f"h{i}", 4) for i in range(5)], [Pool("p", 100)], [gold], NOON, timedelta(hours=48)
    )

    assert not result.late
    assert not result.unplaceable
    per_vm = Counter(j.vm_id for j in result.jobs)
    assert set(per_vm.values()) == {4}  # two a day, not a chain of back-to-back runs
    for job in result.jobs:
        local = job.start.astimezone(BERLIN).time()
        assert time(18) <= local < time(20) or time(6) <= local < time(8)
    for v in vms:
        starts = [j.start for j in result.jobs if j.vm_id == v.id]
        assert starts[0] <= v.last_good + timedelta(hours=12)
        assert all(b - a <= timedelta(hours=12) for a, b in pairwise(starts))


def test_slots_are_spread_over_open_time_not_piled_at_a_blackout_edge():
    silver = Offering(
        "o",
        ServiceLevel.parse(
            rpo="24h",
            windows=[{"start": "20:00", "end": "06:00"}],
            blackouts=[{"start": "22:00", "end": "02:00"}],
            timezone="Europe/Berlin",
        ),
    )
    vms = [vm(f"vm-{i}", 3, host=f"h{i % 10}") for i in range(300)]
    result = plan(vms, [Host(f"h{i}", 10) for i in range(10)], [Pool("p", 100)], [silver], NOON)
    starts = [j.start.astimezone(BERLIN) for j in result.jobs]
    assert len(starts) == 300
    # 6 open hours: about 8 starts per 10 minutes, and the minutes next to the blackout
    # get no more than their share.
    by_ten = Counter((s.hour, s.minute // 10) for s in starts)
    assert max(by_ten.values()) <= 20
    assert by_ten[(21, 5)] <= 20
    assert by_ten[(2, 0)] <= 20


def test_a_long_job_due_before_a_blackout_goes_before_a_short_one_due_earlier():
    # The 90-minute backup must start by 20:30 to finish before the 22:00 blackout, although
    # its deadline is 21:55; the 30-minute one is due at 21:00. One slot on the host: only
    # "short at 20:00, long at 20:30" keeps both on time. By nominal deadline the short one
    # would go first, to its slot (20:45), and the long one would be late.
    nights = Offering(
        "o",
        ServiceLevel.parse(
            rpo="24h",
            windows=[{"start": "20:00", "end": "06:00"}],
            blackouts=[{"start": "22:00", "end": "23:00"}],
        ),
    )
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    yesterday = now - timedelta(days=1)
    long = vm("large", 90, last_good=yesterday.replace(hour=21, minute=55))
    short = vm("short", 30, last_good=yesterday.replace(hour=21))
    result = plan([short, long], [Host("h", 1)], [Pool("p", 10)], [nights], now)

    jobs = {j.vm_id: j for j in result.jobs}
    assert not result.late
    assert jobs["short"].start == datetime(2026, 6, 1, 20, 0, tzinfo=UTC)
    assert jobs["large"].start == datetime(2026, 6, 1, 20, 30, tzinfo=UTC)


def test_room_for_an_overrun_is_left_where_there_is_capacity():
    window = Offering("o", ServiceLevel.parse(rpo="24h", windows=[{"start": "00:00", "end": "06:00"}]))
    now = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    due = now - timedelta(days=1) + timedelta(hours=3)
    result = plan(
        [vm("a", 20, last_good=due), vm("b", 20, last_good=due)],
        [Host("h", 1)],
        [Pool("p", 10)],
        [window],
        now,
    )
    a, b = sorted(result.jobs, key=lambda j: j.start)
    assert not result.late
    assert b.start - a.start >= timedelta(minutes=hold_minutes(20)[0])  # the first may run over


def test_room_for_an_overrun_never_costs_another_job_its_deadline():
    # "a" runs 01:00-02:00 with room to overrun until 03:00; "b" can only be on time by
    # starting between 02:00 and 02:10, inside that room: it gets it.
    window = Offering("o", ServiceLevel.parse(rpo="24h", windows=[{"start": "00:00", "end": "06:00"}]))
    now = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    yesterday = now - timedelta(days=1)
    busy = FixedJob("other", "h", {"p": 0}, now, now + timedelta(hours=1))
    a = vm("a", 60, last_good=yesterday + timedelta(hours=1))
    b = vm("b", 30, last_good=yesterday + timedelta(hours=2, minutes=10))
    result = plan([a, b], [Host("h", 1)], [Pool("p", 10)], [window], now, fixed=[busy])
    jobs = {j.vm_id: j for j in result.jobs}
    assert not result.late
    assert jobs["a"].start == now + timedelta(hours=1)
    assert now + timedelta(hours=2) <= jobs["b"].start <= now + timedelta(hours=2, minutes=10)


def test_hold_levels():
    assert hold_minutes(1) == (2, 1)
    assert hold_minutes(20) == (40, 23, 20)
