"""The driver's configuration: parsed and checked once, in the constructor, with errors that
name the field at fault. Nothing here touches the repository (a hung mount must not hang
``provider add``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.retention import RetentionPolicy
from providers.base import ProviderOffering
from providers.config import Fields

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


def _encryption(config: Fields) -> EncryptionConfig | None:
    value = config.raw.get("encryption")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise config.error("encryption", "must be an object with 'passphrase' or 'key_file'")
    unknown = set(value) - {"passphrase", "key_file", "cipher"}
    if unknown:
        raise config.error(
            "encryption", f"unknown keys {sorted(unknown)}; known: cipher, key_file, passphrase"
        )
    encryption = config.section("encryption")
    cipher = encryption.choice("cipher", CIPHERS, CIPHERS[0])
    passphrase, key_file = value.get("passphrase"), value.get("key_file")
    if (passphrase is None) == (key_file is None):
        raise config.error("encryption", "give exactly one of 'passphrase' and 'key_file'")
    if passphrase is not None:
        if not isinstance(passphrase, str) or len(passphrase) < 8:
            raise encryption.error("passphrase", "must be a string of at least 8 characters")
        return EncryptionConfig(cipher=cipher, passphrase=passphrase)
    return EncryptionConfig(cipher=cipher, key_file=encryption.absolute_path("key_file"))


def _offerings(config: Fields) -> tuple[ProviderOffering, ...]:
    value = config.raw.get("offerings")
    if value is None:
        return DEFAULT_OFFERINGS
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise config.error("offerings", "must be a non-empty list of {id, name, description}")
    found = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str) or not item["id"]:
            raise config.error(f"offerings[{i}]", "needs a non-empty string 'id'")
        found.append(
            ProviderOffering(item["id"], str(item.get("name", item["id"])), str(item.get("description", "")))
        )
    ids = [o.external_id for o in found]
    if len(set(ids)) != len(ids):
        raise config.error("offerings", f"ids must be unique, got {ids}")
    return tuple(found)


def _retention(config: Fields) -> RetentionPolicy:
    value = config.raw.get("retention")
    if value is None:
        return RetentionPolicy()
    if not isinstance(value, Mapping):
        raise config.error("retention", "must be an object like {'keep_last': 3, 'keep_daily': 7}")
    known = {f for f in RetentionPolicy.__dataclass_fields__}
    unknown = set(value) - known
    if unknown:
        raise config.error("retention", f"unknown rules {sorted(unknown)}; known: {sorted(known)}")
    try:
        return RetentionPolicy(**value)
    except InvalidArgument as exc:
        raise config.error("retention", exc.message) from None


def parse_config(raw: Mapping[str, Any]) -> NasConfig:
    """Check every setting and return them typed; InvalidArgument names the first bad one."""
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise InvalidArgument(
            f"config: unknown keys {sorted(unknown)}; known: {sorted(KNOWN_KEYS)}", field="config"
        )
    config = Fields(raw, "config.")
    repository = config.folder(
        "repository", required=": the directory (an NFS/SMB mount) that holds the repository"
    )
    chunk_size = config.integer("chunk_size", DEFAULT_CHUNK_SIZE, 64 * KiB, 64 * MiB)
    if chunk_size & (chunk_size - 1):
        raise config.error(
            "chunk_size", f"must be a power of two (aligned with disk blocks), got {chunk_size}"
        )
    snapshot = config.choice("snapshot", SNAPSHOT_MODES, "auto")
    snapshot_command = config.command("snapshot_command")
    if snapshot == "command" and not snapshot_command:
        raise config.error("snapshot_command", "is required when snapshot is 'command'")
    thaw_command = config.command("thaw_command")
    freeze_command = config.command("freeze_command")
    if bool(freeze_command) != bool(thaw_command):
        raise config.error("thaw_command", "freeze_command and thaw_command go together")
    fsync = config.flag("fsync", True)
    return NasConfig(
        repository=repository,
        chunk_size=chunk_size,
        chunk_size_given="chunk_size" in raw,
        compression_level=config.integer("compression_level", 1, FASTEST_COMPRESSION, 19),
        encryption=_encryption(config),
        snapshot=snapshot,
        snapshot_command=snapshot_command,
        release_command=config.command("release_command"),
        freeze_command=freeze_command,
        thaw_command=thaw_command,
        hook_timeout_s=config.number("hook_timeout_s", 300.0, above=0),
        io_timeout_s=config.number("io_timeout_s", 120.0, above=0),
        gc_grace_s=config.number("gc_grace_s", 86400.0, at_least=0),
        lock_stale_s=config.number("lock_stale_s", 600.0, above=0),
        lock_wait_s=config.number("lock_wait_s", 30.0, at_least=0),
        threads=config.integer("threads", max(2, min(8, 2 * (os.cpu_count() or 1))), 1, 64),
        fsync=fsync,
        staging_dir=config.absolute_path("staging_dir"),
        restore_dir=config.absolute_path("restore_dir"),
        retention=_retention(config),
        offerings=_offerings(config),
    )
