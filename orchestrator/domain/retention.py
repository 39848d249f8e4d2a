"""Which restore points may go, never orphaning an incremental that is kept.

Rules are applied in order keep-last, hourly, daily, weekly, monthly, yearly, each
counting only what earlier rules did not keep (as Proxmox Backup Server does): a rule
keeps the newest point of each of its N most recent periods, skipping periods that a
point kept by an earlier rule already covers. An empty policy keeps everything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from orchestrator.domain.errors import InvalidArgument

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PointInfo:
    id: str
    parent_id: str | None
    taken_at: datetime = _EPOCH


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidArgument(f"{f.name}: must be a whole number ≥ 0, got {value!r}", field=f.name)

    @property
    def is_empty(self) -> bool:
        return all(not getattr(self, f.name) for f in fields(self))


_PERIODS: list[tuple[str, Callable[[datetime], tuple[int, ...]]]] = [
    ("keep_hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("keep_daily", lambda t: (t.year, t.month, t.day)),
    ("keep_weekly", lambda t: t.isocalendar()[:2]),
    ("keep_monthly", lambda t: (t.year, t.month)),
    ("keep_yearly", lambda t: (t.year,)),
]


def select(newest_first: Sequence[PointInfo], policy: RetentionPolicy, zone: str = "UTC") -> set[str]:
    """Ids the policy keeps (before any chain is taken into account)."""
    if policy.is_empty:
        return {p.id for p in newest_first}
    tz = ZoneInfo(zone)
    local = {p.id: p.taken_at.astimezone(tz) for p in newest_first}
    kept = {p.id for p in newest_first[: policy.keep_last or 0]}
    for rule, period_of in _PERIODS:
        count = getattr(policy, rule) or 0
        if not count:
            continue
        covered = {period_of(local[i]) for i in kept}
        chosen: set[tuple[int, ...]] = set()
        for point in newest_first:
            period = period_of(local[point.id])
            if point.id in kept or period in covered or period in chosen:
                continue
            if len(chosen) >= count:
                break
            chosen.add(period)
            kept.add(point.id)
    return kept


def expired(
    newest_first: Sequence[PointInfo], policy: RetentionPolicy, *, chains_matter: bool, zone: str = "UTC"
) -> list[str]:
    """Ids that can be deleted, newest first.

    When ``chains_matter`` (the provider cannot delete a point others depend on), a point
    the policy drops stays as long as a kept point needs it through its chain of parents.
    """
    kept = select(newest_first, policy, zone)
    if chains_matter:
        parents = {p.id: p.parent_id for p in newest_first}
        for point_id in list(kept):
            parent = parents.get(point_id)
            while parent is not None and parent not in kept:
                kept.add(parent)
                parent = parents.get(parent)
    return [p.id for p in newest_first if p.id not in kept]


def expired_by_count(newest_first: Sequence[PointInfo], keep: int, *, chains_matter: bool) -> list[str]:
    """Ids beyond the newest ``keep`` points that can be deleted (``keep`` ≤ 0 keeps all)."""
    if keep <= 0:
        return []
    return expired(newest_first, RetentionPolicy(keep_last=keep), chains_matter=chains_matter)
