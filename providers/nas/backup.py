"""Taking a restore point: read every volume's chunks, store the new ones, name them all.

The data path is a pipeline over the I/O pool: each task reads one chunk from the frozen
source image, drops it at once if it is all zeros, hashes it (BLAKE3 releases the GIL),
and, unless the repository already has that id, compresses (zstd, GIL released), seals
and writes it under a temporary name, starting its write-back. The caller keeps a bounded
window of tasks in flight, collects them in order with a deadline each, and reports
progress. At the end one ``syncfs`` makes the new chunks durable, they are renamed to
their ids, and a second ``syncfs`` makes the names durable. Nothing is committed here:
the driver writes the manifest after that.

A volume whose source cannot be read (an I/O error; or, from the driver, an image that
cannot be opened) is dropped and named in the manifest's ``failed_volumes``, and the
others are kept: a partial restore point. When no volume is left, the backup fails.

An incremental reads every byte again (there is no changed-block tracking on a plain
file) but writes only chunks whose id is new: ids already in the parent's manifest are
not even looked up, other ids cost one ``stat`` in the repository (dedup across VMs).
A source that tracks changed blocks (its reader's ``unchanged``) spares the reading too:
a chunk it says did not change since the parent keeps the parent's chunk id, unread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.domain.errors import ProviderError
from providers.base import BackupRequest, FailedVolume, Progress, VolumeRef
from providers.nas.chunker import ImageReader, is_zero
from providers.nas.iopool import IoPool, paced_timeout
from providers.nas.manifest import ZERO, Manifest, VolumeManifest
from providers.nas.snapshot import Capture
from providers.nas.store import FileSystemSync, Repository, Staging

NEW, ADOPTED, KNOWN, DEDUP, EMPTY, UNCHANGED = "new", "adopted", "known", "dedup", "zero", "unchanged"


class SourceUnreadable(Exception):
    """Reading a source image failed (an error of that volume, not of the repository)."""


class KnownChunks:
    """Ids known to be in the repository: from the parent's manifest and this run."""

    def __init__(self, ids: set[str]) -> None:
        self._ids = set(ids)
        self._lock = threading.Lock()

    def claim(self, chunk_id: str) -> bool:
        """True if the id is known; otherwise records it (the caller stores it) and says False."""
        with self._lock:
            if chunk_id in self._ids:
                return True
            self._ids.add(chunk_id)
            return False


@dataclass
class Stats:
    read_bytes: int = 0
    stored_bytes: int = 0
    new_chunks: int = 0
    # Staged by a crashed attempt, checked and taken over instead of written again.
    adopted_chunks: int = 0
    known_chunks: int = 0
    dedup_chunks: int = 0
    zero_chunks: int = 0
    # Not read: the source's changed-block tracking said they are the parent's.
    unchanged_chunks: int = 0
    started: float = field(default_factory=time.monotonic)

    def count(self, kind: str, read: int, stored: int) -> None:
        self.read_bytes += read
        self.stored_bytes += stored
        if kind == NEW:
            self.new_chunks += 1
        elif kind == ADOPTED:
            self.adopted_chunks += 1
        elif kind == KNOWN:
            self.known_chunks += 1
        elif kind == DEDUP:
            self.dedup_chunks += 1
        elif kind == UNCHANGED:
            self.unchanged_chunks += 1
        else:
            self.zero_chunks += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "read_bytes": self.read_bytes,
            "stored_bytes": self.stored_bytes,
            "new_chunks": self.new_chunks,
            "adopted_chunks": self.adopted_chunks,
            "known_chunks": self.known_chunks,
            "dedup_chunks": self.dedup_chunks,
            "zero_chunks": self.zero_chunks,
            "unchanged_chunks": self.unchanged_chunks,
            "duration_s": round(time.monotonic() - self.started, 3),
        }


def _store_chunk(
    repo: Repository,
    staging: Staging,
    known: KnownChunks,
    staged: list[tuple[str, str]],
    reader: ImageReader,
    offset: int,
    length: int,
) -> tuple[str, str, int, int]:
    """(chunk id or ZERO, kind, bytes read, bytes stored) of one chunk of a source image."""
    try:
        data = reader.read(offset, length)
    except OSError as exc:
        raise SourceUnreadable(str(exc)) from exc
    if data is None:
        return ZERO, EMPTY, 0, 0
    if is_zero(data):
        return ZERO, EMPTY, length, 0
    chunk_id = repo.keys.chunk_id(data)
    if known.claim(chunk_id):
        return chunk_id, KNOWN, length, 0
    new = repo.stage_chunk(chunk_id, data, staging)
    if new is None:
        return chunk_id, DEDUP, length, 0
    staged.append((new.tmp, chunk_id))
    return chunk_id, ADOPTED if new.adopted else NEW, length, new.size


def publish(
    repo: Repository, pool: IoPool, sync: FileSystemSync, staged: list[tuple[str, str]], nbytes: int
) -> None:
    """Name the staged chunks once their content is durable, and make the names durable:
    only then may a manifest refer to them."""
    if not staged:
        return
    limit = paced_timeout(pool.timeout, nbytes)
    pool.call_within(limit, "flushing new chunks to the repository", repo.flush, sync)
    futures = [pool.submit(repo.publish, tmp, chunk_id) for tmp, chunk_id in staged]
    for future in futures:
        pool.wait(future, "naming new chunks")
    pool.call("flushing the new chunks' names", repo.flush, sync)


@dataclass
class _Volume:
    ref: VolumeRef
    reader: ImageReader
    # The parent's chunks of this volume, when it has the same size and chunk size: what an
    # unchanged chunk keeps.
    parent_chunks: tuple[str, ...] = ()
    chunks: list[str] = field(default_factory=list)
    # Why it cannot be read: set at the first error, its chunks are dropped.
    failure: str | None = None

    def parent_chunk(self, offset: int, length: int, chunk_size: int) -> str | None:
        """The parent's chunk at ``offset`` when the source says it is unchanged, else None."""
        if not self.parent_chunks or not self.reader.unchanged(offset, length):
            return None
        return self.parent_chunks[offset // chunk_size]


def _parent_chunks(parent: Manifest | None, ref: VolumeRef, size: int, chunk_size: int) -> tuple[str, ...]:
    found = next((v for v in parent.volumes if v.id == ref.id), None) if parent else None
    if found is None or found.size != size or found.chunk_size != chunk_size:
        return ()
    return found.chunks


def _done(result: tuple[str, str, int, int]) -> Future[tuple[str, str, int, int]]:
    future: Future[tuple[str, str, int, int]] = Future()
    future.set_result(result)
    return future


def _spans(volumes: list[_Volume], chunk_size: int) -> Iterator[tuple[_Volume, int, int]]:
    for volume in volumes:
        for offset in range(0, volume.reader.size, chunk_size):
            yield volume, offset, min(chunk_size, volume.reader.size - offset)


def back_up(
    repo: Repository,
    staging: Staging,
    pool: IoPool,
    request: BackupRequest,
    capture: Capture,
    readers: dict[str, ImageReader],
    unreadable: dict[str, str],
    parent: Manifest | None,
    progress: Progress,
    *,
    name: str,
    window: int,
    created_at: datetime,
) -> Manifest:
    """Store every chunk of every volume that ``readers`` has (the others are ``unreadable``:
    volume id -> why); returns the manifest to commit (not yet written)."""
    known = KnownChunks(parent.chunk_ids() if parent else set())
    ordered = sorted(request.vm.volumes, key=lambda v: v.device_id)
    volumes = [
        _Volume(v, readers[v.id], _parent_chunks(parent, v, readers[v.id].size, repo.chunk_size))
        for v in ordered
        if v.id in readers
    ]
    total = sum(v.reader.size for v in volumes)
    stats = Stats()
    done = 0
    progress(0, total)
    inflight: deque[tuple[_Volume, int, int, Future[tuple[str, str, int, int]]]] = deque()
    staged: list[tuple[str, str]] = []  # list.append is atomic: threads share it

    def collect() -> None:
        nonlocal done
        volume, offset, length, future = inflight.popleft()
        done += length
        try:
            chunk_id, kind, read, stored = pool.wait(future, f"backing up {volume.ref.name} at byte {offset}")
        except SourceUnreadable as exc:
            volume.failure = volume.failure or f"cannot read {volume.ref.path} at byte {offset}: {exc}"
        else:
            volume.chunks.append(chunk_id)
            stats.count(kind, read, stored)
        progress(done, total)

    sync = pool.call("opening the repository's file system", repo.open_sync)
    try:
        for volume, offset, length in _spans(volumes, repo.chunk_size):
            if volume.failure is not None:
                done += length
                continue
            carried = volume.parent_chunk(offset, length, repo.chunk_size)
            if carried is not None:
                future = _done((carried, UNCHANGED, 0, 0))
            else:
                reader = volume.reader
                future = pool.submit(_store_chunk, repo, staging, known, staged, reader, offset, length)
            inflight.append((volume, offset, length, future))
            if len(inflight) >= window:
                collect()
        while inflight:
            collect()
        publish(repo, pool, sync, staged, stats.stored_bytes)
    finally:
        for *_, future in inflight:
            future.cancel()
        with contextlib.suppress(ProviderError):
            pool.call_detached("closing the repository's file system", sync.close)
    failed = {v.ref.id: v.failure for v in volumes if v.failure is not None} | unreadable
    kept = [v for v in volumes if v.failure is None]
    if not kept:
        raise ProviderError(
            f"no volume of {request.vm.name} could be read: " + "; ".join(failed.values()), retryable=False
        )
    return Manifest(
        id=name,
        restore_point_id=request.restore_point_id,
        vm=request.vm,
        offering=request.offering_external_id,
        backup_type="INCREMENTAL" if parent else "FULL",
        parent=parent.id if parent else None,
        consistency=capture.consistency,
        created_at=created_at,
        volumes=tuple(
            VolumeManifest(
                id=v.ref.id,
                device_id=v.ref.device_id,
                name=v.ref.name,
                type=v.ref.type,
                format=v.ref.format,
                size=v.reader.size,
                path=v.ref.path,
                chunk_size=repo.chunk_size,
                chunks=tuple(v.chunks),
                digest=repo.keys.digest(v.chunks),
                source=dict(v.reader.state),
            )
            for v in kept
        ),
        stats={**stats.to_dict(), "protected_bytes": sum(v.reader.size for v in kept)},
        failed_volumes=tuple(FailedVolume.of(v, failed[v.id]) for v in ordered if v.id in failed),
        attempt=request.attempt,
    )
