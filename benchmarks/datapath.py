"""The NAS driver's data path against restic, borg and plain cp, on the same disk images.

Builds two raw disk images with realistic content (text and binaries taken from this
machine, each region scrambled so regions do not deduplicate against each other; random
regions; written zeros; holes), then, in each round and for each tool:

  startup      the tool's no-op (ours: ``list``, ``restic snapshots``, ``borg list``)
  full         back up both images into an empty repository
  incremental  change 2 % of the images' 64 KiB blocks (qcow2's cluster size; spread at
               random) and back them up again
  restore      restore the incremental restore point to new files, checked byte for byte
               against the changed images

and once per tool at the end, for sizes only: 10 clones of one template image (each with
16 random blocks per GiB written of its own) into a fresh repository, and the template
alone into another ("10 clones ÷ one image").

Every tool runs as a process per operation through its own command line, as its user
would run it, timed by the same clock (ours: ``python -m providers.nas``; its start-up,
imports and key derivation are inside the clock as restic's and borg's are). Each round
measures every tool's no-op too, and the ratios are given with start-up included and with
each operation's time less that round's no-op of the same tool.

Fairness:
- restic always encrypts: it is compared with our encrypted run (``this_encrypted``); our
  unencrypted run is its own row, compared with borg (``--encryption none``) and cp.
- borg is set up as a user backing up disk images would: fixed 512 KiB chunks (ours too),
  ``--sparse`` on create and extract, zstd level 1 (ours too). restic gets its best
  settings for this data (``--restic-flags``; compression and pack size were compared with
  this script, see providers/nas/README.md). ``baselines`` in the JSON names every flag.
- Clones are measured once, for sizes only, and not for our encrypted run (it deduplicates
  the same chunks).
- The order of the tools rotates round by round (``order``); every timed phase starts
  after a ``sync`` with the page cache dropped (as root) or, where that is not permitted,
  with every input of the phase read once (``cache``).
- Every tool writes durably: ours syncs the repository's file system before naming new
  chunks, restic fsyncs its files, borg its segments, cp is followed by ``sync FILE...``.
  Ours fsyncs restored files too; restic's and borg's restores and cp are followed by
  ``sync FILE...`` inside the clock, so every restore ends with the same guarantee.
- Figures are the min, median and max over ``--rounds`` rounds (at least 3); a ratio is
  taken within each round (the tools of one round meet the same load) and then summarised.

Throughput is guest bytes per second (MB = 10^6 bytes). ``--quick --json`` stays well
within the smoke test's two minutes and prints one JSON object last (the human-readable
lines, a Markdown table, go to stderr then).

    .venv/bin/python benchmarks/datapath.py --quick --json
    .venv/bin/python benchmarks/datapath.py                  # 2 x 4 GiB images
    .venv/bin/python benchmarks/datapath.py --chunk-sizes 256K,512K,1M   # ours only
    .venv/bin/python benchmarks/datapath.py --quick --profile --compression-levels 1,-1,0
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import random
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import zstandard

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# benchmarks/queue.py shares its name with the standard library's ``queue``, and Python puts a
# script's directory first on the path: keep it off, so ``import queue`` finds the real one.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from providers.nas.chunker import NeedsConversion, is_zero, open_image  # noqa: E402
from providers.nas.config import parse_config  # noqa: E402
from providers.nas.crypto import FLAG_ZSTD  # noqa: E402
from providers.nas.store import TMP_PREFIX, Repository, write_file  # noqa: E402

KiB, MiB, GiB = 2**10, 2**20, 2**30
MB = 1e6
BLOCK = 64 * KiB
CHANGED = 0.02  # of the blocks, between the full and the incremental
MIN_ROUNDS = 3
TOOLS = ("this", "this_encrypted", "restic", "borg", "cp")
PHASES = ("full", "incremental", "restore")
PASSPHRASE = "benchmark passphrase"  # noqa: S105 - a throw-away repository's
PASSPHRASE_VAR = "NAS_BENCH_PASSPHRASE"  # noqa: S105 - the name of a variable

# restic 0.14: "auto" compression (zstd's fastest level) against "max" and pack sizes of
# 16 (default), 64 and 128 MiB were compared on these images with --restic-flags; the
# README gives the figures. auto with 64 MiB packs was the fastest (one pack per 64 MiB
# written means fewer files to create and sync).
RESTIC_FLAGS = ("--compression", "auto", "--pack-size", "64")
# borg 1.2 for disk images: fixed-size chunks (as ours, 512 KiB; content-defined chunking
# finds nothing to gain on aligned block writes), holes detected on create and made on
# extract, zstd level 1 (as ours). No encryption: it is compared with our unencrypted run.
BORG_INIT = ("--encryption", "none")
BORG_CREATE = ("--chunker-params", "fixed,524288", "--sparse", "--compression", "zstd,1")
BORG_EXTRACT = ("--sparse",)
# cp: keep the holes it finds, never clone (a reflink copy is not a backup).
CP_FLAGS = ("--sparse=auto", "--reflink=never")


# -- images ----------------------------------------------------------------------------------
def _pool(patterns: list[str], limit: int) -> bytes:
    """Real file content from this machine (binaries or text), up to ``limit`` bytes."""
    parts, size = [], 0
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            try:
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                data = Path(path).read_bytes()
            except OSError:
                continue
            parts.append(data)
            size += len(data)
            if size >= limit:
                return b"".join(parts)[:limit]
    data = b"".join(parts)
    while len(data) < limit:  # a small machine: repeat what there is
        data += data or os.urandom(limit)
    return data[:limit]


class Content:
    """Region generator: each region is a slice of a pool XORed with its own byte, which
    keeps its compressibility but makes it unlike every other region."""

    def __init__(self, pool_size: int) -> None:
        self.binaries = _pool(BINARIES, pool_size)
        self.text = _pool(TEXTS, pool_size)
        self.tables = [bytes(b ^ k for b in range(256)) for k in range(256)]

    def region(self, kind: str, size: int, rng: random.Random) -> bytes | None:
        if kind == "hole":
            return None
        if kind == "zeros":
            return bytes(size)
        if kind == "random":
            return rng.randbytes(size)
        pool = self.binaries if kind == "binary" else self.text
        start = rng.randrange(0, len(pool) - size) if len(pool) > size else 0
        piece = pool[start : start + size]
        return piece.translate(self.tables[rng.randrange(1, 256)]).ljust(size, b"\0")


BINARIES = ["/usr/lib/x86_64-linux-gnu/*.so*", "/usr/bin/*", "/usr/lib/**/*.so"]
TEXTS = ["/usr/share/doc/**/copyright", "/usr/share/common-licenses/*", "/usr/share/perl/**/*.pm"]
MIX = [("text", 25), ("binary", 25), ("random", 15), ("zeros", 15), ("hole", 20)]


def build_image(path: Path, size: int, seed: int, content: Content) -> None:
    rng = random.Random(seed)
    kinds = [k for k, weight in MIX for _ in range(weight)]
    with open(path, "wb") as f:
        f.truncate(size)
        pos = 0
        while pos < size:
            length = min(size - pos, rng.choice((1, 2, 4, 8)) * MiB)
            data = content.region(rng.choice(kinds), length, rng)
            if data is not None:
                f.seek(pos)
                f.write(data)
            pos += length


def build_clones(template: Path, count: int) -> list[Path]:
    """Copies of the template, each with writes of its own (hostname, keys, logs): 16
    blocks (1 MiB) per GiB."""
    size = template.stat().st_size
    writes = max(1, 16 * size // GiB)
    clones = []
    for i in range(count):
        clone = template.with_name(f"clone-{i}.raw")
        # Holes stay holes, as in a clone made by qemu-img or cp from its template.
        run("cp", "--sparse=always", "--reflink=never", template, clone)
        rng = random.Random(1000 + i)
        with open(clone, "r+b") as f:
            for _ in range(writes):
                f.seek(rng.randrange(size // BLOCK) * BLOCK)
                f.write(rng.randbytes(BLOCK))
        clones.append(clone)
    return clones


def change_blocks(path: Path, fraction: float, seed: int) -> list[tuple[int, bytes]]:
    """Overwrite ``fraction`` of the image's 64 KiB blocks with new data (half random, a
    quarter zeros, a quarter log lines); returns what to write back to undo it."""
    size = path.stat().st_size
    rng = random.Random(seed)
    blocks = rng.sample(range(size // BLOCK), max(1, int(size // BLOCK * fraction)))
    undo = []
    with open(path, "r+b") as f:
        for block in blocks:
            f.seek(block * BLOCK)
            undo.append((block * BLOCK, f.read(BLOCK)))
            f.seek(block * BLOCK)
            logs = (b"log line\n" * (BLOCK // 4 // 9 + 1))[: BLOCK // 4]
            f.write(rng.randbytes(BLOCK // 2) + bytes(BLOCK // 4) + logs)
    return undo


def undo_changes(path: Path, undo: list[tuple[int, bytes]]) -> None:
    with open(path, "r+b") as f:
        for offset, data in undo:
            f.seek(offset)
            f.write(data)


def change_all(images: list[Path]) -> list[list[tuple[int, bytes]]]:
    # The same seeds every time: every tool and round backs up the same change.
    return [change_blocks(image, CHANGED, seed=100 + i) for i, image in enumerate(images)]


def undo_all(images: list[Path], undo: list[list[tuple[int, bytes]]]) -> None:
    for image, changes in zip(images, undo, strict=False):
        undo_changes(image, changes)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def du(path: Path) -> int:
    """Bytes allocated on disk under ``path``."""
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def files_under(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (p for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink())


# -- the same clock and the same cache for every tool ----------------------------------------
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


class Cache:
    """Puts the page cache in the same state before every timed phase of every tool.

    ``drop`` (root, where the kernel lets us): everything is read from the disk, as in a
    nightly backup of images nobody read since. ``warm``: every input of the phase (the
    images, or the repository to restore from) is read once, so every tool finds it cached
    (and its own start-up files too, having run in the previous phase)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    @staticmethod
    def detect() -> str:
        if os.geteuid() != 0 or not os.access(DROP_CACHES, os.W_OK):
            return "warm"
        try:
            os.sync()
            DROP_CACHES.write_text("3\n")
        except OSError:  # read-only /proc/sys in a container
            return "warm"
        return "drop"

    def prepare(self, inputs: Iterable[Path]) -> None:
        # Without it the previous phase's dirty pages would still be written during this one.
        os.sync()
        if self.mode == "drop":
            DROP_CACHES.write_text("3\n")
            return
        for path in files_under(inputs):
            with open(path, "rb") as f:
                while f.read(4 * MiB):
                    pass


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def phase(cache: Cache, inputs: Iterable[Path], fn: Callable[[], object]) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of the processes it ran) of one operation."""
    cache.prepare(inputs)
    cpu = children_cpu_s()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, children_cpu_s() - cpu


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(  # noqa: S603 - fixed argument lists, no shell
        [str(a) for a in args], check=False, capture_output=True, text=True, env=env, cwd=cwd
    )
    if done.returncode != 0:
        command = shlex.join(str(a) for a in args)
        sys.exit(f"{command} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def version_of(*command: str) -> str:
    return run(*command).splitlines()[0].strip()


def synced(paths: list[Path]) -> list[Path]:
    """fsync(2) of each file (``sync FILE...``), inside the clock: ours makes its restored
    files durable before it reports success, restic and borg do not, nor does cp."""
    run("sync", *paths)
    return paths


# -- the tools -------------------------------------------------------------------------------
class Tool(ABC):
    """One compared program in one fresh directory: ``repo`` is what it writes."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.repo = work / "repo"
        work.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def noop(self) -> None:
        """The cheapest command that opens the repository: start-up and key derivation."""

    @abstractmethod
    def backup(self, images: list[Path]) -> None: ...

    @abstractmethod
    def restore(self, images: list[Path], target: Path) -> list[Path]:
        """Restore the newest backup into ``target``; the restored files, as ``images``."""

    @abstractmethod
    def backup_vms(self, images: list[Path]) -> None:
        """Back up each image as a VM of its own (the clones), as this tool's user would."""


class This(Tool):
    """Ours, through its command line: ``python -m providers.nas``."""

    def __init__(self, work: Path, *, encrypted: bool = False, chunk_size: int | None = None) -> None:
        super().__init__(work)
        # Images read in place, as restic and borg read them.
        config: dict[str, Any] = {"repository": str(self.repo), "snapshot": "direct"}
        if chunk_size:
            config["chunk_size"] = chunk_size
        self.config = work / "nas.json"
        self.config.write_text(json.dumps(config))
        self.secret = ["--passphrase-env", PASSPHRASE_VAR] if encrypted else []
        self.env = {**os.environ, PASSPHRASE_VAR: PASSPHRASE}
        self.points = 0
        # Like ``restic init`` and ``borg init``: outside the clock.
        self.cli("init")

    def cli(self, *args: str | Path) -> None:
        command: list[str | Path] = [sys.executable, "-m", "providers.nas", "--config", self.config]
        command += self.secret
        run(*command, *args, env=self.env, cwd=ROOT)

    def noop(self) -> None:
        self.cli("list")

    def backup(self, images: list[Path]) -> None:
        self.points += 1
        self.cli("backup", "--vm", "vm-1", "--point", f"rp-{self.points}", *images)

    def restore(self, images: list[Path], target: Path) -> list[Path]:
        targets = [target / p.name for p in images]
        self.cli("restore", f"rp-{self.points}", *targets)
        return targets

    def backup_vms(self, images: list[Path]) -> None:
        for i, image in enumerate(images):
            self.cli("backup", "--vm", f"vm-{i}", image)


class Restic(Tool):
    def __init__(self, work: Path, template: Path, flags: list[str]) -> None:
        super().__init__(work)
        self.flags = flags
        self.env = {**os.environ, "RESTIC_PASSWORD": PASSPHRASE, "RESTIC_CACHE_DIR": str(work / "cache")}
        # restic calibrates its key derivation at init (seconds): every repository is a
        # copy of one initialised once, so all rounds pay the same key derivation.
        shutil.copytree(template, self.repo)

    @staticmethod
    def init_template(path: Path) -> None:
        env = {**os.environ, "RESTIC_PASSWORD": PASSPHRASE}
        # Version 2 is the format with compression.
        run("restic", "init", "--repository-version", "2", "-r", path, env=env)

    def restic(self, *args: str | Path) -> None:
        run("restic", "-r", self.repo, *args, env=self.env)

    def noop(self) -> None:
        self.restic("snapshots")

    def backup(self, images: list[Path]) -> None:
        self.restic(*self.flags, "backup", "--quiet", *images)

    def restore(self, images: list[Path], target: Path) -> list[Path]:
        self.restic("restore", "latest", "--target", target)
        return synced([target / str(p).lstrip("/") for p in images])

    def backup_vms(self, images: list[Path]) -> None:
        # One snapshot of all of them: the same chunks as one per VM, without the start-ups.
        self.backup(images)


class Borg(Tool):
    def __init__(self, work: Path, create_flags: list[str]) -> None:
        super().__init__(work)
        self.create_flags = create_flags
        self.env = {
            **os.environ,
            "BORG_BASE_DIR": str(work / "base"),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }
        self.archives = 0
        run("borg", "init", *BORG_INIT, self.repo, env=self.env)

    def noop(self) -> None:
        run("borg", "list", self.repo, env=self.env)

    def backup(self, images: list[Path]) -> None:
        self.archives += 1
        run("borg", "create", *self.create_flags, f"{self.repo}::a{self.archives}", *images, env=self.env)

    def restore(self, images: list[Path], target: Path) -> list[Path]:
        run("borg", "extract", *BORG_EXTRACT, f"{self.repo}::a{self.archives}", env=self.env, cwd=target)
        return synced([target / str(p).lstrip("/") for p in images])

    def backup_vms(self, images: list[Path]) -> None:
        self.backup(images)


class Copy(Tool):
    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.repo.mkdir(parents=True)
        self.copies = 0

    @staticmethod
    def copy(images: list[Path], target: Path) -> list[Path]:
        target.mkdir(parents=True, exist_ok=True)
        run("cp", *CP_FLAGS, *images, target)
        return synced([target / p.name for p in images])

    def noop(self) -> None:
        run("cp", "--version")

    def backup(self, images: list[Path]) -> None:
        self.copies += 1
        self.copy(images, self.repo / str(self.copies))

    def restore(self, images: list[Path], target: Path) -> list[Path]:
        return self.copy([self.repo / str(self.copies) / p.name for p in images], target)

    def backup_vms(self, images: list[Path]) -> None:
        self.copy(images, self.repo / "vms")


Maker = Callable[[Path], Tool]


# -- the run ---------------------------------------------------------------------------------
def rotations(names: list[str], rounds: int) -> list[list[str]]:
    """Round i starts with the i-th tool: each one meets each position (and its neighbours)
    in turn, rather than always following the same tool."""
    return [names[i % len(names) :] + names[: i % len(names)] for i in range(rounds)]


def one_round(tool: Tool, images: list[Path], cache: Cache, expected: list[str]) -> dict[str, Any]:
    """No-op, full backup, 2 % changed, incremental, restore: one fresh repository."""
    out: dict[str, Any] = {}
    out["startup_s"], out["startup_cpu_s"] = phase(cache, [], tool.noop)
    out["full_s"], out["full_cpu_s"] = phase(cache, images, lambda: tool.backup(images))
    out["full_repo_bytes"] = du(tool.repo)
    undo = change_all(images)
    try:
        out["incremental_s"], out["incremental_cpu_s"] = phase(cache, images, lambda: tool.backup(images))
        out["incremental_added_bytes"] = du(tool.repo) - out["full_repo_bytes"]
        target = tool.work / "restored"
        target.mkdir()
        restored: list[Path] = []
        out["restore_s"], out["restore_cpu_s"] = phase(
            cache, [tool.repo], lambda: restored.extend(tool.restore(images, target))
        )
        out["restore_byte_exact"] = [sha256(p) for p in restored] == expected
        shutil.rmtree(target)
    finally:
        undo_all(images, undo)
    return out


def with_rates(sample: dict[str, Any], total: int) -> dict[str, Any]:
    """Adds MB/s per phase, with start-up included and with this round's no-op subtracted
    (None when the no-op took as long as the operation: nothing left to measure)."""
    for name in PHASES:
        seconds = sample[f"{name}_s"]
        sample[f"{name}_mb_s"] = total / seconds / MB
        net = seconds - sample["startup_s"]
        sample[f"{name}_mb_s_startup_subtracted"] = total / net / MB if net > 0 else None
    return sample


def spread(values: Iterable[float | None], digits: int = 3) -> dict[str, float | None]:
    known = [v for v in values if v is not None]
    if not known:
        return {"min": None, "median": None, "max": None}
    return {
        "min": round(min(known), digits),
        "median": round(statistics.median(known), digits),
        "max": round(max(known), digits),
    }


def measure(
    makers: dict[str, Maker], images: list[Path], root: Path, rounds: int, cache: Cache
) -> tuple[dict[str, list[dict[str, Any]]], list[list[str]]]:
    """Every tool once per round, in an order that rotates; a fresh repository each time."""
    total = sum(p.stat().st_size for p in images)
    undo = change_all(images)
    expected = [sha256(p) for p in images]
    undo_all(images, undo)
    order = rotations(list(makers), rounds)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in makers}
    for i, names in enumerate(order):
        for name in names:
            work = root / name / f"round-{i}"
            work.mkdir(parents=True)
            sample = one_round(makers[name](work), images, cache, expected)
            runs[name].append(with_rates(sample, total))
            shutil.rmtree(work)
        log(f"round {i + 1}/{rounds} done ({', '.join(names)})")
    return runs, order


def clone_sizes(make: Maker, clones: list[Path], template: Path, root: Path) -> dict[str, Any]:
    """Sizes only (no clock): 10 clones in one repository, the template alone in another."""
    many, one = make(root / "clones"), make(root / "one-image")
    many.backup_vms(clones)
    one.backup_vms([template])
    out: dict[str, Any] = {"clones_repo_bytes": du(many.repo), "one_image_bytes": du(one.repo)}
    out["clones_vs_one_image"] = round(out["clones_repo_bytes"] / out["one_image_bytes"], 3)
    shutil.rmtree(root)
    return out


FIGURES = (
    *(f"{p}_{k}" for p in PHASES for k in ("mb_s", "mb_s_startup_subtracted", "s", "cpu_s")),
    "startup_s",
    "startup_cpu_s",
    "full_repo_bytes",
    "incremental_added_bytes",
)
PAIRS = (  # (ratio name, ours, theirs): who is compared with whom
    ("vs_restic_encrypted", "this_encrypted", "restic"),
    ("vs_borg", "this", "borg"),
    ("vs_cp", "this", "cp"),
)


def summarize_tool(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in FIGURES:
        digits = 0 if key.endswith("bytes") else 3 if key.endswith("_s") else 1
        out[key] = spread((s[key] for s in samples), digits)
    out["restore_byte_exact"] = all(s["restore_byte_exact"] for s in samples)
    return out


def ratios_of(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Ours ÷ theirs in MB/s, taken within each round, then min/median/max over rounds."""
    ratios: dict[str, Any] = {}
    for suffix, ours, theirs in PAIRS:
        if ours not in runs or theirs not in runs:
            continue
        pairs = list(zip(runs[ours], runs[theirs], strict=True))
        for name in PHASES:
            for kind in ("", "_startup_subtracted"):
                key = f"{name}_mb_s{kind}"
                values = [a[key] / b[key] if a[key] and b[key] else None for a, b in pairs]
                ratios[f"{name}_{suffix}{kind}"] = spread(values, 2)
    return ratios


def baselines(makers: dict[str, Maker], restic_flags: list[str], borg_create: list[str]) -> dict[str, Any]:
    described: dict[str, Any] = {}
    ours: dict[str, Any] = {
        "version": f"{version_of('git', '-C', str(ROOT), 'describe', '--always', '--dirty')} "
        f"(Python {sys.version.split()[0]})",
        "command": " ".join(["python", "-m", "providers.nas", "--config", "nas.json"]),
        "flags": {
            "backup": ["--vm", "vm-1", "IMAGE..."],
            "restore": ["POINT", "TARGET..."],
            "noop": ["list"],
        },
    }
    for name in makers:
        if name == "this":
            settings = "zstd level 1, 512 KiB chunks, no encryption, snapshot: direct"
            described[name] = {**ours, "settings": settings}
        elif name == "this_encrypted":
            described[name] = {
                **ours,
                "command": ours["command"] + f" --passphrase-env {PASSPHRASE_VAR}",
                "settings": "zstd level 1, 512 KiB chunks, AES-256-GCM, scrypt key slot, snapshot: direct",
            }
        elif name.startswith("this@"):
            described[name] = {**ours, "settings": f"chunk size {name[5:]}"}
        elif name == "restic":
            described[name] = {
                "version": version_of("restic", "version"),
                "flags": {
                    "init": ["--repository-version", "2"],
                    "backup": [*restic_flags, "backup"],
                    "restore": ["restore", "latest"],
                    "noop": ["snapshots"],
                },
                "settings": "always encrypted (AES-256-CTR + Poly1305, scrypt)",
            }
        elif name == "borg":
            described[name] = {
                "version": version_of("borg", "--version"),
                "flags": {
                    "init": list(BORG_INIT),
                    "create": list(borg_create),
                    "extract": list(BORG_EXTRACT),
                    "noop": ["list"],
                },
            }
        elif name == "cp":
            described[name] = {
                "version": version_of("cp", "--version"),
                "flags": {"copy": list(CP_FLAGS), "then": ["sync", "FILE..."], "noop": ["--version"]},
            }
    return described


def summarize(
    runs: dict[str, list[dict[str, Any]]],
    clones: dict[str, dict[str, Any]],
    order: list[list[str]],
    described: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "rounds": len(order),
        "order": order,
        "baselines": described,
        "params": params,
        "cache": params["cache"],
    }
    for name, samples in runs.items():
        summary[name] = {**summarize_tool(samples), **clones.get(name, {})}
    summary["startup_s"] = {name: summary[name]["startup_s"] for name in runs}
    if "borg" in described:
        summary["borg"]["flags"] = described["borg"]["flags"]
    ratios = ratios_of(runs)
    if "this" in clones:
        ratios["clones_vs_one_image"] = clones["this"]["clones_vs_one_image"]
    summary["ratios"] = ratios
    if "this" in runs:
        summary["targets_met"] = targets(summary)
    return summary


TARGETS = (  # (name, ratio, at least): judged only where both tools ran
    ("full >= 1.0x restic", "full_vs_restic_encrypted", 1.0),
    ("incremental >= 3x restic", "incremental_vs_restic_encrypted", 3.0),
    ("full >= 0.8x cp", "full_vs_cp", 0.8),
)


def targets(summary: dict[str, Any]) -> dict[str, bool]:
    """The product's targets, judged on the medians with start-up included (what a user sees)."""
    ratios = summary["ratios"]
    met = {name: (ratios[key]["median"] or 0.0) >= least for name, key, least in TARGETS if key in ratios}
    met["restore byte-exact"] = all(
        summary[name]["restore_byte_exact"] for name in ("this", "this_encrypted") if name in summary
    )
    if "clones_vs_one_image" in ratios:
        met["10 clones <= 1.2x one image"] = ratios["clones_vs_one_image"] <= 1.2
    return met


# -- per-stage CPU time (--profile) ----------------------------------------------------------
STAGES = (
    "pread of the source",
    "zero check",
    "BLAKE3 chunk id",
    "dedup stat",
    "zstd",
    "seal (checksum or AEAD)",
    "chunk files: create, write, start the write-back",
    "flush and name the chunks",
)


def profile_once(images: list[Path], repo_dir: Path, level: int, cache: Cache) -> dict[str, Any]:
    """One full backup's steps, one chunk after another on this thread, each step timed in
    CPU time (``time.thread_time``): the backup pipeline's work without its threads. It
    calls the repository's own functions in the order Repository.stage_chunk and
    backup.publish do, split so that each step has a clock of its own."""
    repo = Repository.open(parse_config({"repository": str(repo_dir), "compression_level": level}))
    compressor = zstandard.ZstdCompressor(level=level) if level else None
    spent = dict.fromkeys(STAGES, 0)
    known: set[str] = set()
    staged: list[tuple[str, str]] = []
    cache.prepare(images)

    def step(stage: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.thread_time_ns()
        result = fn(*args, **kwargs)
        spent[stage] += time.thread_time_ns() - start
        return result

    for image in images:
        reader = open_image(str(image), "raw", 60)
        assert not isinstance(reader, NeedsConversion)
        for offset in range(0, reader.size, repo.chunk_size):
            data = step(STAGES[0], reader.read, offset, min(repo.chunk_size, reader.size - offset))
            if data is None or step(STAGES[1], is_zero, data):
                continue
            chunk_id = step(STAGES[2], repo.keys.chunk_id, data)
            if chunk_id in known or step(STAGES[3], repo.has_chunk, chunk_id):
                continue
            known.add(chunk_id)
            payload, flags = data, 0
            if compressor is not None:
                packed = step(STAGES[4], compressor.compress, data)
                if len(packed) < len(data):
                    payload, flags = packed, FLAG_ZSTD
            blob = step(STAGES[5], repo.keys.seal, payload, len(data), flags, b"chunk:" + chunk_id.encode())
            tmp = str(repo.chunk_path(chunk_id).with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}"))
            step(STAGES[6], write_file, tmp, blob, fsync=False, writeback=True)
            staged.append((tmp, chunk_id))
        reader.close()

    def name_all() -> None:
        sync = repo.open_sync()
        repo.flush(sync)
        for tmp, chunk_id in staged:
            repo.publish(tmp, chunk_id)
        repo.flush(sync)
        sync.close()

    step(STAGES[7], name_all)
    return {"stage_ms": {k: v / 1e6 for k, v in spent.items()}, "repo_bytes": du(repo_dir)}


def profile(images: list[Path], root: Path, levels: list[int], rounds: int, cache: Cache) -> dict[str, Any]:
    root.mkdir(parents=True)
    order = rotations([str(level) for level in levels], rounds)
    samples: dict[str, list[dict[str, Any]]] = {str(level): [] for level in levels}
    for i, names in enumerate(order):
        for name in names:
            repo_dir = root / f"profile-{name}-{i}"
            samples[name].append(profile_once(images, repo_dir, int(name), cache))
            shutil.rmtree(repo_dir)
    out: dict[str, Any] = {"rounds": rounds, "order": order, "cache": cache.mode, "levels": {}}
    for name, done in samples.items():
        stages = {stage: spread((s["stage_ms"][stage] for s in done), 1) for stage in STAGES}
        totals = spread((sum(s["stage_ms"].values()) for s in done), 1)
        total = totals["median"] or 1.0
        out["levels"][name] = {
            "stage_ms": stages,
            "total_ms": totals,
            "share_of_median_total": {s: round((stages[s]["median"] or 0) / total, 3) for s in STAGES},
            "repo_bytes": spread((s["repo_bytes"] for s in done), 0),
        }
    return out


# -- output ----------------------------------------------------------------------------------
def log(message: str) -> None:
    print(message, file=sys.stderr if "--json" in sys.argv else sys.stdout, flush=True)


def fmt(figure: dict[str, float | None], scale: float = 1.0, digits: int = 0) -> str:
    """median (min-max)"""
    if figure["median"] is None:
        return "—"
    values = [(figure[k] or 0) / scale for k in ("median", "min", "max")]
    return f"{values[0]:.{digits}f} ({values[1]:.{digits}f}-{values[2]:.{digits}f})"


def report(summary: dict[str, Any], names: list[str]) -> None:
    """The tables the README quotes, in Markdown."""
    log(f"\n{summary['rounds']} rounds, order {summary['order']}, page cache: {summary['cache']}")
    log("MB/s of guest data, median (min-max); start-up is each tool's no-op in seconds.\n")
    log(
        "| | full | incremental | restore | start-up s | full, start-up subtracted "
        "| incremental adds MiB | 10 clones ÷ one image | byte-exact |"
    )
    log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        r = summary[name]
        clones = f"{r['clones_vs_one_image']:.2f}" if "clones_vs_one_image" in r else "—"
        log(
            f"| {name} | {fmt(r['full_mb_s'])} | {fmt(r['incremental_mb_s'])} | {fmt(r['restore_mb_s'])} "
            f"| {fmt(r['startup_s'], digits=2)} | {fmt(r['full_mb_s_startup_subtracted'])} "
            f"| {fmt(r['incremental_added_bytes'], MiB, 1)} | {clones} "
            f"| {'yes' if r['restore_byte_exact'] else 'NO'} |"
        )
    ratios = {k: v for k, v in summary["ratios"].items() if isinstance(v, dict)}
    if ratios:
        log("\n| ratio (ours ÷ theirs, MB/s, per round) | start-up included | start-up subtracted |")
        log("| --- | --- | --- |")
        for key in (k for k in ratios if not k.endswith("_startup_subtracted")):
            log(
                f"| {key} | {fmt(ratios[key], digits=2)} "
                f"| {fmt(ratios.get(key + '_startup_subtracted', spread([])), digits=2)} |"
            )
    if "targets_met" in summary:
        met = summary["targets_met"]
        log("\ntargets: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in met.items()))


def report_profile(result: dict[str, Any]) -> None:
    log(f"\nCPU time per stage, one thread, ms: median (min-max) of {result['rounds']} rounds")
    levels = list(result["levels"])
    log("| stage | " + " | ".join(f"zstd level {level}" for level in levels) + " |")
    log("| --- |" + " --- |" * len(levels))
    for stage in (*STAGES, "total"):
        cells = []
        for level in levels:
            r = result["levels"][level]
            if stage == "total":
                cells.append(fmt(r["total_ms"], digits=1))
            else:
                share = r["share_of_median_total"][stage]
                cells.append(f"{fmt(r['stage_ms'][stage], digits=1)}, {share:.0%}")
        log(f"| {stage} | " + " | ".join(cells) + " |")
    cells = [fmt(result["levels"][level]["repo_bytes"], MiB, 1) for level in levels]
    log("| repository MiB | " + " | ".join(cells) + " |")


# -- main ------------------------------------------------------------------------------------
def parse_size(text: str) -> int:
    units = {"K": KiB, "M": MiB, "G": GiB}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small images (2 x 32 MiB, clones of 64 MiB)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--size", type=parse_size, help="bytes per image (default 4G, quick 32M)")
    parser.add_argument("--clone-size", type=parse_size, help="bytes per clone (default 1G, quick 64M)")
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help="a comma-separated subset of " + ",".join(TOOLS)
    )
    parser.add_argument("--chunk-sizes", help="only ours, unencrypted, at these chunk sizes (e.g. 256K,1M)")
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS, help=f"rounds (at least {MIN_ROUNDS})")
    parser.add_argument(
        "--cache",
        choices=("auto", "drop", "warm"),
        default="auto",
        help="page cache before each phase: dropped (needs root) or every input read once "
        "(warm); auto drops it where permitted",
    )
    parser.add_argument(
        "--restic-flags", default=shlex.join(RESTIC_FLAGS), help="restic's backup flags (one string)"
    )
    parser.add_argument(
        "--borg-flags", default=shlex.join(BORG_CREATE), help="borg create's flags (one string)"
    )
    parser.add_argument("--no-clones", action="store_true", help="skip the clone sizes")
    parser.add_argument("--profile", action="store_true", help="only ours: CPU time per stage, in-process")
    parser.add_argument(
        "--compression-levels", default="1", help="with --profile: zstd levels to profile (e.g. 1,-1,0)"
    )
    parser.add_argument("--workdir", help="where images and repositories go (default: a temporary directory)")
    args = parser.parse_args()
    if args.rounds < MIN_ROUNDS:
        parser.error(f"--rounds must be at least {MIN_ROUNDS}: one sample is not a figure")
    return args


def makers_for(args: argparse.Namespace, root: Path) -> dict[str, Maker]:
    makers: dict[str, Maker] = {}
    if args.chunk_sizes:
        for text in args.chunk_sizes.split(","):
            makers[f"this@{text}"] = partial(This, chunk_size=parse_size(text))
        return makers
    restic_flags, borg_flags = shlex.split(args.restic_flags), shlex.split(args.borg_flags)
    for name in (t for t in args.tools.split(",") if t):
        if name not in TOOLS:
            sys.exit(f"unknown tool {name}: choose from {', '.join(TOOLS)}")
        if name in ("restic", "borg") and shutil.which(name) is None:
            sys.exit(f"{name} is not installed (apt-get install restic borgbackup)")
        if name == "this":
            makers[name] = This
        elif name == "this_encrypted":
            makers[name] = partial(This, encrypted=True)
        elif name == "restic":
            template = root / "restic-template"
            Restic.init_template(template)
            makers[name] = partial(Restic, template=template, flags=restic_flags)
        elif name == "borg":
            makers[name] = partial(Borg, create_flags=borg_flags)
        else:
            makers[name] = Copy
    return makers


def main() -> None:
    args = arguments()
    # The smoke test stops a run that overstays with SIGTERM: unwind, so the subprocess
    # running is killed and the temporary directory removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    size = args.size or (32 * MiB if args.quick else 4 * GiB)
    clone_size = args.clone_size or (64 * MiB if args.quick else 1 * GiB)
    cache = Cache(Cache.detect() if args.cache == "auto" else args.cache)
    root = Path(tempfile.mkdtemp(prefix="nas-bench-", dir=args.workdir))
    try:
        started = time.perf_counter()
        images_dir = root / "images"
        images_dir.mkdir()
        content = Content(min(64 * MiB, max(8 * MiB, size // 4)))
        images = [images_dir / "disk-0.raw", images_dir / "disk-1.raw"]
        for seed, image in enumerate(images):
            build_image(image, size, seed, content)
        params: dict[str, Any] = {
            "image_bytes": size,
            "images": len(images),
            "changed_fraction": CHANGED,
            "block_bytes": BLOCK,
            "cpus": os.cpu_count(),
            "cache": cache.mode,
            "command": shlex.join(["benchmarks/datapath.py", *sys.argv[1:]]),
        }
        if args.profile:
            levels = [int(text) for text in args.compression_levels.split(",")]
            result = {**profile(images, root / "profile", levels, args.rounds, cache), "params": params}
            report_profile(result)
            if args.json:
                print(json.dumps(result, sort_keys=True))
            return
        template = images_dir / "template.raw"
        clones: list[Path] = []
        if not args.no_clones:
            build_image(template, clone_size, 42, content)
            clones = build_clones(template, 10)
        params.update(clone_bytes=clone_size, clones=len(clones))
        log(
            f"images: 2 x {size / MiB:.0f} MiB + {len(clones)} clones of {clone_size / MiB:.0f} MiB "
            f"built in {time.perf_counter() - started:.1f} s under {root}; page cache: {cache.mode}"
        )
        makers = makers_for(args, root)
        runs, order = measure(makers, images, root / "runs", args.rounds, cache)
        sizes: dict[str, dict[str, Any]] = {}
        for name, make in makers.items():
            # Clones dedup the same encrypted or not: the unencrypted run stands for both.
            if clones and name != "this_encrypted":
                sizes[name] = clone_sizes(make, clones, template, root / "clones" / name)
        described = baselines(makers, shlex.split(args.restic_flags), shlex.split(args.borg_flags))
        params["bench_s"] = round(time.perf_counter() - started, 1)
        summary = summarize(runs, sizes, order, described, params)
        report(summary, list(makers))
        log(f"({params['bench_s']} s)")
        if args.json:
            print(json.dumps(summary, sort_keys=True))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
