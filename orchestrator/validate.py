"""Small input checks shared by the use cases, each failing with a message naming the field."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from orchestrator.errors import InvalidArgument

E = TypeVar("E", bound=Enum)


def parse_enum(enum: type[E], value: str | E, field: str) -> E:
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum)
        raise InvalidArgument(f"{field}: {value!r} is not one of {allowed}", field=field) from None


def non_negative(value: int | None, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"{field}: must be a whole number ≥ 0, got {value!r}", field=field)
    return value


def positive(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{field}: must be a whole number ≥ 1, got {value!r}", field=field)
    return value


def name(value: str, field: str = "name", max_length: int = 255) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidArgument(f"{field}: must not be empty", field=field)
    if len(text) > max_length:
        raise InvalidArgument(f"{field}: longer than {max_length} characters", field=field)
    return text
