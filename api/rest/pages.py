"""List answers: ``{"items": [...], "total": n, "page": p, "pagesize": s}``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from orchestrator.infra.paging import Page

T = TypeVar("T")
View = Callable[[T], dict[str, Any]]


def of_page(page: Page[T], view: View[T]) -> dict[str, Any]:
    """A page the use case cut from the database."""
    return {
        "items": [view(row) for row in page.items],
        "total": page.total,
        "page": page.page,
        "pagesize": page.pagesize,
    }


def of_list(rows: Sequence[T], args: Mapping[str, Any], view: View[T]) -> dict[str, Any]:
    """A page of a (short) list a use case answers whole: zones, hosts, schedules..."""
    page, size = args["page"], args["pagesize"]
    start = (page - 1) * size
    return {
        "items": [view(row) for row in rows[start : start + size]],
        "total": len(rows),
        "page": page,
        "pagesize": size,
    }


class _Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=_Named)


def named_like(rows: Sequence[N], keyword: str | None) -> list[N]:
    """Rows whose name contains ``keyword`` (as the use cases' own keyword filters)."""
    return [r for r in rows if not keyword or keyword in r.name]
