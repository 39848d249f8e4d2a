"""The NAS driver's data path against restic, borg and plain cp, on the same disk images.

Builds two raw disk images with realistic content (text and binaries taken from this
machine, each region scrambled so regions do not deduplicate against each other; random
regions; written zeros; holes), then for each tool, in one run:

  full         back up both images into an empty repository
  incremental  change 2 % of the images' 64 KiB blocks (qcow2's cluster size; spread at
               random) and back them up again
  restore      restore the incremental restore point to new files (ours is checked
               byte for byte against the images)
  clones       back up 10 clones of one template image (each with 16 random blocks per
               GiB written of its own) into a fresh repository, and report its size

Throughput is guest bytes processed per second (MB = 10^6 bytes); each figure is the
median of ``--rounds`` rounds on fresh repositories (3 with --quick), the tools taking
turns round by round so that all of them meet the same load on a shared machine. Every
tool writes durably: ours syncs the repository's file system before naming new chunks,
restic fsyncs its files, borg its segments, and cp is timed with an fsync of its copies.
Tools run with their default settings (restic: zstd "auto" and its always-on encryption;
borg: lz4, no encryption; ours: zstd level 1, 512 KiB chunks, no encryption, plus an
encrypted run). ``--quick --json`` finishes in well under a minute and prints one JSON
object last (the human-readable lines go to stderr then).

    .venv/bin/python benchmarks/datapath.py --quick --json
    .venv/bin/python benchmarks/datapath.py                 # 2 x 4 GiB images
    .venv/bin/python benchmarks/datapath.py --quick --chunk-sizes 256K,1M,4M
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# benchmarks/queue.py shares its name with the standard library's ``queue``, and Python puts a
# script's directory first on the path: keep it off, so ``import queue`` finds the real one.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from providers.base import BackupRequest, RestorePointRef, VMRef, VolumeRef  # noqa: E402
from providers.nas import NasProvider  # noqa: E402

KiB, MiB, GiB = 2**10, 2**20, 2**30
MB = 1e6
BLOCK = 64 * KiB
CHANGED = 0.02  # of the blocks, between the full and the incremental
TOOLS = ("this", "restic", "borg", "cp")


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


def timed(fn: Callable[[], Any]) -> float:
    os.sync()  # start each phase without the previous one's dirty pages still being written
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True, env=env, cwd=cwd)  # noqa: S603


# -- the tools -------------------------------------------------------------------------------
class This:
    name = "this"

    def __init__(self, work: Path, chunk_size: int | None = None, encrypted: bool = False) -> None:
        self.work = work
        self.config: dict[str, Any] = {"repository": str(work / "repo"), "snapshot": "direct"}
        if chunk_size:
            self.config["chunk_size"] = chunk_size
        if encrypted:
            self.config["encryption"] = {"passphrase": "benchmark passphrase"}
        self.provider = self._provider(self.config)
        self.points: list[RestorePointRef] = []

    def _provider(self, config: dict[str, Any]) -> NasProvider:
        provider = NasProvider("bench", config, self.work / "data")
        # Like ``restic init``/``borg init``: the repository is made (and its key derived)
        # before the clock starts.
        provider.init_repository()
        return provider

    @staticmethod
    def vm(images: list[Path], vm_id: str = "vm-1") -> VMRef:
        volumes = tuple(
            VolumeRef(f"{vm_id}-{i}", p.name, "DATADISK", i, p.stat().st_size, str(p), "raw", "pool")
            for i, p in enumerate(images)
        )
        return VMRef(vm_id, vm_id, "zone", "host", volumes)

    def backup(self, images: list[Path], vm_id: str = "vm-1", provider: NasProvider | None = None) -> None:
        provider = provider or self.provider
        vm = self.vm(images, vm_id)
        point_id = f"rp-{vm_id}-{len(self.points)}"
        parent = next((p for p in reversed(self.points) if p.vm.id == vm_id), None)
        request = BackupRequest(point_id, vm, "nas-daily", parent=parent)
        result = provider.take_backup(request, lambda d, t: None)
        self.points.append(RestorePointRef(point_id, result.external_id, result.backup_type, vm))

    def restore(self, images: list[Path], target_dir: Path) -> list[Path]:
        point = self.points[-1]
        targets = [target_dir / p.name for p in images]
        vm = VMRef(
            "vm-restored",
            "restored",
            "zone",
            "host",
            tuple(
                VolumeRef(f"new-{i}", t.name, "DATADISK", i, 0, str(t), "raw", "pool")
                for i, t in enumerate(targets)
            ),
        )
        self.provider.restore_vm(point, vm, lambda d, t: None)
        return targets

    def clones(self, clones: list[Path], repo: Path) -> None:
        provider = self._provider({**self.config, "repository": str(repo)})
        for i, clone in enumerate(clones):
            self.backup([clone], f"clone-{i}", provider)


class Restic:
    name = "restic"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {**os.environ, "RESTIC_PASSWORD": "benchmark", "RESTIC_CACHE_DIR": str(work / "cache")}
        self.repo = work / "repo"
        self._init(self.repo)

    _template: Path | None = None

    def _init(self, repo: Path) -> None:
        # restic calibrates its key derivation at init (seconds): initialize one empty
        # repository and copy it (each copy gets its own cache directory).
        if Restic._template is None or not Restic._template.exists():
            Restic._template = self.work.parent.parent / "restic-template"
            run("restic", "init", "-r", Restic._template, env=self.env)
        shutil.copytree(Restic._template, repo)

    def backup(self, images: list[Path]) -> None:
        run("restic", "-r", self.repo, "backup", "--quiet", *images, env=self.env)

    def restore(self, images: list[Path], target_dir: Path) -> list[Path]:
        run("restic", "-r", self.repo, "restore", "latest", "--target", target_dir, env=self.env)
        return [target_dir / str(p).lstrip("/") for p in images]

    def clones(self, clones: list[Path], repo: Path) -> None:
        # One snapshot of all ten: the same chunks as ten snapshots, without ten start-ups.
        self._init(repo)
        run("restic", "-r", repo, "backup", "--quiet", *clones, env=self.env)


class Borg:
    name = "borg"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {
            **os.environ,
            "BORG_BASE_DIR": str(work / "base"),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }
        self.repo = work / "repo"
        self.count = 0
        run("borg", "init", "-e", "none", self.repo, env=self.env)

    def backup(self, images: list[Path], repo: Path | None = None) -> None:
        self.count += 1
        run("borg", "create", f"{repo or self.repo}::a{self.count}", *images, env=self.env)

    def restore(self, images: list[Path], target_dir: Path) -> list[Path]:
        run("borg", "extract", f"{self.repo}::a{self.count}", env=self.env, cwd=target_dir)
        return [target_dir / str(p).lstrip("/") for p in images]

    def clones(self, clones: list[Path], repo: Path) -> None:
        run("borg", "init", "-e", "none", repo, env=self.env)
        self.backup(clones, repo)


class Copy:
    name = "cp"

    def __init__(self, work: Path) -> None:
        self.repo = work / "repo"
        self.repo.mkdir(parents=True)
        self.count = 0

    @staticmethod
    def _copy(images: list[Path], target_dir: Path) -> list[Path]:
        target_dir.mkdir(parents=True, exist_ok=True)
        run("cp", *images, target_dir)
        copies = [target_dir / p.name for p in images]
        for copy in copies:
            fd = os.open(copy, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        return copies

    def backup(self, images: list[Path]) -> None:
        self.count += 1
        self._copy(images, self.repo / str(self.count))

    def restore(self, images: list[Path], target_dir: Path) -> list[Path]:
        return self._copy([self.repo / str(self.count) / p.name for p in images], target_dir)

    def clones(self, clones: list[Path], repo: Path) -> None:
        self._copy(clones, repo)


# -- the run ---------------------------------------------------------------------------------
def one_round(tool: Any, images: list[Path], work: Path) -> dict[str, Any]:
    """Full backup, 2 % changed, incremental, restore: one fresh repository."""
    undo: list[list[tuple[int, bytes]]] = []
    out: dict[str, Any] = {}
    try:
        out["full_s"] = timed(lambda: tool.backup(images))
        out["full_repo_bytes"] = du(work / "repo")
        for i, image in enumerate(images):
            undo.append(change_blocks(image, CHANGED, seed=100 + i))
        out["incremental_s"] = timed(lambda: tool.backup(images))
        out["incremental_added_bytes"] = du(work / "repo") - out["full_repo_bytes"]
        target = work / "restored"
        target.mkdir()
        restored: list[Path] = []
        out["restore_s"] = timed(lambda: restored.extend(tool.restore(images, target)))
        if tool.name == "this":
            pairs = zip(images, restored, strict=True)
            out["restore_byte_exact"] = all(sha256(a) == sha256(b) for a, b in pairs)
        shutil.rmtree(target)
    finally:
        for image, changes in zip(images, undo, strict=False):
            undo_changes(image, changes)
    return out


def measure(
    makers: dict[str, Callable[[Path], Any]], images: list[Path], clones: list[Path], root: Path, rounds: int
) -> dict[str, dict[str, Any]]:
    """Per tool: the median of ``rounds`` rounds (each on a fresh repository), then the clones.

    Round i of every tool runs before round i + 1 of any: the machine is shared with other
    work whose load changes by the minute, and tools measured one after the other would be
    compared across different loads (one getting a quiet minute, the next a busy one).
    """
    total = sum(p.stat().st_size for p in images)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in makers}
    spent = dict.fromkeys(makers, 0.0)
    for i in range(rounds):
        for name, make in makers.items():
            started = time.perf_counter()
            round_dir = root / name / f"round-{i}"
            round_dir.mkdir(parents=True)
            runs[name].append(one_round(make(round_dir), images, round_dir))
            shutil.rmtree(round_dir)
            spent[name] += time.perf_counter() - started
    results = {}
    for name, make in makers.items():
        started = time.perf_counter()
        done = runs[name]
        out = {k: statistics.median(r[k] for r in done) for k in done[0] if k != "restore_byte_exact"}
        if "restore_byte_exact" in done[0]:
            out["restore_byte_exact"] = all(r["restore_byte_exact"] for r in done)
        clone_dir = root / name / "clones"
        clone_dir.mkdir()
        make(clone_dir).clones(clones, clone_dir / "clones-repo")
        out["clones_repo_bytes"] = du(clone_dir / "clones-repo")
        shutil.rmtree(root / name)
        for phase in ("full", "incremental", "restore"):
            out[f"{phase}_mb_s"] = round(total / out[f"{phase}_s"] / MB, 1)
        out["rounds"] = rounds
        out["bench_s"] = round(spent[name] + time.perf_counter() - started, 1)
        results[name] = out
        report_line(name, out)
    return results


def one_image_bytes(template: Path, work: Path) -> int:
    tool = This(work)
    tool.backup([template], "template")
    return du(work / "repo")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small images (2 x 64 MiB, clones of 64 MiB)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--size", type=int, help="bytes per image (default 4 GiB, quick 64 MiB)")
    parser.add_argument("--clone-size", type=int, help="bytes per clone (default 1 GiB, quick 64 MiB)")
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help="a comma-separated subset of " + ",".join(TOOLS)
    )
    parser.add_argument("--chunk-sizes", help="only this driver, at these chunk sizes (e.g. 256K,1M,4M)")
    parser.add_argument("--rounds", type=int, help="rounds per tool, the median counts (quick: 3, else 1)")
    parser.add_argument("--workdir", help="where images and repositories go (default: a temporary directory)")
    args = parser.parse_args()

    size = args.size or (64 * MiB if args.quick else 4 * GiB)
    clone_size = args.clone_size or (64 * MiB if args.quick else 1 * GiB)
    root = Path(tempfile.mkdtemp(prefix="nas-bench-", dir=args.workdir))
    try:
        images_dir = root / "images"
        images_dir.mkdir()
        started = time.perf_counter()
        content = Content(min(64 * MiB, max(8 * MiB, size // 4)))
        images = [images_dir / "disk-0.raw", images_dir / "disk-1.raw"]
        for seed, image in enumerate(images):
            build_image(image, size, seed, content)
        template = images_dir / "template.raw"
        build_image(template, clone_size, 42, content)
        clones = []
        # Each clone gets writes of its own (hostname, keys, logs): 16 blocks (1 MiB) per GiB.
        clone_writes = max(1, 16 * clone_size // GiB)
        for i in range(10):
            clone = images_dir / f"clone-{i}.raw"
            shutil.copyfile(template, clone)
            rng = random.Random(1000 + i)
            with open(clone, "r+b") as f:
                for _ in range(clone_writes):
                    f.seek(rng.randrange(clone_size // BLOCK) * BLOCK)
                    f.write(rng.randbytes(BLOCK))
            clones.append(clone)
        log(
            f"images: 2 x {size / MiB:.0f} MiB + 10 clones of {clone_size / MiB:.0f} MiB "
            f"built in {time.perf_counter() - started:.1f} s under {root}"
        )

        rounds = args.rounds or (3 if args.quick else 1)
        makers: dict[str, Callable[[Path], Any]] = {}
        if args.chunk_sizes:
            for text in args.chunk_sizes.split(","):
                chunk = parse_size(text)
                makers[f"this@{text}"] = lambda w, c=chunk: This(w, c)
        else:
            tools = {"this": This, "restic": Restic, "borg": Borg, "cp": Copy}
            for name in (t for t in args.tools.split(",") if t):
                if name != "this" and shutil.which(name) is None:
                    sys.exit(f"{name} is not installed (apt-get install restic borgbackup)")
                makers[name] = tools[name]
            if "this" in makers:
                makers["this_encrypted"] = lambda w: This(w, encrypted=True)
        results = measure(makers, images, clones, root / "runs", rounds)
        if "this" in results:
            work = root / "one-image"
            work.mkdir()
            results["this"]["one_image_bytes"] = one_image_bytes(template, work)
            shutil.rmtree(work)
        summary = summarize(results, size, clone_size)
        if args.json:
            print(json.dumps(summary, sort_keys=True))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def parse_size(text: str) -> int:
    units = {"K": KiB, "M": MiB, "G": GiB}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def log(message: str) -> None:
    print(message, file=sys.stderr if "--json" in sys.argv else sys.stdout, flush=True)


def report_line(name: str, r: dict[str, Any]) -> None:
    log(
        f"{name:>15}: full {r['full_mb_s']:8.1f} MB/s  incremental {r['incremental_mb_s']:8.1f} MB/s "
        f"(+{r['incremental_added_bytes'] / MiB:7.1f} MiB)  restore {r['restore_mb_s']:8.1f} MB/s  "
        f"repo {r['full_repo_bytes'] / MiB:8.1f} MiB  10 clones {r['clones_repo_bytes'] / MiB:8.1f} MiB"
        f"  ({r['bench_s']} s)"
    )


def summarize(results: dict[str, Any], size: int, clone_size: int) -> dict[str, Any]:
    fields = (
        "full_mb_s",
        "incremental_mb_s",
        "restore_mb_s",
        "clones_repo_bytes",
        "full_repo_bytes",
        "incremental_added_bytes",
    )
    summary: dict[str, Any] = {
        name: {k: r[k] for k in (*fields, "one_image_bytes", "restore_byte_exact") if k in r}
        for name, r in results.items()
    }
    summary["params"] = {
        "image_bytes": size,
        "images": 2,
        "clone_bytes": clone_size,
        "clones": 10,
        "changed_fraction": CHANGED,
        "block_bytes": BLOCK,
        "cpus": os.cpu_count(),
    }
    this, restic, cp = results.get("this"), results.get("restic"), results.get("cp")
    if this:
        ratios: dict[str, Any] = {
            "clones_vs_one_image": round(this["clones_repo_bytes"] / this["one_image_bytes"], 3)
        }
        if restic:
            for k in ("full_mb_s", "incremental_mb_s", "restore_mb_s"):
                ratios[f"{k}_vs_restic"] = round(this[k] / restic[k], 2)
        if cp:
            ratios["full_mb_s_vs_cp"] = round(this["full_mb_s"] / cp["full_mb_s"], 2)
        summary["ratios"] = ratios
        log("ratios: " + ", ".join(f"{k} {v}" for k, v in ratios.items()))
        targets = {
            "full >= 1.0x restic": ratios.get("full_mb_s_vs_restic", 0) >= 1.0,
            "full >= 0.8x cp": ratios.get("full_mb_s_vs_cp", 0) >= 0.8,
            "incremental >= 3x restic": ratios.get("incremental_mb_s_vs_restic", 0) >= 3.0,
            "10 clones <= 1.2x one image": ratios["clones_vs_one_image"] <= 1.2,
            "restore byte-exact": bool(this.get("restore_byte_exact")),
        }
        summary["targets_met"] = targets
        log("targets: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in targets.items()))
    return summary


if __name__ == "__main__":
    main()
