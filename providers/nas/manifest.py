"""One manifest per restore point: which chunks make up each volume, in order.

A manifest is the commit record of a restore point: it is written last, after every chunk
it names is durable, and a restore point exists exactly when its manifest does. It names
chunks, never other restore points, so deleting any restore point affects no other one.
A partial restore point (some volumes failed, the others kept) lists the volumes it lacks
in ``failed_volumes``; it is restored volume by volume only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import blake3

from providers.base import BackupResult, FailedVolume, VMRef

FORMAT = 1
ZERO = "0"  # stands for a chunk of zeros: stored nowhere, costs nothing
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def point_name(restore_point_id: str) -> str:
    """The repository name of a restore point: the framework's id when it is a safe file name."""
    if _SAFE_ID.match(restore_point_id):
        return restore_point_id
    return "rp-" + blake3.blake3(restore_point_id.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class VolumeManifest:
    id: str
    device_id: int
    name: str
    type: str
    format: str
    size: int
    path: str
    chunk_size: int
    chunks: tuple[str, ...]
    digest: str
    # What the snapshot source recorded about reading it (its reader's ``state``).
    source: dict[str, Any] = field(default_factory=dict)

    def spans(self) -> Iterator[tuple[int, int, int, str]]:
        """(index, offset, length, chunk id or ZERO) of every chunk, in order."""
        for index, chunk_id in enumerate(self.chunks):
            offset = index * self.chunk_size
            yield index, offset, min(self.chunk_size, self.size - offset), chunk_id

    @property
    def label(self) -> str:
        return f"volume {self.name or self.id} (device {self.device_id})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device_id": self.device_id,
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "size": self.size,
            "path": self.path,
            "chunk_size": self.chunk_size,
            "chunks": list(self.chunks),
            "digest": self.digest,
            # Absent when empty: manifests of sources that record nothing stay as they were.
            **({"source": self.source} if self.source else {}),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> VolumeManifest:
        return cls(**{**raw, "chunks": tuple(raw["chunks"])})


@dataclass(frozen=True)
class Manifest:
    id: str
    restore_point_id: str
    vm: VMRef
    offering: str
    backup_type: str
    parent: str | None
    consistency: str
    volumes: tuple[VolumeManifest, ...]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    stats: dict[str, Any] = field(default_factory=dict)
    failed_volumes: tuple[FailedVolume, ...] = ()
    # The job attempt that wrote it (manifests written before attempts were kept say 1).
    attempt: int = 1

    @property
    def protected_size(self) -> int:
        return sum(v.size for v in self.volumes)

    def chunk_ids(self) -> set[str]:
        return {c for v in self.volumes for c in v.chunks if c != ZERO}

    def result(self) -> BackupResult:
        return BackupResult(
            external_id=self.id,
            backup_type=self.backup_type,
            size=int(self.stats.get("stored_bytes", 0)),
            protected_size=self.protected_size,
            failed_volumes=self.failed_volumes,
        )

    def failed(self, volume_id: str) -> FailedVolume | None:
        return next((v for v in self.failed_volumes if v.id == volume_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "id": self.id,
            "restore_point_id": self.restore_point_id,
            "vm": self.vm.to_dict(),
            "offering": self.offering,
            "backup_type": self.backup_type,
            "parent": self.parent,
            "consistency": self.consistency,
            "created_at": self.created_at.isoformat(),
            "volumes": [v.to_dict() for v in self.volumes],
            "stats": self.stats,
            "failed_volumes": [asdict(v) for v in self.failed_volumes],
            "attempt": self.attempt,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Manifest:
        if raw.get("format") != FORMAT:
            raise ValueError(f"manifest format {raw.get('format')!r} is not {FORMAT}")
        return cls(
            id=raw["id"],
            restore_point_id=raw["restore_point_id"],
            vm=VMRef.from_dict(raw["vm"]),
            offering=raw["offering"],
            backup_type=raw["backup_type"],
            parent=raw.get("parent"),
            consistency=raw["consistency"],
            volumes=tuple(VolumeManifest.from_dict(v) for v in raw["volumes"]),
            created_at=datetime.fromisoformat(raw["created_at"]),
            stats=dict(raw.get("stats") or {}),
            failed_volumes=tuple(FailedVolume(**v) for v in raw.get("failed_volumes", ())),
            attempt=int(raw.get("attempt", 1)),
        )
