"""Keep-last / hourly / daily / weekly / monthly / yearly, each counting only what earlier
rules did not keep."""

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.retention import PointInfo, RetentionPolicy, expired, select

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def points_every(hours: float, count: int) -> list[PointInfo]:
    """Newest first, FULL points (no chains)."""
    return [PointInfo(f"p{i}", None, T0 - timedelta(hours=hours * i)) for i in range(count)]


def test_empty_policy_keeps_everything():
    pts = points_every(6, 10)
    assert select(pts, RetentionPolicy()) == {p.id for p in pts}
    assert expired(pts, RetentionPolicy(), chains_matter=False) == []


def test_keep_daily_keeps_the_newest_point_of_each_recent_day():
    pts = points_every(8, 15)  # 3 per day over 5 days
    kept = select(pts, RetentionPolicy(keep_daily=3))
    days = sorted({p.taken_at.date() for p in pts if p.id in kept}, reverse=True)
    assert len(kept) == 3
    assert days == sorted({p.taken_at.date() for p in pts}, reverse=True)[:3]
    newest_of_each_day = {}
    for p in pts:
        newest_of_each_day.setdefault(p.taken_at.date(), p.id)
    assert kept == {newest_of_each_day[d] for d in days}


def test_later_rules_skip_periods_already_covered():
    pts = points_every(8, 15)
    kept = select(pts, RetentionPolicy(keep_last=2, keep_daily=2))
    # p0 and p1 are today's (12:00, 04:00); the daily rule skips today and takes two older days.
    assert {"p0", "p1"} <= kept
    assert len(kept) == 4
    kept_days = {p.taken_at.date() for p in pts if p.id in kept}
    assert len(kept_days) == 3


def test_periods_follow_the_time_zone():
    late_evening = PointInfo("a", None, datetime(2026, 11, 20, 23, 30, tzinfo=UTC))
    earlier = PointInfo("b", None, datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    # In UTC both are on the 20th; in Berlin "a" is already the 21st.
    assert select([late_evening, earlier], RetentionPolicy(keep_daily=2), "UTC") == {"a"}
    assert select([late_evening, earlier], RetentionPolicy(keep_daily=2), "Europe/Berlin") == {"a", "b"}


def test_weekly_monthly_and_yearly_rules():
    pts = points_every(24 * 7, 60)  # weekly for ~14 months
    assert len(select(pts, RetentionPolicy(keep_weekly=4))) == 4
    monthly = select(pts, RetentionPolicy(keep_monthly=6))
    assert len({(p.taken_at.year, p.taken_at.month) for p in pts if p.id in monthly}) == 6
    assert len(select(pts, RetentionPolicy(keep_yearly=5))) == 2  # only two years have points


def test_a_kept_incremental_keeps_its_whole_chain_when_chains_matter():
    full = PointInfo("full", None, T0 - timedelta(days=3))
    inc1 = PointInfo("inc1", "full", T0 - timedelta(days=2))
    inc2 = PointInfo("inc2", "inc1", T0 - timedelta(days=1))
    newest = [inc2, inc1, full]
    policy = RetentionPolicy(keep_last=1)
    assert expired(newest, policy, chains_matter=True) == []
    assert expired(newest, policy, chains_matter=False) == ["inc1", "full"]


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_policy_rejects_bad_counts(bad):
    with pytest.raises(InvalidArgument, match="keep_daily"):
        RetentionPolicy(keep_daily=bad)
