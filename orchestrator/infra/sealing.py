"""Encrypts secrets at rest with a master key the operator controls: API secrets, and the
settings of provider configurations that their drivers declare secret.

The key comes from ``BACKUP_SECRET_KEY`` (a Fernet key) or, on the embedded default,
from ``$BACKUP_HOME/master.key``, created on first use with mode 0600. Losing it means
issuing new API keys; it is never stored in the database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from orchestrator.domain.errors import AuthenticationFailed, InvalidArgument
from orchestrator.infra.private_files import private_dir


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


# A sealed setting of a provider configuration is stored as ``{"$sealed": token}``: a shape
# no driver reads as a value of its own, so it can be recognised (and never shown) anywhere.
SEALED_MARK = "$sealed"


def is_sealed(value: object) -> bool:
    return isinstance(value, Mapping) and set(value) == {SEALED_MARK}


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

    def seal_setting(self, _name: str, value: Any) -> Any:
        """A secret setting as it is stored: sealed when it is text (anything else is left for
        the driver to refuse), unchanged when sealed already."""
        return {SEALED_MARK: self.seal(value)} if isinstance(value, str) else value

    def unseal_setting(self, name: str, value: Any) -> Any:
        """What ``seal_setting`` stored, in clear; InvalidArgument naming the setting when
        another master key sealed it."""
        if not is_sealed(value):
            return value
        try:
            return self._unseal(value[SEALED_MARK])
        except AuthenticationFailed:
            raise InvalidArgument(
                f"{name}: sealed with another master key; set BACKUP_SECRET_KEY to the key it was "
                "sealed with, or add the provider again",
                field="BACKUP_SECRET_KEY",
            ) from None

    def _unseal(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise AuthenticationFailed("the API key was sealed with another master key") from None
