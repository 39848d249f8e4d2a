"""Typed readers of a driver's configuration, shared by every driver.

A driver checks all of its settings in its constructor (failing early, before any work,
with an ``InvalidArgument`` that names the setting at fault) by reading them through a
``Fields``: ``Fields(config, "config.").integer("threads", 4, 1, 64)``. Every error reads
``<prefix><key>: <what is wrong>``, with ``<prefix><key>`` as its field.

Imports only the standard library and the domain's errors: it is part of the port.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

from orchestrator.domain.errors import InvalidArgument

T = TypeVar("T")

# What a shell would read as redirection, pipes, lists or subshells.
SHELL_OPERATOR_CHARS = frozenset("();<>|&")


@dataclass(frozen=True)
class Fields:
    """The settings of one configuration mapping, each read, checked and typed on demand;
    ``prefix`` names the mapping in errors (``config.``, ``connection.``, or nothing)."""

    raw: Mapping[str, Any]
    prefix: str = ""

    def error(self, key: str, message: str) -> InvalidArgument:
        """The error for a bad setting: ``<prefix><key>: <message>``, with that name as its field."""
        name = f"{self.prefix}{key}"
        return InvalidArgument(f"{name}: {message}", field=name)

    def section(self, key: str) -> Fields:
        """The settings of the mapping held by ``key``, named ``<prefix><key>.`` in errors."""
        return Fields(self.raw.get(key) or {}, f"{self.prefix}{key}.")

    def required(self, key: str, why: str = "") -> Any:
        """The setting's value, which must be given and not null (else ``is required<why>``)."""
        value = self.raw.get(key)
        if value is None:
            raise self.error(key, f"is required{why}")
        return value

    def typed(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        """The setting if it is an instance of ``kind`` (a bool never is), ``default`` if absent."""
        value = self.raw.get(key, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.error(key, f"expected {names}, got {value!r}")
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        """The setting as a bool, which it must be (JSON true or false)."""
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def integer(self, key: str, default: int, low: int, high: int, *, what: str | None = None) -> int:
        """The setting as an int from ``low`` to ``high`` (a bool is none); ``what`` words the error."""
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            what = what or f"a whole number from {low} to {high}"
            raise self.error(key, f"must be {what}, got {value!r}")
        return value

    def number(
        self,
        key: str,
        default: float,
        *,
        above: float | None = None,
        at_least: float | None = None,
        what: str | None = None,
    ) -> float:
        """The setting as a float, from an int or float (not a bool) ``> above`` and ``≥ at_least``;
        ``what`` words every error of this setting alike."""
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be {what or 'a number'}, got {value!r}")
        if above is not None and not value > above:
            raise self.error(key, f"must be {what or f'> {above:g}'}, got {value!r}")
        if at_least is not None and not value >= at_least:
            raise self.error(key, f"must be {what or f'≥ {at_least:g}'}, got {value!r}")
        return float(value)

    def text(self, key: str, default: str, pattern: re.Pattern[str], what: str) -> str:
        """The setting as a str that ``pattern`` matches (else ``must be <what>``)."""
        value = self.raw.get(key, default)
        if not isinstance(value, str) or not pattern.match(value):
            raise self.error(key, f"must be {what}, got {value!r}")
        return value

    def choice(self, key: str, choices: Sequence[str], default: str | None = None, *, shown: str = "") -> str:
        """The setting, which must be one of ``choices`` (listed as ``shown``, else as a tuple)."""
        value: str = self.raw.get(key, default)
        if value not in choices:
            raise self.error(key, f"must be one of {shown or tuple(choices)}, got {value!r}")
        return value

    @overload
    def absolute_path(self, key: str, *, required: str, why: str = "") -> Path: ...
    @overload
    def absolute_path(self, key: str, *, required: None = None, why: str = "") -> Path | None: ...
    def absolute_path(self, key: str, *, required: str | None = None, why: str = "") -> Path | None:
        """The setting as an absolute Path (``why`` says why it must be), normalised (no ``.``,
        ``..`` or doubled slash left), None when absent or null unless ``required`` (then
        ``is required<required>``)."""
        if required is not None:
            self.required(key, required)
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str | os.PathLike) or not str(value):
            raise self.error(key, f"must be a path, got {value!r}")
        path = Path(value)
        if not path.is_absolute():
            raise self.error(key, f"must be an absolute path{why}, got {str(value)!r}")
        # normpath keeps a leading "//" (POSIX leaves its meaning open); one slash means the root.
        return Path("/" + os.path.normpath(path).lstrip("/"))

    def folder(self, key: str, *, required: str, why: str = "") -> Path:
        """The setting as an absolute, normalised Path of a folder that holds data of its own:
        never the root directory, which holds every other folder."""
        path = self.absolute_path(key, required=required, why=why)
        if path == Path("/"):
            raise self.error(key, "must not be the root directory /")
        return path

    def per_key(self, key: str, read: Callable[[Any], T], shape: str) -> dict[str, T]:
        """The setting as a mapping (``shape`` shows it in errors), each value read by ``read``;
        an ``InvalidArgument`` from ``read`` is reported as ``<key>.<entry>: ...``."""
        raw = self.raw.get(key, {})
        if not isinstance(raw, Mapping):
            raise self.error(key, f"must be {shape}")
        read_all = {}
        for entry, value in raw.items():
            try:
                read_all[str(entry)] = read(value)
            except InvalidArgument as exc:
                raise InvalidArgument(f"{key}.{entry}: {exc.message}", field=f"{self.prefix}{key}") from None
        return read_all

    def command(self, key: str) -> tuple[str, ...]:
        """The setting as a non-empty argv, from a shell-quoted string or a list of strings; () if absent."""
        value = self.raw.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            lexer = shlex.shlex(value, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            parts = list(lexer)
            if operators := [p for p in parts if p and set(p) <= SHELL_OPERATOR_CHARS]:
                # The command runs without a shell: ``echo x >> f`` would run echo with the
                # arguments ">>" and "f" and silently write nothing.
                raise self.error(
                    key,
                    f"runs without a shell, so {operators[0]!r} would be passed as an argument; "
                    'give ["sh", "-c", "..."] to use shell syntax',
                )
        elif isinstance(value, Sequence) and all(isinstance(p, str) for p in value):
            parts = list(value)
        else:
            raise self.error(key, f"must be a command line (a string or a list of strings), got {value!r}")
        if not parts:
            raise self.error(key, "must not be empty")
        return tuple(parts)
