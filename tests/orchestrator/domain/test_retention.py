"""Count-based retention: which restore points may go without orphaning a kept incremental."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.domain.retention import PointInfo, expired_by_count


def full(point_id: str) -> PointInfo:
    return PointInfo(point_id, None)


def incr(point_id: str, parent_id: str) -> PointInfo:
    return PointInfo(point_id, parent_id)


# Oldest last: F1 <- I2 <- I3, then F4 <- I5 <- I6.
TWO_CHAINS = [incr("I6", "I5"), incr("I5", "F4"), full("F4"), incr("I3", "I2"), incr("I2", "F1"), full("F1")]


@pytest.mark.parametrize("chains_matter", [True, False])
@pytest.mark.parametrize("keep", [0, -1])
def test_keep_zero_or_less_expires_nothing(keep, chains_matter):
    points = [full(f"F{i}") for i in range(5)]
    assert expired_by_count(points, keep, chains_matter=chains_matter) == []


@pytest.mark.parametrize("chains_matter", [True, False])
@pytest.mark.parametrize("count", [0, 2, 3])
def test_no_more_points_than_keep_expires_nothing(count, chains_matter):
    points = [full(f"F{i}") for i in range(count)]
    assert expired_by_count(points, 3, chains_matter=chains_matter) == []


def test_without_chains_every_point_beyond_keep_expires_oldest_last():
    points = [full("F5"), full("F4"), full("F3"), full("F2"), full("F1")]
    assert expired_by_count(points, 2, chains_matter=False) == ["F3", "F2", "F1"]


def test_without_chains_parents_of_kept_points_still_expire():
    # A provider that can delete single points does not care about chains.
    assert expired_by_count(TWO_CHAINS, 1, chains_matter=False) == ["I5", "F4", "I3", "I2", "F1"]


def test_with_chains_the_full_and_incrementals_a_kept_point_needs_stay():
    expired = expired_by_count(TWO_CHAINS, 1, chains_matter=True)
    assert expired == ["I3", "I2", "F1"]


def test_with_chains_an_older_chain_goes_once_nothing_kept_needs_it():
    expired = expired_by_count(TWO_CHAINS, 3, chains_matter=True)
    assert expired == ["I3", "I2", "F1"]


def test_with_chains_a_kept_incremental_keeps_its_whole_old_chain():
    expired = expired_by_count(TWO_CHAINS, 4, chains_matter=True)
    # I3 is kept and needs I2 and F1.
    assert expired == []


def test_with_chains_newer_incrementals_on_an_expired_full_expire_with_it():
    points = [full("F3"), incr("I2", "F1"), full("F1")]
    assert expired_by_count(points, 1, chains_matter=True) == ["I2", "F1"]


def test_with_chains_a_missing_parent_does_not_break_the_walk():
    points = [incr("I3", "gone"), full("F2"), full("F1")]
    assert expired_by_count(points, 1, chains_matter=True) == ["F2", "F1"]


# -- property --------------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> list[PointInfo]:
    """Newest first; each point's parent (if any) is older than it."""
    count = draw(st.integers(min_value=0, max_value=12))
    oldest_first: list[PointInfo] = []
    for i in range(count):
        parent = None
        if i and draw(st.booleans()):
            parent = f"p{draw(st.integers(min_value=0, max_value=i - 1))}"
        oldest_first.append(PointInfo(f"p{i}", parent))
    return oldest_first[::-1]


def _ancestors(point: PointInfo, parents: dict[str, str | None]) -> set[str]:
    found: set[str] = set()
    parent = point.parent_id
    while parent is not None:
        found.add(parent)
        parent = parents.get(parent)
    return found


@given(points=histories(), keep=st.integers(min_value=1, max_value=14))
def test_with_chains_nothing_a_kept_point_depends_on_expires(points, keep):
    expired = expired_by_count(points, keep, chains_matter=True)
    kept = points[:keep]
    parents = {p.id: p.parent_id for p in points}
    needed = set().union(*(_ancestors(p, parents) for p in kept)) if kept else set()
    kept_ids = {p.id for p in kept}

    assert not set(expired) & needed
    assert not set(expired) & kept_ids
    assert len(expired) == len(set(expired))
    # Everything older that nothing kept depends on does go, newest first.
    assert expired == [p.id for p in points[keep:] if p.id not in needed]
