"""The driver's configuration: parsed and checked once, in the constructor, with errors that
name the field at fault. Nothing here touches the repository (a hung mount must not hang
``provider add``)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.retention import RetentionPolicy
from providers.base import ProviderOffering

KiB = 1024
MiB = 1024 * KiB

DEFAULT_CHUNK_SIZE = 512 * KiB
DEFAULT_OFFERINGS = (
    ProviderOffering("nas-hourly", "NAS hourly", "hourly restore points in the NAS repository"),
    ProviderOffering("nas-daily", "NAS daily", "daily restore points in the NAS repository"),
    ProviderOffering("nas-weekly", "NAS weekly", "weekly restore points in the NAS repository"),
)
SNAPSHOT_MODES = ("auto", "reflink", "command", "direct")
CIPHERS = ("aes-256-gcm", "chacha20-poly1305")


@dataclass(frozen=True)
class EncryptionConfig:
    cipher: str
    passphrase: str | None = None
    key_file: Path | None = None

    def secret(self) -> bytes:
        """The bytes the repository key is derived from (a key file is read at use, on the worker)."""
        if self.passphrase is not None:
            return self.passphrase.encode()
        assert self.key_file is not None
        # Surrounding whitespace is dropped so that a key file saved with or without its
        # final newline opens the same repository.
        return self.key_file.read_bytes().strip()


# zstd's negative ("fast") levels give up ratio for speed, for workers short of CPU; the
# README gives the measured trade-off down to this one.
FASTEST_COMPRESSION = -4


@dataclass(frozen=True)
class NasConfig:
    repository: Path
    chunk_size: int = DEFAULT_CHUNK_SIZE
    chunk_size_given: bool = False
    compression_level: int = 1
    encryption: EncryptionConfig | None = None
    snapshot: str = "auto"
    snapshot_command: tuple[str, ...] = ()
    release_command: tuple[str, ...] = ()
    freeze_command: tuple[str, ...] = ()
    thaw_command: tuple[str, ...] = ()
    hook_timeout_s: float = 300.0
    io_timeout_s: float = 120.0
    gc_grace_s: float = 86400.0
    lock_stale_s: float = 600.0
    lock_wait_s: float = 30.0
    threads: int = 4
    fsync: bool = True
    staging_dir: Path | None = None
    restore_dir: Path | None = None
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    offerings: tuple[ProviderOffering, ...] = DEFAULT_OFFERINGS


KNOWN_KEYS = {
    "repository",
    "chunk_size",
    "compression_level",
    "encryption",
    "snapshot",
    "snapshot_command",
    "release_command",
    "freeze_command",
    "thaw_command",
    "hook_timeout_s",
    "io_timeout_s",
    "gc_grace_s",
    "lock_stale_s",
    "lock_wait_s",
    "threads",
    "fsync",
    "staging_dir",
    "restore_dir",
    "retention",
    "offerings",
}


def _fail(key: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"config.{key}: {message}", field=f"config.{key}")


def _abs_path(raw: Mapping[str, Any], key: str, label: str | None = None) -> Path | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise _fail(label or key, f"must be a path, got {value!r}")
    path = Path(value)
    if not path.is_absolute():
        raise _fail(label or key, f"must be an absolute path, got {str(value)!r}")
    return path


def _number(raw: Mapping[str, Any], key: str, default: float, *, minimum: float, strict: bool) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(key, f"must be a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise _fail(key, f"must be {'>' if strict else '≥'} {minimum:g}, got {value!r}")
    return float(value)


def _integer(raw: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(key, f"must be a whole number from {low} to {high}, got {value!r}")
    return value


def _command(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        parts = shlex.split(value)
    elif isinstance(value, Sequence) and all(isinstance(p, str) for p in value):
        parts = list(value)
    else:
        raise _fail(key, f"must be a command line (a string or a list of strings), got {value!r}")
    if not parts:
        raise _fail(key, "must not be empty")
    return tuple(parts)


def _encryption(value: Any) -> EncryptionConfig | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail("encryption", "must be an object with 'passphrase' or 'key_file'")
    unknown = set(value) - {"passphrase", "key_file", "cipher"}
    if unknown:
        raise _fail("encryption", f"unknown keys {sorted(unknown)}; known: cipher, key_file, passphrase")
    cipher = value.get("cipher", CIPHERS[0])
    if cipher not in CIPHERS:
        raise _fail("encryption.cipher", f"must be one of {CIPHERS}, got {cipher!r}")
    passphrase, key_file = value.get("passphrase"), value.get("key_file")
    if (passphrase is None) == (key_file is None):
        raise _fail("encryption", "give exactly one of 'passphrase' and 'key_file'")
    if passphrase is not None:
        if not isinstance(passphrase, str) or len(passphrase) < 8:
            raise _fail("encryption.passphrase", "must be a string of at least 8 characters")
        return EncryptionConfig(cipher=cipher, passphrase=passphrase)
    path = _abs_path(value, "key_file", "encryption.key_file")
    return EncryptionConfig(cipher=cipher, key_file=path)


def _offerings(value: Any) -> tuple[ProviderOffering, ...]:
    if value is None:
        return DEFAULT_OFFERINGS
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise _fail("offerings", "must be a non-empty list of {id, name, description}")
    found = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str) or not item["id"]:
            raise _fail(f"offerings[{i}]", "needs a non-empty string 'id'")
        found.append(
            ProviderOffering(item["id"], str(item.get("name", item["id"])), str(item.get("description", "")))
        )
    ids = [o.external_id for o in found]
    if len(set(ids)) != len(ids):
        raise _fail("offerings", f"ids must be unique, got {ids}")
    return tuple(found)


def _retention(value: Any) -> RetentionPolicy:
    if value is None:
        return RetentionPolicy()
    if not isinstance(value, Mapping):
        raise _fail("retention", "must be an object like {'keep_last': 3, 'keep_daily': 7}")
    known = {f for f in RetentionPolicy.__dataclass_fields__}
    unknown = set(value) - known
    if unknown:
        raise _fail("retention", f"unknown rules {sorted(unknown)}; known: {sorted(known)}")
    try:
        return RetentionPolicy(**value)
    except InvalidArgument as exc:
        raise _fail("retention", exc.message) from None


def parse_config(raw: Mapping[str, Any]) -> NasConfig:
    """Check every setting and return them typed; InvalidArgument names the first bad one."""
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise InvalidArgument(
            f"config: unknown keys {sorted(unknown)}; known: {sorted(KNOWN_KEYS)}", field="config"
        )
    repository = _abs_path(raw, "repository")
    if repository is None:
        raise _fail("repository", "is required: the directory (an NFS/SMB mount) that holds the repository")
    chunk_size = _integer(raw, "chunk_size", DEFAULT_CHUNK_SIZE, 64 * KiB, 64 * MiB)
    if chunk_size & (chunk_size - 1):
        raise _fail("chunk_size", f"must be a power of two (aligned with disk blocks), got {chunk_size}")
    snapshot = raw.get("snapshot", "auto")
    if snapshot not in SNAPSHOT_MODES:
        raise _fail("snapshot", f"must be one of {SNAPSHOT_MODES}, got {snapshot!r}")
    snapshot_command = _command(raw, "snapshot_command")
    if snapshot == "command" and not snapshot_command:
        raise _fail("snapshot_command", "is required when snapshot is 'command'")
    thaw_command = _command(raw, "thaw_command")
    freeze_command = _command(raw, "freeze_command")
    if bool(freeze_command) != bool(thaw_command):
        raise _fail("thaw_command", "freeze_command and thaw_command go together")
    fsync = raw.get("fsync", True)
    if not isinstance(fsync, bool):
        raise _fail("fsync", f"must be true or false, got {fsync!r}")
    return NasConfig(
        repository=repository,
        chunk_size=chunk_size,
        chunk_size_given="chunk_size" in raw,
        compression_level=_integer(raw, "compression_level", 1, FASTEST_COMPRESSION, 19),
        encryption=_encryption(raw.get("encryption")),
        snapshot=snapshot,
        snapshot_command=snapshot_command,
        release_command=_command(raw, "release_command"),
        freeze_command=freeze_command,
        thaw_command=thaw_command,
        hook_timeout_s=_number(raw, "hook_timeout_s", 300.0, minimum=0, strict=True),
        io_timeout_s=_number(raw, "io_timeout_s", 120.0, minimum=0, strict=True),
        gc_grace_s=_number(raw, "gc_grace_s", 86400.0, minimum=0, strict=False),
        lock_stale_s=_number(raw, "lock_stale_s", 600.0, minimum=0, strict=True),
        lock_wait_s=_number(raw, "lock_wait_s", 30.0, minimum=0, strict=False),
        threads=_integer(raw, "threads", max(2, min(8, 2 * (os.cpu_count() or 1))), 1, 64),
        fsync=fsync,
        staging_dir=_abs_path(raw, "staging_dir"),
        restore_dir=_abs_path(raw, "restore_dir"),
        retention=_retention(raw.get("retention")),
        offerings=_offerings(raw.get("offerings")),
    )
