"""Which restore points may go, never orphaning an incremental that is kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PointInfo:
    id: str
    parent_id: str | None


def expired_by_count(newest_first: Sequence[PointInfo], keep: int, *, chains_matter: bool) -> list[str]:
    """Ids beyond the newest ``keep`` points that can be deleted.

    When ``chains_matter`` (the provider cannot delete a point others depend on), an old
    point stays as long as a kept point needs it through its chain of parents.
    """
    if keep <= 0 or len(newest_first) <= keep:
        return []
    kept = newest_first[:keep]
    candidates = newest_first[keep:]
    if not chains_matter:
        return [p.id for p in candidates]
    parents = {p.id: p.parent_id for p in newest_first}
    needed: set[str] = set()
    for point in kept:
        parent = point.parent_id
        while parent is not None and parent not in needed:
            needed.add(parent)
            parent = parents.get(parent)
    return [p.id for p in candidates if p.id not in needed]
