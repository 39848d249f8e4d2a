"""Cuts a disk image's guest-visible content into fixed-size, aligned chunks.

Why fixed-size: guest filesystems write in aligned 4 KiB blocks and a disk image never
shifts its content, so aligned chunks find every unchanged region of an incremental and
every shared region of a clone, at no CPU cost - content-defined chunking pays a rolling
hash over every byte to recover from insertions that disk images do not have (see the
README's measurements). The chunk size is fixed per repository (512 KiB by default).

Readers never write: raw images (and block devices) are opened read-only and read with
``pread``, skipping holes found with SEEK_DATA/SEEK_HOLE. qcow2 images are mapped with
``qemu-img map`` and their data clusters read straight from the image files (or their
backing files), unallocated and zero clusters are not read at all; images that cannot be
read that way (compressed clusters, external data files, encryption, other formats) are
first converted to a sparse raw file in the staging directory.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from orchestrator.domain.errors import ProviderError
from providers.nas import qemu


@cache
def zeros(length: int) -> bytes:
    return bytes(length)


def is_zero(data: bytes | bytearray) -> bool:
    return data == zeros(len(data))


class ImageReader(ABC):
    """Random access to a disk image's guest-visible bytes; safe to call from many threads."""

    size: int

    @property
    def state(self) -> Mapping[str, Any]:
        """What the source records about this read on the volume's manifest (e.g. a
        hypervisor's change id), handed back to it when the next backup of the volume opens
        its reader; read once the volume was read."""
        return MappingProxyType({})

    @abstractmethod
    def read(self, offset: int, length: int) -> bytes | bytearray | None:
        """The bytes at ``offset``, or None when they are known to be zeros (nothing read)."""

    def unchanged(self, offset: int, length: int) -> bool:
        """Whether the source knows these bytes did not change since the backup whose
        ``state`` it was opened with (changed-block tracking): they are then not read, the
        parent's chunk is kept."""
        return False

    def close(self) -> None:  # noqa: B027
        pass


def _pread_full(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            # A file shorter than its size: what is beyond the end reads as zeros.
            parts.append(zeros(length - got))
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _data_ranges(fd: int, size: int) -> list[tuple[int, int]]:
    """[start, end) ranges that may hold data; holes between them read as zeros."""
    ranges = []
    pos = 0
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # nothing but a hole after pos
                    break
                raise
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            ranges.append((start, end))
            pos = end
    except OSError:
        return [(0, size)]  # no hole detection here (some file systems): read everything
    return ranges


class RawReader(ImageReader):
    """A raw image file or block device, read in place."""

    def __init__(self, path: Path, *, remove_on_close: bool = False) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._remove = remove_on_close
        self.size = os.lseek(self.fd, 0, os.SEEK_END)
        with contextlib.suppress(OSError):
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        self._ranges = _data_ranges(self.fd, self.size)
        self._starts = [start for start, _ in self._ranges]

    def _may_hold_data(self, offset: int, length: int) -> bool:
        i = bisect.bisect_right(self._starts, offset + length - 1) - 1
        return i >= 0 and self._ranges[i][1] > offset

    def read(self, offset: int, length: int) -> bytes | None:
        if not self._may_hold_data(offset, length):
            return None
        return _pread_full(self.fd, length, offset)

    def close(self) -> None:
        os.close(self.fd)
        if self._remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


@dataclass(frozen=True)
class Piece:
    """A guest range: zeros, or ``length`` bytes at ``file_offset`` of file ``fd``."""

    start: int
    length: int
    fd: int | None
    file_offset: int


class MappedReader(ImageReader):
    """A qcow2 image read through its ``qemu-img map``: data straight from the files."""

    def __init__(self, size: int, pieces: list[Piece], fds: list[int]) -> None:
        self.size = size
        self._pieces = pieces
        self._starts = [p.start for p in pieces]
        self._fds = fds

    def read(self, offset: int, length: int) -> bytearray | None:
        end = offset + length
        i = max(0, bisect.bisect_right(self._starts, offset) - 1)
        buf: bytearray | None = None
        while i < len(self._pieces) and self._pieces[i].start < end:
            piece = self._pieces[i]
            i += 1
            lo, hi = max(offset, piece.start), min(end, piece.start + piece.length)
            if piece.fd is None or hi <= lo:
                continue
            if buf is None:
                buf = bytearray(length)
            data = _pread_full(piece.fd, hi - lo, piece.file_offset + (lo - piece.start))
            buf[lo - offset : hi - offset] = data
        return buf

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)


Mapped = list[tuple[int, int, int, int]]


def _map_pieces(path: str, fmt: str, timeout: float, files: list[str]) -> Mapped | None:
    """(start, length, depth or -1 for zeros, file offset) covering the image, or None when
    some data range has no plain file offset (compressed cluster, unknown layout)."""
    pieces = []
    pos = 0
    for extent in qemu.map_extents(path, fmt, timeout):
        start, length = int(extent["start"]), int(extent["length"])
        if start != pos:
            return None
        pos = start + length
        if extent.get("zero") or not extent.get("present"):
            pieces.append((start, length, -1, 0))
            continue
        depth = int(extent.get("depth", 0))
        plain = extent.get("data") and not extent.get("compressed") and "offset" in extent
        if not plain or depth >= len(files):
            return None
        pieces.append((start, length, depth, int(extent["offset"])))
    return pieces


def _mapped_reader(path: str, fmt: str, timeout: float) -> MappedReader | None:
    """A MappedReader when every data range maps to a plain file offset, else None."""
    chain = qemu.info_chain(path, fmt, timeout)
    files = [path]
    for layer in chain:
        if layer.get("format") not in ("qcow2", "raw") or layer.get("encrypted"):
            return None
        if "data-file" in (layer.get("format-specific") or {}).get("data", {}):
            return None
        if "full-backing-filename" in layer:
            files.append(layer["full-backing-filename"])
    size = int(chain[0]["virtual-size"])
    mapped = _map_pieces(path, fmt, timeout, files)
    if mapped is None or sum(length for _, length, _, _ in mapped) != size:
        return None
    fds: dict[int, int] = {}
    pieces = []
    try:
        for start, length, depth, offset in mapped:
            if depth < 0:
                pieces.append(Piece(start, length, None, 0))
                continue
            if depth not in fds:
                fds[depth] = os.open(files[depth], os.O_RDONLY | os.O_CLOEXEC)
            pieces.append(Piece(start, length, fds[depth], offset))
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return MappedReader(size, pieces, list(fds.values()))


@dataclass(frozen=True)
class NeedsConversion:
    """The image cannot be read in place: convert it first (``convert_image``)."""

    size: int


def open_image(path: str, fmt: str, timeout: float) -> ImageReader | NeedsConversion:
    """A reader of the image's guest-visible content (never writing to the image), or
    NeedsConversion. Each qemu-img call is bounded by ``timeout``."""
    try:
        os.stat(path)
        if fmt == "raw":
            return RawReader(Path(path))
        if fmt == "qcow2":
            mapped = _mapped_reader(path, fmt, timeout)
            if mapped is not None:
                return mapped
        return NeedsConversion(int(qemu.info_chain(path, fmt, timeout)[0]["virtual-size"]))
    except FileNotFoundError:
        raise ProviderError(f"disk image {path} does not exist", retryable=False) from None
    except PermissionError as exc:
        raise ProviderError(f"cannot read disk image {path}: {exc}", retryable=False) from None


def convert_image(path: str, fmt: str, staging: Path, timeout: float) -> RawReader:
    """The image converted to a sparse raw file in ``staging``, removed again on close."""
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"read-{uuid.uuid4().hex}.raw"
    try:
        qemu.convert(Path(path), fmt, tmp, "raw", timeout)
        return RawReader(tmp, remove_on_close=True)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
