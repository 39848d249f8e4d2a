"""Writing restore points back to disk images, verified before they replace anything.

Each volume is written to a temporary sparse raw file beside its destination (zero chunks
become holes), read back and checked chunk by chunk against the manifest, converted with
qemu-img (and compared with ``qemu-img compare``) when the destination is not raw, fsynced,
and only then renamed over the destination. A failed restore leaves the destination as
it was; a restore that did not write and verify every byte of every volume is an error.

Volumes are matched to the target VM by volume id, then by device id - never by their
position in a list, which depends on the order the volumes were created in.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.domain.errors import ProviderError
from providers.base import VMRef, VolumeRef
from providers.nas import qemu
from providers.nas.chunker import is_zero, zeros
from providers.nas.iopool import IoPool, paced_timeout
from providers.nas.manifest import ZERO, Manifest, VolumeManifest
from providers.nas.store import Repository, fsync_dir

T = TypeVar("T")

WRITABLE_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc")
Advance = Callable[[int], None]


def match_volumes(manifest: Manifest, target: VMRef) -> list[tuple[VolumeManifest, VolumeRef]]:
    """Pair each volume of the restore point with the target's volume of the same id, else
    of the same device id; every volume must find its own."""
    if not manifest.volumes:
        raise ProviderError(f"restore point {manifest.id} holds no volumes", retryable=False)
    return target.pair(
        manifest.volumes,
        lambda volume: (
            f"restore point {manifest.id} has {volume.label}, but VM {target.name} has no volume "
            f"with id {volume.id} or device id {volume.device_id}; nothing was restored"
        ),
    )


class _Target:
    """The file being restored into. Its descriptor is closed only once no write is in
    flight: a write that outlives a timed-out restore must never land in whatever file
    reuses the descriptor number."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._guard = threading.Lock()
        self._active = 0
        self._closed = False

    def pwrite(self, data: bytes, offset: int) -> None:
        with self._guard:
            if self._closed:
                raise ProviderError("restore abandoned", retryable=True)
            self._active += 1
        try:
            view = memoryview(data)
            while view:
                view = view[os.pwrite(self.fd, view, offset + len(data) - len(view)) :]
        finally:
            with self._guard:
                self._active -= 1
                last = self._closed and self._active == 0
            if last:
                os.close(self.fd)

    def pread(self, length: int, offset: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def close(self) -> None:
        with self._guard:
            if self._closed:
                return
            self._closed = True
            idle = self._active == 0
        if idle:
            os.close(self.fd)


def _fetch(repo: Repository, chunk_id: str, length: int) -> bytes:
    """The chunk's bytes, checked against its id and length (zeros for ZERO)."""
    if chunk_id == ZERO:
        return zeros(length)
    data = repo.get_chunk(chunk_id)
    if len(data) != length:
        raise ProviderError(f"chunk {chunk_id} holds {len(data)} bytes, expected {length}", retryable=False)
    return data


def _fetch_and_write(repo: Repository, target: _Target, chunk_id: str, offset: int, length: int) -> int:
    target.pwrite(_fetch(repo, chunk_id, length), offset)
    return length


def _check(repo: Repository, target: _Target, chunk_id: str, offset: int, length: int) -> bool:
    data = target.pread(length, offset)
    if len(data) != length:
        return False
    return chunk_id == ZERO if is_zero(data) else repo.keys.chunk_id(data) == chunk_id


def _run_window(
    pool: IoPool, jobs: Sequence[tuple[Callable[..., T], tuple[Any, ...]]], window: int, what: str
) -> Iterator[T]:
    """Run jobs on the pool at most ``window`` at a time; yields their results in order."""
    inflight: deque[Future[T]] = deque()
    try:
        for fn, args in jobs:
            inflight.append(pool.submit(fn, *args))
            if len(inflight) >= window:
                yield pool.wait(inflight.popleft(), what)
        while inflight:
            yield pool.wait(inflight.popleft(), what)
    finally:
        for future in inflight:
            future.cancel()


def read_volume(
    repo: Repository, pool: IoPool, volume: VolumeManifest, advance: Advance, *, window: int
) -> Iterator[bytes]:
    """The volume's bytes in order, chunk by chunk, each checked against its id, fetched
    ahead on the pool: for a restore that streams them somewhere other than a local file."""
    jobs = [(_fetch, (repo, chunk_id, length)) for _, _, length, chunk_id in volume.spans()]
    for data in _run_window(pool, jobs, window, f"reading {volume.label}"):
        advance(len(data))
        yield data


def write_volume(
    repo: Repository,
    pool: IoPool,
    volume: VolumeManifest,
    dest: Path,
    fmt: str,
    advance: Advance,
    *,
    window: int,
    base_timeout: float,
) -> int:
    """Restore one volume to ``dest`` in format ``fmt``; returns the bytes verified."""
    if fmt not in WRITABLE_FORMATS:
        raise ProviderError(f"cannot restore {volume.label} as {fmt!r}: not a disk format we write")
    pool.call(f"creating directory {dest.parent}", lambda: dest.parent.mkdir(parents=True, exist_ok=True))
    tmp_raw = dest.with_name(f".{dest.name}.nas-restore-{uuid.uuid4().hex[:12]}.raw")
    tmp_fmt = tmp_raw.with_suffix(f".{fmt}")
    made: list[Path] = []

    def create() -> int:
        fd = os.open(tmp_raw, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        made.append(tmp_raw)
        os.ftruncate(fd, volume.size)
        return fd

    target = _Target(pool.call(f"creating {tmp_raw}", create))
    try:
        spans = list(volume.spans())
        writes = [(_fetch_and_write, (repo, target, c, off, n)) for _, off, n, c in spans if c != ZERO]
        for _, _, n, c in spans:
            if c == ZERO:
                advance(n)
        for written in _run_window(pool, writes, window, f"restoring {volume.label} to {dest}"):
            advance(written)
        stored = sum(n for _, _, n, c in spans if c != ZERO)
        pool.call_within(paced_timeout(base_timeout, stored), f"syncing {tmp_raw}", os.fsync, target.fd)
        checks = [(_check, (repo, target, c, off, n)) for _, off, n, c in spans]
        bad = [
            spans[i][1]
            for i, ok in enumerate(_run_window(pool, checks, window, f"verifying {dest}"))
            if not ok
        ]
        if bad:
            raise ProviderError(
                f"restored {volume.label} does not match the restore point at {len(bad)} chunk(s), "
                f"first at byte {bad[0]}; {dest} was left untouched",
                retryable=True,
            )
        verified = sum(n for _, _, n, _ in spans)
        final = tmp_raw
        if fmt != "raw":
            made.append(tmp_fmt)
            _convert_verified(pool, tmp_raw, tmp_fmt, fmt, volume.size, base_timeout)
            final = tmp_fmt
        pool.call(f"replacing {dest}", _replace, final, dest)
        made.remove(final)
        return verified
    finally:
        target.close()
        for path in made:
            with contextlib.suppress(OSError):
                path.unlink()


def _convert_verified(pool: IoPool, raw: Path, out: Path, fmt: str, size: int, base_timeout: float) -> None:
    """Convert the verified raw file to ``fmt``, check the guest sees the same bytes, sync."""
    limit = paced_timeout(base_timeout, size)
    pool.call_within(
        limit + base_timeout, f"converting {raw} to {fmt}", qemu.convert, raw, "raw", out, fmt, limit
    )
    same = pool.call_within(
        limit + base_timeout, f"comparing {out}", qemu.identical, raw, "raw", out, fmt, limit
    )
    if not same:
        raise ProviderError(f"qemu-img wrote a {fmt} image that differs from the restore point")
    pool.call_within(limit, f"syncing {out}", _fsync_path, out)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(src: Path, dest: Path) -> None:
    """Rename ``src`` over ``dest``, keeping the mode and owner of the image it replaces."""
    try:
        old = dest.stat()
        os.chmod(src, old.st_mode & 0o7777)
        with contextlib.suppress(PermissionError):
            os.chown(src, old.st_uid, old.st_gid)
    except FileNotFoundError:
        os.chmod(src, 0o640)
    os.rename(src, dest)
    fsync_dir(dest.parent)


def restored_path(volume: VolumeRef, new_id: str, restore_dir: Path | None) -> Path:
    original = Path(volume.path)
    name = f"{original.stem}-restored-{new_id[:8]}{original.suffix}"
    return (restore_dir or original.parent) / name
