"""Pagination limits and the shared enum/number input checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.models import IntervalType
from orchestrator.domain.validate import non_negative, parse_enum, positive
from orchestrator.infra.paging import MAX_PAGE, MAX_PAGESIZE, paginate

NUMBERS = sa.Table("numbers", sa.MetaData(), sa.Column("n", sa.Integer, primary_key=True))
ALL = sa.select(NUMBERS.c.n).order_by(NUMBERS.c.n)


@pytest.fixture
def session() -> Iterator[Session]:
    engine = sa.create_engine("sqlite://")
    NUMBERS.metadata.create_all(engine)
    with Session(engine) as s:
        s.execute(NUMBERS.insert(), [{"n": i} for i in range(1, 8)])
        yield s
    engine.dispose()


# -- paginate --------------------------------------------------------------------------------


@pytest.mark.parametrize("page", [0, -1, MAX_PAGE + 1])
def test_paginate_rejects_page_outside_1_to_max(session, page):
    with pytest.raises(
        InvalidArgument, match=rf"^page: must be between 1 and {MAX_PAGE}, got {page}$"
    ) as exc:
        paginate(session, ALL, page=page)
    assert exc.value.field == "page"


@pytest.mark.parametrize("pagesize", [0, -5, MAX_PAGESIZE + 1])
def test_paginate_rejects_pagesize_outside_1_to_500(session, pagesize):
    with pytest.raises(
        InvalidArgument, match=rf"^pagesize: must be between 1 and 500, got {pagesize}$"
    ) as exc:
        paginate(session, ALL, pagesize=pagesize)
    assert exc.value.field == "pagesize"


@pytest.mark.parametrize("pagesize", [1, MAX_PAGESIZE])
def test_paginate_accepts_pagesize_at_the_limits(session, pagesize):
    assert paginate(session, ALL, pagesize=pagesize).pagesize == pagesize


def test_paginate_returns_the_requested_slice_and_the_total(session):
    page = paginate(session, ALL, page=2, pagesize=3)
    assert page.items == [4, 5, 6]
    assert (page.total, page.page, page.pagesize) == (7, 2, 3)


def test_paginate_past_the_end_is_empty_but_keeps_the_total(session):
    page = paginate(session, ALL, page=5, pagesize=3)
    assert page.items == []
    assert page.total == 7


# -- parse_enum ------------------------------------------------------------------------------


def test_parse_enum_error_lists_the_allowed_values():
    with pytest.raises(
        InvalidArgument,
        match=r"^interval_type: 'YEARLY' is not one of HOURLY, DAILY, WEEKLY, MONTHLY$",
    ) as exc:
        parse_enum(IntervalType, "YEARLY", "interval_type")
    assert exc.value.field == "interval_type"


def test_parse_enum_is_case_sensitive():
    with pytest.raises(InvalidArgument, match="'daily' is not one of"):
        parse_enum(IntervalType, "daily", "interval_type")


def test_parse_enum_accepts_values_and_members():
    assert parse_enum(IntervalType, "WEEKLY", "interval_type") is IntervalType.WEEKLY
    assert parse_enum(IntervalType, IntervalType.DAILY, "interval_type") is IntervalType.DAILY


# -- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, True, "3", 1.5])
def test_non_negative_rejects_negatives_bools_and_non_ints(value):
    with pytest.raises(
        InvalidArgument, match=r"^max_backups: must be a whole number from 0 to 1000000, got "
    ):
        non_negative(value, "max_backups")


def test_non_negative_passes_zero_and_none_through():
    assert non_negative(0, "x") == 0
    assert non_negative(None, "x") is None


@pytest.mark.parametrize("value", [0, False, "1"])
def test_positive_rejects_zero_bools_and_non_ints(value):
    with pytest.raises(InvalidArgument, match=r"^keep: must be a whole number from 1 to 1000000, got "):
        positive(value, "keep")
