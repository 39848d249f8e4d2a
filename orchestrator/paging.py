from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from orchestrator.errors import InvalidArgument

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


def paginate(
    session: Session, stmt: Select[Any], page: int = 1, pagesize: int = DEFAULT_PAGESIZE
) -> Page[Any]:
    if not 1 <= page <= MAX_PAGE:
        raise InvalidArgument(f"page: must be between 1 and {MAX_PAGE}, got {page}", field="page")
    if not 1 <= pagesize <= MAX_PAGESIZE:
        raise InvalidArgument(
            f"pagesize: must be between 1 and {MAX_PAGESIZE}, got {pagesize}", field="pagesize"
        )
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = list(session.scalars(stmt.limit(pagesize).offset((page - 1) * pagesize)))
    return Page(items, total, page, pagesize)
