from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Integer, Select, bindparam, func, select
from sqlalchemy.orm import Session

from orchestrator.domain.errors import InvalidArgument

T = TypeVar("T")
MAX_PAGESIZE = 500
MAX_PAGE = 1_000_000
DEFAULT_PAGESIZE = 50


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    pagesize: int


def _check(page: int, pagesize: int) -> None:
    if not 1 <= page <= MAX_PAGE:
        raise InvalidArgument(f"page: must be between 1 and {MAX_PAGE}, got {page}", field="page")
    if not 1 <= pagesize <= MAX_PAGESIZE:
        raise InvalidArgument(
            f"pagesize: must be between 1 and {MAX_PAGESIZE}, got {pagesize}", field="pagesize"
        )


def paginate(
    session: Session, stmt: Select[Any], page: int = 1, pagesize: int = DEFAULT_PAGESIZE
) -> Page[Any]:
    """A page of ORM objects (``stmt`` selects one entity)."""
    _check(page, pagesize)
    items = list(session.scalars(stmt.limit(pagesize).offset((page - 1) * pagesize)))
    # A short page is the end of the list, so it tells the total: counting is only needed
    # when more may follow (or when a page past the end came back empty).
    if len(items) < pagesize and (items or page == 1):
        total = (page - 1) * pagesize + len(items)
    else:
        total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    return Page(items, total, page, pagesize)


@dataclass(frozen=True)
class PageQuery:
    """The statements of one kind of list, built once and run with bound parameters: building
    and compiling a statement costs more than running it, and a statement run again is found
    in SQLAlchemy's cache as is. The total rides along as the page's last column, so a page
    and its total cost one round trip; the count alone serves a page past the end."""

    rows: Select[Any]
    count: Select[int]

    @classmethod
    def of(cls, rows: Select[Any], count: Select[int]) -> PageQuery:
        """``count`` counts what ``rows`` lists; given apart, it skips joins that only add columns."""
        paged = (
            rows.add_columns(count.scalar_subquery())
            .limit(bindparam("page_limit", type_=Integer))
            .offset(bindparam("page_offset", type_=Integer))
        )
        return cls(paged, count)


def paginate_rows(
    session: Session,
    query: PageQuery,
    params: Mapping[str, Any],
    make: Callable[[Sequence[Any]], T],
    page: int = 1,
    pagesize: int = DEFAULT_PAGESIZE,
) -> Page[T]:
    """A page of plain column rows, each turned into a ``T`` by ``make``."""
    _check(page, pagesize)
    # As the ORM does before its own queries: what this unit of work added is listed too.
    session.flush()
    connection = session.connection()
    found = connection.execute(
        query.rows, {**params, "page_limit": pagesize, "page_offset": (page - 1) * pagesize}
    ).all()
    if found:
        return Page([make(row[:-1]) for row in found], found[0][-1], page, pagesize)
    # An empty page has no row to carry the total: past the end of a list it is counted apart.
    return Page([], 0 if page == 1 else connection.execute(query.count, params).scalar_one(), page, pagesize)
