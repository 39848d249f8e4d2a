"""Encrypts secrets at rest (API key secrets, the secret settings of provider configurations)
with a master key the operator controls.

The key comes from ``BACKUP_SECRET_KEY`` (a Fernet key) or, on the embedded default,
from ``$BACKUP_HOME/master.key``, created on first use with mode 0600. Losing it means
issuing new API keys and setting providers' secrets again; it is never stored in the database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from orchestrator.domain.errors import AuthenticationFailed, InvalidArgument
from orchestrator.domain.secrets import map_secrets
from orchestrator.infra.private_files import private_dir

# How a sealed secret setting is stored in a configuration: {"$sealed": "<Fernet token>"}.
SEALED = "$sealed"


def _load_key(home: Path) -> Fernet:
    """The master key, from ``BACKUP_SECRET_KEY`` or the key file (made on first use);
    InvalidArgument, naming where it came from but never showing it, when it is no key."""
    if env := os.environ.get("BACKUP_SECRET_KEY"):
        key, source = env.encode(), "BACKUP_SECRET_KEY"
    else:
        path = home / "master.key"
        try:
            if not path.exists():
                private_dir(home)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(Fernet.generate_key())
            key, source = path.read_bytes().strip(), str(path)
        except OSError as exc:
            raise InvalidArgument(
                f"cannot read or create the master key {path}: {exc.strerror}", field="BACKUP_HOME"
            ) from None
    try:
        return Fernet(key)
    except ValueError:
        raise InvalidArgument(
            f"{source} is not a Fernet key (32 url-safe base64-encoded bytes; make one with "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')",
            field="BACKUP_SECRET_KEY",
        ) from None


# Signed requests unseal their key's secret on every call. A sealed text always opens to
# the same secret, so remembering the answer changes nothing a caller can observe: whether
# the key is still live is read from its row each time, and a new secret is a new text.
UNSEALED_KEPT = 1024


class Sealer:
    def __init__(self, home: Path) -> None:
        self._fernet = _load_key(home)
        self.unseal = lru_cache(maxsize=UNSEALED_KEPT)(self._unseal)

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def _unseal(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise AuthenticationFailed("the API key was sealed with another master key") from None

    def seal_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` with every secret setting sealed (those already sealed are kept as they are)."""
        return map_secrets(config, self._seal_value)

    def seal_settings(self, config: Mapping[str, Any], names: Collection[str]) -> dict[str, Any]:
        """``config`` with the top-level settings ``names`` sealed: for a host's connection,
        whose driver says which of its settings are secret (a key *file* is a path, not one)."""
        return {k: self._seal_value(v) if k in names else v for k, v in config.items()}

    def unseal_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` as the driver needs it: every sealed setting opened. A setting stored
        before sealing existed is still in clear and passes as it is."""
        return map_secrets(config, self._unseal_value)

    def _seal_value(self, value: Any) -> Any:
        if _is_sealed(value):
            return value
        return {SEALED: self.seal(json.dumps(value))}

    def _unseal_value(self, value: Any) -> Any:
        if not _is_sealed(value):
            return value
        try:
            return json.loads(self._fernet.decrypt(value[SEALED].encode()))
        except InvalidToken:
            raise InvalidArgument(
                "config: a secret setting was sealed with another master key; set it again "
                "with a provider update",
                field="config",
            ) from None


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED} and isinstance(value[SEALED], str)
