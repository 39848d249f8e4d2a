"""Capacity lower bounds: hand-computed nights, and the planner's segments they are built on."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from benchmarks.sim import default_offerings
from orchestrator.planner.capacity import (
    BANDWIDTH,
    HOST_SLOTS,
    LONGEST,
    POOL_SLOTS,
    Work,
    each_term,
    lower_bounds,
    night_segments,
    nightly_work,
    remedy,
)
from orchestrator.planner.model import VM, Host, Offering, Pool
from orchestrator.planner.planner import cut_segments
from orchestrator.planner.timemath import Interval

MIDNIGHT = datetime(2026, 6, 1, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def span(start_h: float, end_h: float) -> tuple[Interval, ...]:
    return (Interval(MIDNIGHT + timedelta(hours=start_h), MIDNIGHT + timedelta(hours=end_h)),)


HOUR = span(0, 1)  # 3600 s
NIGHT = span(0, 10)


def test_one_window_binding_pool_and_host_named_with_their_terms():
    pools = [Pool("fast", 2, bandwidth=100.0), Pool("idle", 1)]
    hosts = [Host("h1", 1), Host("h2", 4)]
    work = [
        Work("h1", {"fast": 180_000}, 1800, HOUR),
        Work("h1", {"fast": 180_000}, 1800, HOUR),
        Work("h2", {"fast": 72_000}, 720, HOUR),
    ]
    cap = lower_bounds(work, hosts, pools)

    # fast: max(1800 longest, 432000 B / 100 B/s = 4320, 4320 s / 2 slots = 2160) = 4320 > 3600
    fast = cap.pools["fast"]
    assert fast.seconds == pytest.approx(4320)
    assert fast.term == BANDWIDTH
    assert fast.window_seconds == 3600
    assert not fast.fits
    assert fast.ratio == pytest.approx(1.2)
    # h1: max(1800, 3600 s / 1 slot) = 3600: exactly the window, fits.
    h1 = cap.hosts["h1"]
    assert (h1.seconds, h1.term, h1.fits) == (pytest.approx(3600), HOST_SLOTS, True)
    # h2: one 720 s job.
    assert cap.hosts["h2"].seconds == pytest.approx(720)
    assert cap.hosts["h2"].fits
    assert cap.pools["idle"].fits
    assert cap.pools["idle"].seconds == 0

    assert not cap.feasible
    assert [(kind, name, b.term) for kind, name, b in cap.binding()] == [("pool", "fast", BANDWIDTH)]
    assert cap.worst("pool")[0] == "fast"


def test_host_slots_bind_when_the_pools_have_room():
    pools = [Pool("p", 10)]
    hosts = [Host("h", 2)]
    work = [Work("h", {"p": 0}, 1500, HOUR) for _ in range(5)]  # 7500 s / 2 slots = 3750 > 3600
    cap = lower_bounds(work, hosts, pools)
    assert cap.hosts["h"].term == HOST_SLOTS
    assert cap.hosts["h"].seconds == pytest.approx(3750)
    assert cap.pools["p"].term == LONGEST  # max(1500, 7500 / 10 slots): fits
    assert cap.pools["p"].fits
    assert [(kind, name) for kind, name, _ in cap.binding()] == [("host", "h")]


def test_a_job_longer_than_its_room_is_infeasible_whatever_the_slots():
    cap = lower_bounds([Work("h", {"p": 0}, 4000, HOUR)], [Host("h", 10)], [Pool("p", 10)])
    assert cap.hosts["h"].term == LONGEST
    assert cap.pools["p"].term == LONGEST
    assert not cap.feasible
    # A job that must start in the hour but may run on for the night fits.
    room = Interval(MIDNIGHT, MIDNIGHT + timedelta(hours=10))
    assert lower_bounds(
        [Work("h", {"p": 0}, 4000, HOUR, room=room)], [Host("h", 10)], [Pool("p", 10)]
    ).feasible


def test_a_narrow_window_overloaded_inside_a_roomy_night_is_caught():
    pools = [Pool("p", 1)]
    hosts = [Host("h", 10)]
    narrow = [Work("h", {"p": 0}, 2400, HOUR) for _ in range(2)]  # 4800 s in the first hour
    rest = [Work("h", {"p": 0}, 600, NIGHT) for _ in range(10)]  # 6000 s over the night
    cap = lower_bounds(narrow + rest, hosts, pools)
    bound = cap.pools["p"]
    assert not bound.fits
    assert bound.term == POOL_SLOTS
    assert bound.window == HOUR
    assert bound.seconds == pytest.approx(4800)
    # The whole night would hold all of it: 10800 s of 36000.
    assert lower_bounds(narrow + rest, hosts, pools, terms=[POOL_SLOTS]).pools["p"].window == HOUR
    assert lower_bounds([*rest, *rest], hosts, pools).pools["p"].fits


def test_work_run_every_other_night_counts_half():
    work = [Work("h", {"p": 100.0}, 10, HOUR, share=0.5) for _ in range(100)]
    cap = lower_bounds(work, [Host("h", 1)], [Pool("p", 1, bandwidth=1.0)])
    assert cap.pools["p"].seconds == pytest.approx(5000)  # 100 x 100 B x 0.5 at 1 B/s
    assert cap.hosts["h"].seconds == pytest.approx(500)


def test_unknown_pools_are_ignored_and_terms_can_be_restricted():
    work = [Work("h", {"p": 1000.0, "elsewhere": 5.0}, 10, HOUR)]
    cap = lower_bounds(work, [Host("h", 1)], [Pool("p", 1, bandwidth=1.0)], terms=[BANDWIDTH])
    assert set(cap.pools) == {"p"}
    assert cap.pools["p"].term == BANDWIDTH
    assert cap.pools["p"].seconds == pytest.approx(1000)


def _terms(work, hosts, pools, kind, ident):
    return {term: getattr(cap, kind)[ident] for term, cap in each_term(work, hosts, pools).items()}


def test_a_backup_longer_than_its_window_asks_for_a_wider_window_not_concurrency():
    # 6 jobs of 2 h (7200 B at 1 B/s) in a 1 h window: 12 h of work over 2 slots.
    work = [Work("h", {"p": 7200.0}, 7200, HOUR) for _ in range(6)]
    hosts, pools = [Host("h", 2)], [Pool("p", 10)]
    assert lower_bounds(work, hosts, pools).hosts["h"].term == HOST_SLOTS  # binding: 6 h in 1 h

    fix = remedy(_terms(work, hosts, pools, "hosts", "h"), slots=2, bandwidth=None)

    assert fix.window_seconds == pytest.approx(7200)
    assert fix.speed == pytest.approx(2.0)  # 7200 B in the hour
    # In a 2 h window, 6 backups of 2 h need 6 at once (not the 12 the 1 h window suggests).
    assert fix.slots == 6
    assert fix.bandwidth is None


def test_concurrency_alone_is_asked_for_where_it_makes_the_work_fit():
    work = [Work("h", {"p": 0}, 1500, HOUR) for _ in range(5)]  # 7500 s / 2 slots in 3600 s
    fix = remedy(_terms(work, [Host("h", 2)], [Pool("p", 10)], "hosts", "h"), slots=2, bandwidth=None)
    assert (fix.window_seconds, fix.speed, fix.slots, fix.bandwidth) == (None, None, 3, None)


def test_bandwidth_and_slots_short_together_are_both_asked_for():
    # 4 jobs of 3000 B each taking 1800 s, 1 slot, 2 B/s shared: 12000 B need 6000 s.
    work = [Work("h", {"p": 3000.0}, 1800, HOUR) for _ in range(4)]
    pools = [Pool("p", 1, bandwidth=2.0)]
    fix = remedy(_terms(work, [Host("h", 10)], pools, "pools", "p"), slots=1, bandwidth=2.0)
    assert fix.window_seconds is None
    assert fix.slots == 2  # 7200 s of backups in 3600 s
    assert fix.bandwidth == pytest.approx(12000 / 3600)


# -- segments ---------------------------------------------------------------------------------------


def test_segments_bridge_the_gap_between_windows_within_one_rpo():
    # 18:00-08:00 windows, 12 h RPO: 18:00-20:00 and 06:00-08:00, nothing in between (the
    # first window has no gap before it, the last none after it).
    day = 24 * 60
    windows = [(d * day + 18 * 60, d * day + 32 * 60) for d in range(4)]
    segments = cut_segments(windows, 12 * 60)
    inner = [(s % day / 60, e % day / 60) for s, e, w in segments if w in (1, 2)]
    assert inner == [(18, 20), (6, 8)] * 2
    for (s1, e1, _), (s2, e2, _) in itertools.pairwise(segments):
        assert s2 - s1 <= 12 * 60
        assert e2 - e1 <= 12 * 60


def test_segments_of_a_window_within_the_rpo_are_the_window():
    day = 24 * 60
    windows = [(d * day + 20 * 60, d * day + 30 * 60) for d in range(3)]
    assert cut_segments(windows, day) == [(a, b, i) for i, (a, b) in enumerate(windows)]
    # Back-to-back all-day windows with a 6 h RPO: four 6 h segments a day.
    days = [(d * day, (d + 1) * day) for d in range(2)]
    assert [e - s for s, e, _ in cut_segments(days, 6 * 60)] == [6 * 60] * 8


def test_the_example_offerings_nightly_segments_and_shares():
    offerings = {o.id: o for o in default_offerings("Europe/Berlin")}
    day = date(2026, 6, 1)

    def local(iv: Interval) -> tuple[time, time]:
        return iv.start.astimezone(BERLIN).time(), iv.end.astimezone(BERLIN).time()

    gold = night_segments(offerings["gold"], day)
    assert [([local(p) for p in parts], share) for parts, share, _ in gold] == [
        ([(time(18), time(20))], 1.0),
        ([(time(6), time(8))], 1.0),
    ]
    assert local(gold[0][2]) == (time(18), time(8))  # the evening one may run on all night
    (silver,) = night_segments(offerings["silver"], day)
    assert [local(p) for p in silver[0]] == [(time(20), time(22)), (time(23), time(6))]
    assert silver[1] == 1.0
    (bronze,) = night_segments(offerings["bronze"], day)
    assert [local(p) for p in bronze[0]] == [(time(22), time(6))]
    assert bronze[1] == 0.5


def test_nightly_work_of_a_fleet():
    offerings = default_offerings("Europe/Berlin")
    pools = [Pool("p", 4, bandwidth=100 * 2**20)]
    vms = [
        VM("g", "gold", "h", {"p": 360 * 2**20}, throughput=200 * 2**20),  # bandwidth-bound: 3.6 s
        VM("s", "silver", "h", {"p": 60 * 2**20}, throughput=2**20),  # 60 s
        VM("b", "bronze", "h", {"p": 0}),
    ]
    work = nightly_work(vms, pools, offerings, date(2026, 6, 1))
    assert [(w.seconds, w.share) for w in work] == [
        (pytest.approx(3.6), 1.0),
        (pytest.approx(3.6), 1.0),
        (pytest.approx(60), 1.0),
        (0.0, 0.5),
    ]
    cap = lower_bounds(work, [Host("h", 1)], pools)
    assert cap.feasible
    assert cap.hosts["h"].seconds == pytest.approx(60)


def test_dst_night_keeps_one_segment_per_window():
    offering = Offering("silver", default_offerings("Europe/Berlin")[1].level)
    for day in (date(2026, 3, 28), date(2026, 10, 24)):
        (segment,) = night_segments(offering, day)
        assert segment[1] == 1.0
        assert sum(p.seconds for p in segment[0]) > 7 * 3600
