"""Small input checks shared by the use cases, each failing with a message naming the field."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

from orchestrator.domain.errors import InvalidArgument

E = TypeVar("E", bound=Enum)


def parse_enum(enum: type[E], value: str | E, field: str) -> E:
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum)
        raise InvalidArgument(f"{field}: {value!r} is not one of {allowed}", field=field) from None


# Counts (limits, retention) stay far inside 32-bit columns.
MAX_COUNT = 1_000_000
# Byte figures (sizes, bandwidth) stay inside 64-bit columns.
MAX_BYTES = 2**62


def _whole(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(
            f"{field}: must be a whole number from {low} to {high}, got {value!r}", field=field
        )
    return value


def non_negative(value: int | None, field: str, high: int = MAX_COUNT) -> int | None:
    return None if value is None else _whole(value, field, 0, high)


def positive(value: int, field: str, high: int = MAX_COUNT) -> int:
    return _whole(value, field, 1, high)


# Bidirectional overrides and isolates: they reorder what a terminal or a table shows.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _controls(value: str, allowed: str = "") -> list[str]:
    return [c for c in value if c not in allowed and (unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS)]


def unicode_strings(value: object, field: str) -> None:
    """Every string in ``value`` (nested mappings and lists, keys included) is valid Unicode.

    A lone UTF-16 surrogate (``"\\udfff"`` in JSON, or command-line bytes that were not UTF-8)
    is a Python string no database driver can encode; it is refused here, naming the field
    (``config.key``, ``volumes[0].name``), instead of failing later as a server error."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgument(
                f"{field}: not valid Unicode (a lone surrogate at character {exc.start})", field=field
            ) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            unicode_strings(key, f"{field} (a key)" if field else "a field name")
            unicode_strings(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            unicode_strings(item, f"{field}[{index}]")


NAME_LENGTH = 255
TEXT_LENGTH = 1024


def text(value: str | None, field: str, max_length: int = TEXT_LENGTH) -> str:
    """Free text (descriptions, paths, addresses): bounded, no NUL that databases refuse, and
    no control character but tab and newline (an escape sequence would play on terminals)."""
    out = "" if value is None else str(value)
    if len(out) > max_length:
        raise InvalidArgument(f"{field}: longer than {max_length} characters", field=field)
    if "\x00" in out:
        raise InvalidArgument(f"{field}: contains a NUL character", field=field)
    unicode_strings(out, field)
    if found := _controls(out, allowed="\t\n"):
        raise InvalidArgument(f"{field}: contains the control character {found[0]!r}", field=field)
    return out


def keyword(value: str | None) -> str | None:
    """A search text (part of a name): no longer than a name can be. It becomes a LIKE
    pattern, and SQLite refuses patterns much longer (with a server error, not a 400)."""
    return None if value is None else text(value, "keyword", NAME_LENGTH)


def name(value: str, field: str = "name", max_length: int = NAME_LENGTH) -> str:
    """A name shown in tables and terminals: one line, no control characters."""
    out = text((value or "").strip(), field, max_length)
    if not out:
        raise InvalidArgument(f"{field}: must not be empty", field=field)
    if found := _controls(out):
        raise InvalidArgument(f"{field}: contains the control character {found[0]!r}", field=field)
    return out


def absolute_path(value: str | None, field: str = "path") -> str:
    """A path that workers on any machine read alike: absolute, and normalised so that no
    ``.``, ``..`` or doubled slash is left (``/srv/a/../b`` is ``/srv/b``); '' stays ''.
    Symbolic links are not followed: the path names where the operator said, not what a
    link on some worker points at."""
    out = text(value, field)
    if not out:
        return ""
    if not out.startswith("/"):
        # Workers on other machines resolve it: a relative path means nothing there.
        raise InvalidArgument(f"{field}: {out!r} is not an absolute path", field=field)
    # normpath keeps a leading "//" (POSIX leaves its meaning open); one slash means the root.
    return "/" + posixpath.normpath(out).lstrip("/")


def is_under(path: str, folder: str) -> bool:
    """Whether normalised ``path`` lies strictly inside normalised ``folder``."""
    return path != folder and path.startswith(folder.rstrip("/") + "/")


def folder_path(value: str | None, field: str = "path") -> str:
    """An absolute, normalised folder that holds data of its own (a storage pool, a backup
    repository): never the root, which would hold every other one."""
    out = absolute_path(value, field)
    if out == "/":
        raise InvalidArgument(f"{field}: must not be the root directory /", field=field)
    return out


_DATASTORE_PATH = re.compile(r"\[([^\]]+)\] (\S.*)")


def datastore_path(value: str, field: str = "path") -> str:
    """A vSphere datastore path, ``[datastore] dir/file.vmdk``, normalised: the file must lie
    inside the datastore (no ``..`` leading out of it)."""
    match = _DATASTORE_PATH.fullmatch(value)
    inside = posixpath.normpath(match.group(2)) if match else ""
    if match is None or inside.startswith(("/", "..")) or inside == ".":
        raise InvalidArgument(
            f"{field}: {value!r} is not a file on a datastore, such as [datastore] dir/file.vmdk", field=field
        )
    return f"[{match.group(1)}] {inside}"


def path_in_folder(value: str | None, folder: str, field: str, what: str) -> str:
    """An absolute, normalised path that lies inside ``folder`` (``what`` names the folder
    in the error) when ``folder`` is given."""
    out = absolute_path(value, field)
    if out and folder and not is_under(out, folder):
        raise InvalidArgument(f"{field}: {out!r} is not inside {what} {folder}", field=field)
    return out
