"""Typed access to a CloudStack command's parameters, with CloudStack's error wording."""

from __future__ import annotations

import builtins
from collections.abc import Mapping

from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.validate import NAME_LENGTH, TEXT_LENGTH

TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
# What every call may carry beside its command's own parameters: the envelope and the
# signature (clients and CloudStack's UI add a cache buster ``_`` and a session key too).
ENVELOPE = frozenset(
    {"command", "response", "apikey", "signature", "signatureversion", "expires", "sessionkey", "_"}
)

# Every value is at most a name's length, as the REST face takes them, but free text: a
# keyword of 100,000 characters became a LIKE pattern SQLite refused with a server error.
LONG_TEXT = {"description": TEXT_LENGTH}


class Params:
    """Parameter names are case-insensitive, as CloudStack treats them."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self.raw = {k.lower(): v for k, v in raw.items()}
        self.asked: set[builtins.str] = set()

    def str(self, name: str) -> str | None:
        self.asked.add(name)
        value = self.raw.get(name)
        limit = LONG_TEXT.get(name, NAME_LENGTH)
        if value is not None and len(value) > limit:
            raise InvalidArgument(
                f"Invalid parameter {name}: longer than {limit} characters ({len(value)})", field=name
            )
        return value if value not in (None, "") else None

    def unknown(self) -> list[builtins.str]:
        """Given parameters the command never read (a misspelt or unsupported name)."""
        return sorted(set(self.raw) - self.asked - ENVELOPE)

    def required(self, name: builtins.str) -> builtins.str:
        value = self.str(name)
        if value is None:
            raise InvalidArgument(
                f"Unable to execute API command due to missing parameter {name}", field=name
            )
        return value

    def int(self, name: builtins.str, default: builtins.int | None = None) -> builtins.int | None:
        value = self.str(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise InvalidArgument(
                f"Unable to execute API command due to invalid value. Invalid parameter {name} value={value} "
                "due to incorrect long value format, or entity does not exist",
                field=name,
            ) from None

    def bool(self, name: builtins.str, default: builtins.bool = False) -> builtins.bool:
        value = self.str(name)
        if value is None:
            return default
        if value.lower() in TRUE:
            return True
        if value.lower() in FALSE:
            return False
        raise InvalidArgument(f"Invalid parameter {name} value={value}: expected true or false", field=name)
