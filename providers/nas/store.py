"""The repository on disk: its configuration, the chunk store and the manifest files.

Every method here does blocking file I/O; callers run them on an ``IoPool`` thread so a
hung mount fails the job instead of hanging the worker. Writes are crash-safe: a file is
written under a temporary name in its final directory, made durable, then renamed into
place, so a name that exists always holds a whole file. Chunks are made durable in one
batch per backup: staged under temporary names (each one's write-back started at once),
one ``syncfs``, then all renamed. A staged chunk is named ``.tmp-<chunk id>.<token>``, the
token of the writer's repository lock: a retry that finds its dead predecessor's lock
knows the names of the chunks it left and takes them over (after checking their content)
instead of writing them again; garbage collection removes the rest.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zstandard

from orchestrator.domain.errors import ProviderError
from providers.nas.config import NasConfig
from providers.nas.crypto import FLAG_ZSTD, Damaged, Keys, new_key_slot, open_key_slots

REPO_FORMAT = "nas-backup-repository"
REPO_VERSION = 1
TMP_PREFIX = ".tmp-"
CHUNK_DIRS = [f"{i:02x}" for i in range(256)]

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # zstandard objects are not thread-safe: one per thread and level.
    cache = _local.__dict__.setdefault("compressors", {})
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level)
    return cache[level]


def _decompressor() -> zstandard.ZstdDecompressor:
    if not hasattr(_local, "decompressor"):
        _local.decompressor = zstandard.ZstdDecompressor()
    return _local.decompressor


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)


class FileSystemSync:
    """``syncfs`` of the file system that holds a directory, through one handle kept open.

    Linux reports a write-back error to every handle opened before it, but to a handle
    opened later only while nobody has seen it yet (a concurrent backup's flush may have).
    Opened before the first chunk is staged, this one hears of every error of the early
    write-back (and of the kernel's own during a long backup).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)

    def sync(self) -> None:
        """Flush all data and metadata written to the file system so far."""
        syncfs_call = getattr(_libc, "syncfs", None)
        if syncfs_call is None:  # not Linux
            os.sync()
            return
        if syncfs_call(self._fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs of {self.path} failed: {os.strerror(err)}")

    def close(self) -> None:
        os.close(self._fd)


# sync_file_range(2): start writing back the given range, without waiting for it.
_SYNC_FILE_RANGE_WRITE = 2
_sync_file_range = getattr(_libc, "sync_file_range", None)
if _sync_file_range is not None:
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


def start_writeback(fd: int) -> None:
    """Start writing the file's dirty pages to storage now, while the backup computes the next
    chunks: the flush before naming them overlaps with nothing, so it should find little
    left to write. A hint only: errors and durability are the flush's business."""
    if _sync_file_range is not None:
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def write_file(path: Path | str, data: bytes, *, fsync: bool, writeback: bool = False) -> None:
    """Create ``path`` (which must not exist) with ``data``; removed again on failure."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
        elif writeback:
            start_writeback(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def write_atomic(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so that ``path`` never holds a partial file."""
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}")
    write_file(tmp, data, fsync=fsync)
    os.rename(tmp, path)


@dataclass(frozen=True)
class Staging:
    """Whose temporary chunk files a backup writes: its own lock's ``token``, and the tokens
    of dead writers whose files it may take over."""

    token: str
    adoptable: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Staged:
    """A chunk staged under a temporary name, to ``publish`` once flushed."""

    tmp: str
    size: int
    # Taken over from a dead writer: stored in the repository, but not written now.
    adopted: bool


@dataclass(frozen=True)
class StoredChunk:
    id: str
    path: Path
    size: int
    mtime: float


class Repository:
    """One repository directory (shared by every worker that mounts it)::

    config.json                  format, chunk size, encryption key slots
    chunks/<2 hex>/<64 hex>      one envelope per chunk, named by its id
    points/<id>.manifest         one envelope per restore point (the commit record)
    locks/<kind>-<uuid>.lock     backups (shared) and garbage collection (exclusive)
    """

    def __init__(self, root: Path, meta: dict[str, Any], keys: Keys, cfg: NasConfig) -> None:
        self.root = root
        self.meta = meta
        self.keys = keys
        self.chunk_size: int = meta["chunk_size"]
        self.compression_level = cfg.compression_level
        # A chunk gets its name only once its content is durable: on NFS a rename reaches
        # the server at once while data may not, and a name must never point at a partial
        # file that a later backup would deduplicate against. Off only for scratch use.
        self.fsync = cfg.fsync
        self.chunks_dir = root / "chunks"
        self._chunks_root = str(self.chunks_dir)
        self.points_dir = root / "points"
        self.locks_dir = root / "locks"
        self.writers_dir = root / "writers"

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, cfg: NasConfig, *, create: bool = True) -> Repository:
        """Open the repository, creating it on first use; checks the key before anything else."""
        root = cfg.repository
        where = f"repository {root}"
        config_path = root / "config.json"
        if not config_path.exists():
            if not create:
                raise ProviderError(f"{where} does not exist (no config.json)", retryable=False)
            _create(root, cfg)
        try:
            meta = json.loads(config_path.read_text())
        except (OSError, ValueError) as exc:
            raise ProviderError(f"{where}: cannot read config.json: {exc}", retryable=True) from None
        if meta.get("format") != REPO_FORMAT or meta.get("version") != REPO_VERSION:
            raise ProviderError(
                f"{where}: config.json is not a version {REPO_VERSION} NAS repository", retryable=False
            )
        if cfg.chunk_size_given and cfg.chunk_size != meta["chunk_size"]:
            raise ProviderError(
                f"{where}: chunk_size {cfg.chunk_size} in the configuration differs from the "
                f"repository's {meta['chunk_size']} (fixed when it was created); drop it or match it",
                retryable=False,
            )
        encryption = meta.get("encryption")
        if encryption and cfg.encryption is None:
            raise ProviderError(
                f"{where} is encrypted: configure encryption.passphrase or key_file", retryable=False
            )
        if not encryption and cfg.encryption is not None:
            raise ProviderError(
                f"{where} is not encrypted, but the configuration gives an encryption key", retryable=False
            )
        keys = Keys.plain()
        if encryption:
            assert cfg.encryption is not None
            master = open_key_slots(encryption["key_slots"], _secret(cfg, where), meta["id"], where)
            keys = Keys.from_master(master, encryption["cipher"])
        return cls(root, meta, keys, cfg)

    # -- chunks ------------------------------------------------------------------------------
    def chunk_path(self, chunk_id: str) -> Path:
        return Path(self._chunk_file(chunk_id))

    def _chunk_file(self, chunk_id: str) -> str:
        # Plain strings on the backup's hot path: building Path objects cost about 6 % of
        # a full backup's CPU time.
        return f"{self._chunks_root}/{chunk_id[:2]}/{chunk_id}"

    def has_chunk(self, chunk_id: str) -> bool:
        return os.path.exists(self._chunk_file(chunk_id))

    def encode_chunk(self, chunk_id: str, data: bytes | bytearray) -> bytes:
        payload, flags = data, 0
        if self.compression_level:
            packed = _compressor(self.compression_level).compress(data)
            if len(packed) < len(data):
                payload, flags = packed, FLAG_ZSTD
        return self.keys.seal(payload, len(data), flags, b"chunk:" + chunk_id.encode())

    def stage_chunk(self, chunk_id: str, data: bytes | bytearray, staging: Staging) -> Staged | None:
        """Stage the chunk under a temporary name unless the repository has it already (None):
        a dead writer's copy if one checks out, else a new one."""
        if self.has_chunk(chunk_id):
            return None
        tmp = self._tmp_file(chunk_id, staging.token)
        for token in staging.adoptable:
            size = self._adopt(chunk_id, self._tmp_file(chunk_id, token), tmp)
            if size is not None:
                return Staged(tmp, size, adopted=True)
        blob = self.encode_chunk(chunk_id, data)
        write_file(tmp, blob, fsync=False, writeback=self.fsync)
        return Staged(tmp, len(blob), adopted=False)

    def _tmp_file(self, chunk_id: str, token: str) -> str:
        return f"{self._chunks_root}/{chunk_id[:2]}/{TMP_PREFIX}{chunk_id}.{token}"

    def _adopt(self, chunk_id: str, theirs: str, ours: str) -> int | None:
        """Take a dead writer's staged chunk over (the rename makes it ours alone, should two
        retries want it); its size, or None if it is absent or not whole (then removed)."""
        try:
            os.rename(theirs, ours)
        except FileNotFoundError:
            return None
        try:
            with open(ours, "rb") as f:
                blob = f.read()
            self.decode_chunk(chunk_id, blob)
        except Damaged:
            # Cut short by the crash (or never flushed by a host that died).
            os.unlink(ours)
            return None
        return len(blob)

    def open_sync(self) -> FileSystemSync:
        """The handle to ``flush`` staged chunks through; open it before staging them."""
        return FileSystemSync(self.chunks_dir)

    def flush(self, sync: FileSystemSync) -> None:
        """Make everything written to the repository so far durable: one syncfs of its file
        system instead of an fsync per chunk (on NFS: the last writes and COMMIT)."""
        if self.fsync:
            sync.sync()

    def publish(self, tmp: str, chunk_id: str) -> None:
        """Give a staged (and flushed) chunk its name."""
        os.rename(tmp, self._chunk_file(chunk_id))

    def get_chunk(self, chunk_id: str) -> bytes:
        """The chunk's content, checked against its id; Damaged if missing or altered."""
        what = f"chunk {chunk_id}"
        try:
            blob = self.chunk_path(chunk_id).read_bytes()
        except FileNotFoundError:
            raise Damaged(f"{what} is missing") from None
        return self.decode_chunk(chunk_id, blob)

    def decode_chunk(self, chunk_id: str, blob: bytes) -> bytes:
        what = f"chunk {chunk_id}"
        payload, size, flags = self.keys.open(blob, b"chunk:" + chunk_id.encode(), what)
        data = payload
        if flags & FLAG_ZSTD:
            try:
                data = _decompressor().decompress(payload, max_output_size=size)
            except zstandard.ZstdError as exc:
                raise Damaged(f"{what} does not decompress: {exc}") from None
        if len(data) != size or self.keys.chunk_id(data) != chunk_id:
            raise Damaged(f"{what} does not match its id (content altered)")
        return data

    def iter_chunk_dir(self, prefix: str) -> Iterator[StoredChunk | Path]:
        """Chunks of one of the 256 chunk directories, and temporary files (as bare paths)."""
        with os.scandir(self.chunks_dir / prefix) as entries:
            for entry in entries:
                if entry.name.startswith(TMP_PREFIX):
                    yield Path(entry.path)
                    continue
                stat = entry.stat()
                yield StoredChunk(entry.name, Path(entry.path), stat.st_size, stat.st_mtime)

    # -- manifests ---------------------------------------------------------------------------
    def manifest_path(self, point_id: str) -> Path:
        return self.points_dir / f"{point_id}.manifest"

    def write_manifest(self, point_id: str, document: dict[str, Any]) -> int:
        raw = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        packed = _compressor(3).compress(raw)
        blob = self.keys.seal(packed, len(raw), FLAG_ZSTD, b"manifest:" + point_id.encode())
        write_atomic(self.manifest_path(point_id), blob, fsync=self.fsync)
        if self.fsync:
            fsync_dir(self.points_dir)
        return len(blob)

    def read_manifest(self, point_id: str) -> dict[str, Any] | None:
        """The manifest's document, None if the restore point does not exist."""
        what = f"manifest of restore point {point_id}"
        try:
            blob = self.manifest_path(point_id).read_bytes()
        except FileNotFoundError:
            return None
        payload, size, flags = self.keys.open(blob, b"manifest:" + point_id.encode(), what)
        try:
            raw = _decompressor().decompress(payload, max_output_size=size) if flags & FLAG_ZSTD else payload
            return json.loads(raw)
        except (zstandard.ZstdError, ValueError) as exc:
            raise Damaged(f"{what} is unreadable: {exc}") from None

    def list_points(self) -> list[str]:
        return sorted(
            name.removesuffix(".manifest")
            for name in os.listdir(self.points_dir)
            if name.endswith(".manifest") and not name.startswith(TMP_PREFIX)
        )

    # -- writers ---------------------------------------------------------------------------
    # The newest attempt that started writing each restore point (a fencing token, plain
    # text: it holds no data), so an older attempt that wakes up late commits nothing.
    # Read, compare and write without a lock: only attempts of one job race here, and the
    # older one started long before the newer, when the job was handed over.
    def newest_writer(self, point_id: str) -> int:
        try:
            return int((self.writers_dir / point_id).read_text())
        except FileNotFoundError:
            return 0

    def start_writing(self, point_id: str, attempt: int) -> None:
        if self.newest_writer(point_id) < attempt:
            self.writers_dir.mkdir(exist_ok=True)
            write_atomic(self.writers_dir / point_id, str(attempt).encode(), fsync=self.fsync)

    def delete_manifest(self, point_id: str) -> bool:
        try:
            self.manifest_path(point_id).unlink()
        except FileNotFoundError:
            return False
        if self.fsync:
            fsync_dir(self.points_dir)
        return True


def _secret(cfg: NasConfig, where: str) -> bytes:
    assert cfg.encryption is not None
    try:
        secret = cfg.encryption.secret()
    except OSError as exc:
        raise ProviderError(f"{where}: cannot read encryption key file: {exc}", retryable=False) from None
    if len(secret) < 8:
        raise ProviderError(f"{where}: the encryption key file holds under 8 bytes", retryable=False)
    return secret


def _create(root: Path, cfg: NasConfig) -> None:
    """Lay out a new repository. Two workers racing here end with one config (link is atomic)."""
    where = f"repository {root}"
    if not root.parent.is_dir():
        raise ProviderError(f"{where}: parent directory {root.parent} does not exist (mount missing?)")
    root.mkdir(exist_ok=True)
    ours = {"config.json", "points", "locks", "chunks"}
    foreign = any(p.name not in ours and not p.name.startswith(TMP_PREFIX) for p in root.iterdir())
    if foreign and not (root / "config.json").exists():
        raise ProviderError(
            f"{where} is not empty and holds no repository; refusing to use it", retryable=False
        )
    for sub in ("points", "locks", "chunks"):
        (root / sub).mkdir(exist_ok=True)
    for prefix in CHUNK_DIRS:
        (root / "chunks" / prefix).mkdir(exist_ok=True)
    repo_id = uuid.uuid4().hex
    meta: dict[str, Any] = {
        "format": REPO_FORMAT,
        "version": REPO_VERSION,
        "id": repo_id,
        "created_at": datetime.now(UTC).isoformat(),
        "chunk_size": cfg.chunk_size,
        "chunk_id": "blake3-keyed" if cfg.encryption else "blake3",
        "compression": "zstd",
        "encryption": None,
    }
    if cfg.encryption is not None:
        slot, _ = new_key_slot(_secret(cfg, where), repo_id, cfg.encryption.cipher)
        meta["encryption"] = {"cipher": cfg.encryption.cipher, "key_slots": [slot]}
    tmp = root / f"{TMP_PREFIX}config-{uuid.uuid4().hex}"
    write_atomic(tmp, json.dumps(meta, indent=1).encode())
    try:
        os.link(tmp, root / "config.json")
    except FileExistsError:
        pass  # another worker created it first: use theirs
    finally:
        tmp.unlink()
    fsync_dir(root)
