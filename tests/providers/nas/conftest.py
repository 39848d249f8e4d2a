"""Small real disk images and a NAS provider on a repository under tmp_path."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from providers.base import BackupRequest, BackupResult, RestorePointRef, VMRef, VolumeRef
from providers.nas import NasProvider

MiB = 2**20
CHUNK = 256 * 1024  # small chunks keep the images (and the suite) small


@pytest.fixture(scope="session", autouse=True)
def _qemu_img_installed() -> None:
    # No silent skips: the driver needs qemu-img, so do its tests.
    if shutil.which("qemu-img") is None:
        pytest.fail("qemu-img is required for the NAS driver tests (apt-get install qemu-utils)")


def sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def guest_bytes(path: Path | str, fmt: str, tmp: Path) -> bytes:
    """What the guest sees: the image converted to raw."""
    if fmt == "raw":
        return Path(path).read_bytes()
    out = tmp / f"guest-{os.urandom(4).hex()}.raw"
    subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), str(out)], check=True)
    try:
        return out.read_bytes()
    finally:
        out.unlink()


def make_raw(path: Path, size: int = 4 * MiB, seed: int = 1, *, sparse_tail: bool = True) -> Path:
    """A raw image with text, random data, explicit zeros and (optionally) a hole at the end."""
    rng = random.Random(seed)
    words = [
        bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(500)
    ]
    with open(path, "wb") as f:
        f.truncate(size)
        text = b" ".join(rng.choice(words) for _ in range(size // 16))[: size // 4]
        f.write(text)
        f.seek(size // 4)
        f.write(rng.randbytes(size // 4))
        f.write(bytes(size // 8))  # written zeros, not a hole
        if not sparse_tail:
            f.write(rng.randbytes(size - f.tell()))
    return path


def make_qcow2(path: Path, size: int = 4 * MiB, seed: int = 2, *, compressed: bool = False) -> Path:
    raw = path.with_suffix(".src.raw")
    make_raw(raw, size, seed)
    args = [
        "qemu-img",
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        *(["-c"] if compressed else []),
        str(raw),
        str(path),
    ]
    subprocess.run(args, check=True, capture_output=True)
    raw.unlink()
    return path


def overwrite(path: Path, offsets: list[int], length: int = 4096, seed: int = 9) -> None:
    rng = random.Random(seed)
    with open(path, "r+b") as f:
        for offset in offsets:
            f.seek(offset)
            f.write(rng.randbytes(length))


def volume(path: Path, device_id: int = 0, *, vid: str | None = None, fmt: str | None = None) -> VolumeRef:
    fmt = fmt or ("qcow2" if path.suffix == ".qcow2" else "raw")
    return VolumeRef(
        id=vid or f"vol-{device_id}",
        name=f"{'ROOT' if device_id == 0 else 'DATA'}-{device_id}",
        type="ROOT" if device_id == 0 else "DATADISK",
        device_id=device_id,
        size=path.stat().st_size,
        path=str(path),
        format=fmt,
        pool_id="pool-1",
    )


def vm_of(*volumes: VolumeRef, vm_id: str = "vm-1", state: str | None = None) -> VMRef:
    return VMRef(vm_id, f"vm-{vm_id}", "zone-1", "host-1", tuple(volumes), {"state": state} if state else {})


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))


def ignore(done: int, total: int) -> None:
    pass


def take(provider: NasProvider, vm: VMRef, point_id: str, parent: RestorePointRef | None = None):
    result = provider.take_backup(BackupRequest(point_id, vm, "nas-daily", parent=parent), ignore)
    return result, ref(point_id, result, vm)


def ref(point_id: str, result: BackupResult, vm: VMRef) -> RestorePointRef:
    return RestorePointRef(point_id, result.external_id, result.backup_type, vm)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def disks(tmp_path: Path) -> Path:
    path = tmp_path / "pool"
    path.mkdir()
    return path


@pytest.fixture
def nas(tmp_path: Path, repo: Path) -> Callable[..., NasProvider]:
    def make(**config: object) -> NasProvider:
        settings = {"repository": str(repo), "snapshot": "direct", "chunk_size": CHUNK, "io_timeout_s": 30}
        settings.update(config)
        return NasProvider("nas-test", settings, tmp_path / "data")

    return make


def stored_chunks(repo: Path) -> list[Path]:
    return [p for p in (repo / "chunks").glob("*/*") if not p.name.startswith(".tmp-")]


def repo_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "chunks").glob("*/*"))
