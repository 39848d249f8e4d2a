"""Which settings of a driver's configuration are secrets, and how they are shown.

A setting is a secret when its name says so (``passphrase``, ``secret``, ``token``, ``api_key``
...). Secrets are sealed at rest (``orchestrator.infra.sealing``) and shown as ``********``;
an update that sends ``********`` back for a secret keeps the stored one, so a client can
round-trip what it was shown without knowing the secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.domain.errors import InvalidArgument

_SECRET_NAME = re.compile(r"pass|secret|token|key|credential", re.IGNORECASE)
REDACTED = "********"


def is_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def map_secrets(config: Any, fn: Callable[[Any], Any]) -> Any:
    """``config`` with ``fn`` applied to the value of every secret setting, at any depth."""
    if isinstance(config, Mapping):
        return {k: fn(v) if is_secret(k) else map_secrets(v, fn) for k, v in config.items()}
    if isinstance(config, list):
        return [map_secrets(v, fn) for v in config]
    return config


def redact(config: Any) -> Any:
    """What may be shown of a configuration: every secret as ``********``."""
    return map_secrets(config, lambda _: REDACTED)


def keep_stored(new: Any, stored: Any, path: str = "config") -> Any:
    """``new`` with each secret given as ``********`` replaced by the stored value at that place."""
    if isinstance(new, Mapping):
        old = stored if isinstance(stored, Mapping) else {}
        out = {}
        for k, v in new.items():
            where = f"{path}.{k}"
            if is_secret(k) and v == REDACTED:
                if k not in old:
                    raise InvalidArgument(
                        f"{where}: {REDACTED} stands for the stored secret, but none is stored", field=where
                    )
                out[k] = old[k]
            else:
                out[k] = keep_stored(v, old.get(k), where)
        return out
    if isinstance(new, list):
        old_items = stored if isinstance(stored, list) else []
        return [
            keep_stored(v, old_items[i] if i < len(old_items) else None, f"{path}[{i}]")
            for i, v in enumerate(new)
        ]
    return new
