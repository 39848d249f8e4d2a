"""A consistent backup of a running 4-disk VM against per-volume snapshots of its disks.

Runs a real libvirtd with QEMU under TCG (started here when none answers on qemu:///system;
needs root and Debian's ``libvirt-daemon-system``, ``qemu-system-x86``, ``qemu-utils``), and a
domain with four qcow2 disks (vda..vdd) that boots no OS. While it runs, a writer stamps
increasing generation numbers on vda, vdb, vdc, vdd in turn, through the guest's own virtio
devices (QEMU monitor ``qemu-io -d``), so every write lands in whatever image is active then.

  group         the kvm driver: ``KvmProvider.take_backup`` -- ONE atomic disk-only snapshot
                of all four disks, the NAS data mover reads them, the overlays are merged back
  back_to_back  the baseline, as a per-volume snapshot tool does it at its best: one disk-only
                snapshot per disk (``virsh snapshot-create-as`` with that disk external, the
                others ``snapshot=no``), all four back to back, then each frozen image read
                by the same data mover into a restore point of its own, then the overlays
                merged back
  sequential    the worst case, which no real tool does: the same provider, one backup per
                disk (a VM of one volume each), each disk snapshotted, read and merged
                before the next one is snapshotted

All go into fresh repositories of the same NAS store settings, so only the consistency model
differs. For each: the wall seconds of the whole backup, and the skew -- how far apart in
time the images of the first disk (vda) and the last (vdd) were frozen, as proven by the
generations found in them (see ``skew``). Every round runs each way once, the order rotating
from round to round; each figure is reported as min, median and max over the rounds.
``--quick --json`` finishes in well under a minute and prints one JSON object last (the
human-readable lines go to stderr then).

    .venv/bin/python benchmarks/kvm.py --quick --json    # 4 x 64 MiB disks, 3 rounds
    .venv/bin/python benchmarks/kvm.py                   # 4 x 512 MiB disks, 3 rounds
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Python puts a script's directory first on the path, and benchmarks/queue.py would then
# shadow the standard library's ``queue`` (which the NAS driver imports).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from providers.base import BackupRequest, VMRef, VolumeRef  # noqa: E402
from providers.kvm.driver import KvmProvider  # noqa: E402
from providers.kvm.snapshot import overlay_path  # noqa: E402
from providers.nas.snapshot import Capture, SnapshotSource, SourceImage  # noqa: E402

KiB, MiB = 2**10, 2**20
URI = "qemu:///system"
TARGETS = ("vda", "vdb", "vdc", "vdd")
# The ways compared (see the docstring); each round runs them all, in an order rotated by one
# per round, so none is always first (warmer caches) or always last (a longer-running writer).
MODES = ("group", "back_to_back", "sequential")
TOOLS = ("virsh", "libvirtd", "virtlogd", "qemu-system-x86_64", "qemu-img", "qemu-io", "stdbuf")
SECTOR = 512
# The generation stamps: sector s of the first cluster holds generations s*255+1 .. s*255+255
# (its byte pattern is the generation's rank within them, 1..255), so a number never wraps
# and each stamp is one atomic 512-byte write. The disk's data starts after that cluster.
STAMP_BYTES = 64 * KiB
PER_SECTOR = 255


def log(message: str) -> None:
    print(message, file=sys.stderr if "--json" in sys.argv else sys.stdout, flush=True)


def run(*args: str | Path, timeout: float = 120, stdin: str | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - fixed tools, arguments built here
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        env={**os.environ, "LC_ALL": "C"},
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout


def virsh(*args: str, check: bool = True) -> str:
    try:
        return run("virsh", "-c", URI, *args)
    except RuntimeError:
        if check:
            raise
        return ""


# -- libvirtd --------------------------------------------------------------------------------
def _libvirt_answers() -> bool:
    try:
        virsh("version")
        return True
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        return False


def running_pid(daemon: str) -> int | None:
    """The pid in /run/<daemon>.pid if that process is running and is the daemon."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(Path(f"/run/{daemon}.pid").read_text().strip())
        if Path(f"/proc/{pid}/comm").read_text().strip() == daemon:
            return pid
    return None


def start_daemon(daemon: str) -> int:
    """``<daemon> -d``; the pid it wrote to /run/<daemon>.pid (a stale file is not believed)."""
    pid_file = Path(f"/run/{daemon}.pid")
    before = time.time() - 1
    run(daemon, "-d", timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if pid_file.stat().st_mtime >= before:
                pid = int(pid_file.read_text().strip())
                os.kill(pid, 0)
                return pid
        time.sleep(0.05)
    raise RuntimeError(f"{daemon} -d wrote no pid to {pid_file}")


@contextlib.contextmanager
def libvirtd() -> Iterator[list[str]]:
    """A libvirtd answering on qemu:///system; started (with virtlogd) when none answers, and
    then stopped again. Yields the names of the daemons started here."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        sys.exit(
            f"{', '.join(missing)} not found "
            "(apt-get install libvirt-daemon-system qemu-system-x86 qemu-utils)"
        )
    started: list[tuple[str, int]] = []
    try:
        if not _libvirt_answers():
            if os.geteuid() != 0:
                sys.exit(f"no libvirtd answers on {URI}, and starting one needs root")
            for daemon in ("virtlogd", "libvirtd"):
                if daemon == "virtlogd" and running_pid(daemon) is not None:
                    continue  # someone's virtlogd without a libvirtd: used, not ours to stop
                started.append((daemon, start_daemon(daemon)))
            deadline = time.monotonic() + 20
            while not _libvirt_answers():
                if time.monotonic() > deadline:
                    sys.exit(f"libvirtd started but {URI} did not answer within 20 s")
                time.sleep(0.1)
        yield [name for name, _ in started]
    finally:
        # Another program (the kvm tests, say) may have found this libvirtd answering and
        # started domains of its own meanwhile: then it is left running for them. (Defined but
        # shut-off domains need no daemon.)
        others = virsh("list", "--name", check=False).split() if started else []
        if others:
            log(f"libvirtd left running: domains {', '.join(others)} run and are not this benchmark's")
        for _name, pid in reversed(started if not others else []):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)


# -- the domain ------------------------------------------------------------------------------
def build_disk(path: Path, size: int) -> None:
    """A qcow2 image: the stamp cluster zero, then 3/4 of the rest random data (incompressible,
    unlike any other disk's), the last quarter never written."""
    raw = path.with_suffix(".raw")
    with open(raw, "wb") as f:
        f.truncate(size)
        f.seek(STAMP_BYTES)
        remaining = (size - STAMP_BYTES) * 3 // 4
        while remaining > 0:
            piece = min(remaining, 4 * MiB)
            f.write(os.urandom(piece))
            remaining -= piece
    run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, path)
    raw.unlink()


def domain_xml(name: str, disks: dict[str, Path]) -> str:
    disk_xml = "".join(
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        f"<source file='{path}'/><target dev='{target}' bus='virtio'/></disk>"
        for target, path in disks.items()
    )
    return (
        f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
        f"<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{disk_xml}</devices></domain>"
    )


@dataclass
class Domain:
    name: str
    uuid: str
    workdir: Path
    disks: dict[str, Path]
    size: int

    def volumes(self, targets: tuple[str, ...] = TARGETS) -> tuple[VolumeRef, ...]:
        return tuple(
            VolumeRef(
                f"vol-{t}",
                t,
                "ROOT" if t == "vda" else "DATADISK",
                TARGETS.index(t),
                self.size,
                str(self.disks[t]),
                "qcow2",
                "pool1",
            )
            for t in targets
        )

    def vm(self, targets: tuple[str, ...] = TARGETS) -> VMRef:
        return VMRef(
            self.uuid,
            self.name,
            "zone1",
            "host1",
            self.volumes(targets),
            details={"instance_name": self.name},
        )

    def sources(self) -> dict[str, str]:
        out = virsh("domblklist", self.name)
        rows = [line.split(None, 1) for line in out.splitlines()[2:] if line.strip()]
        return {row[0]: row[1].strip() for row in rows if len(row) == 2}

    def overlays(self) -> list[str]:
        return sorted(p.name for p in self.workdir.iterdir() if ".bo-" in p.name)


@contextlib.contextmanager
def running_domain(root: Path, size: int) -> Iterator[Domain]:
    workdir = root / "disks"
    workdir.mkdir()
    # QEMU runs as libvirt-qemu: it must be able to reach the images.
    for directory in (root, workdir):
        directory.chmod(0o755)
    name = f"bo-bench-{uuid.uuid4().hex[:10]}"
    disks = {t: workdir / f"{t}.qcow2" for t in TARGETS}
    try:
        for path in disks.values():
            build_disk(path, size)
        xml = workdir / "domain.xml"
        xml.write_text(domain_xml(name, disks))
        # Transient: should libvirtd vanish mid-run (another program's daemon, stopped), no
        # definition of ours outlives the benchmark.
        virsh("create", str(xml))
        yield Domain(name, virsh("domuuid", name).strip(), workdir, disks, size)
    finally:
        stop_domain(name)


def stop_domain(name: str) -> None:
    """Destroy the domain; if libvirtd is gone (and not back within 30 s), end its QEMU."""
    pid_file = Path(f"/run/libvirt/qemu/{name}.pid")
    qemu_pid = None
    with contextlib.suppress(OSError, ValueError):
        qemu_pid = int(pid_file.read_text().strip())
    deadline = time.monotonic() + 30
    while True:
        try:
            virsh("destroy", name)
            return
        except RuntimeError as exc:
            if "failed to connect" not in str(exc):
                return  # not running (any more)
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    with contextlib.suppress(OSError):
        if qemu_pid and f"guest={name}".encode() in Path(f"/proc/{qemu_pid}/cmdline").read_bytes():
            os.kill(qemu_pid, signal.SIGTERM)
            log(f"libvirtd is gone: ended the QEMU process {qemu_pid} of domain {name}")


# -- the writer ------------------------------------------------------------------------------
class MonitorShell:
    """One long-lived interactive ``virsh`` for QEMU monitor commands: ~3 ms per command where
    a virsh process per command costs ~30 ms of CPU, which would compete with the backup."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603
            ["stdbuf", "-o0", "virsh", "-q", "-c", URI],  # noqa: S607 - found on PATH like virsh itself
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LC_ALL": "C"},
        )
        self.buffer = b""
        self.count = 0

    def command(self, line: str) -> str:
        """Run one virsh command; its output (with the shell's prompt noise)."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.count += 1
        mark = f"@@bo-bench-{self.count}@@".encode()
        self.proc.stdin.write(line.encode() + b"\necho " + mark + b"\n")
        self.proc.stdin.flush()
        while True:
            echoed = self.buffer.find(b"echo " + mark)
            if echoed >= 0:
                printed = self.buffer.find(mark, echoed + 5 + len(mark))
                if printed >= 0:
                    out = self.buffer[:echoed]
                    self.buffer = self.buffer[printed + len(mark) :]
                    return out.decode(errors="replace")
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                raise RuntimeError(f"virsh shell ended: {self.buffer[-500:]!r}")
            self.buffer += data

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def stamp(generation: int) -> tuple[int, int]:
    """(byte offset, pattern) of a generation's stamp."""
    return (generation - 1) // PER_SECTOR * SECTOR, (generation - 1) % PER_SECTOR + 1


class GenerationWriter:
    """Stamps generation g on vda, vdb, vdc, vdd in turn, one generation every ``period`` s,
    logging when each write started and ended."""

    def __init__(self, domain: Domain, period: float) -> None:
        self.domain = domain
        self.period = period
        self.shell = MonitorShell()
        self.devices = {
            t: f"/machine/peripheral/virtio-disk{i}/virtio-backend" for i, t in enumerate(TARGETS)
        }
        # target -> [(generation, started, ended)]
        self.log: dict[str, list[tuple[int, float, float]]] = {t: [] for t in TARGETS}
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="generation-writer", daemon=True)
        self.generation = 0

    def _write(self, target: str, generation: int) -> None:
        offset, pattern = stamp(generation)
        device = self.devices[target]
        out = self.shell.command(
            f"qemu-monitor-command {self.domain.name} --hmp "
            f"'qemu-io -d {device} \"write -P {pattern} {offset} {SECTOR}\"'"
        )
        if "rror" in out or "failed" in out:
            raise RuntimeError(f"stamping generation {generation} on {target}: {out.strip()[-300:]}")

    def _run(self) -> None:
        try:
            next_at = time.perf_counter()
            while not self.stop.is_set():
                self.generation += 1
                for target in TARGETS:
                    started = time.perf_counter()
                    self._write(target, self.generation)
                    self.log[target].append((self.generation, started, time.perf_counter()))
                next_at += self.period
                delay = next_at - time.perf_counter()
                if delay > 0:
                    self.stop.wait(delay)
                else:  # fell behind (a snapshot holds the domain's monitor): no catching up
                    next_at = time.perf_counter()
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> GenerationWriter:
        self.thread.start()
        while self.generation < 3 and self.thread.is_alive():
            time.sleep(0.01)
        self.check()
        return self

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the generation writer failed: {self.error}") from self.error

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.shell.close()

    def measured_period(self) -> float:
        """Mean seconds between two generations' first writes."""
        starts = [s for _, s, _ in self.log["vda"]]
        return (starts[-1] - starts[0]) / (len(starts) - 1) if len(starts) > 1 else float("nan")

    def freeze_window(self, target: str, generation: int) -> tuple[float, float]:
        """When a disk whose image holds ``generation`` can have been frozen: after that write
        to it ended, before the next one to it started."""
        writes = self.log[target]
        by_generation = {g: (s, e) for g, s, e in writes}
        after = by_generation[generation][1] if generation in by_generation else float("-inf")
        nxt = by_generation.get(generation + 1)
        return after, (nxt[0] if nxt else float("inf"))


def read_generation(path: str) -> int:
    """The newest generation stamped in an image (read through qemu, -U: QEMU holds it)."""
    with tempfile.NamedTemporaryFile(suffix=".raw") as out:
        run(
            "qemu-img",
            "dd",
            "-U",
            "-f",
            "qcow2",
            "-O",
            "raw",
            f"bs={STAMP_BYTES}",
            "count=1",
            f"if={path}",
            f"of={out.name}",
        )
        data = Path(out.name).read_bytes()[:STAMP_BYTES]
    newest = 0
    for sector in range(STAMP_BYTES // SECTOR):
        block = data[sector * SECTOR : (sector + 1) * SECTOR]
        if block[0] == 0:
            break
        if block.count(block[0]) != SECTOR:
            raise RuntimeError(f"{path}: torn stamp in sector {sector}")
        newest = sector * PER_SECTOR + block[0]
    return newest


# -- reading the stamps at the instant the data mover reads -------------------------------------
@dataclass
class Stamped:
    """What one capture froze: the generation in each image, and when the freeze call ran."""

    generations: dict[str, int] = field(default_factory=dict)  # target -> generation
    calls: dict[str, tuple[float, float]] = field(default_factory=dict)  # target -> (began, frozen)
    stamp_read_s: float = 0.0
    # Where the time went, summed over this backup's captures: repair + snapshot (until the
    # images are handed over), the data mover reading them, merging back and cleaning up.
    phases: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))


PHASES = ("freeze_s", "read_s", "merge_s")


class StampReading(SnapshotSource):
    """The kvm driver's own snapshot source (or images frozen earlier), plus: once the data mover
    has read the frozen images (before they are merged back), read the generation in each."""

    def __init__(self, inner: SnapshotSource, stamped: Stamped) -> None:
        self.inner = inner
        self.stamped = stamped

    @contextlib.contextmanager
    def capture(self, vm: VMRef, point_id: str, *, quiesce: bool = False) -> Iterator[Capture]:
        began = time.perf_counter()
        with self.inner.capture(vm, point_id, quiesce=quiesce) as capture:
            frozen = time.perf_counter()
            yield capture
            started = time.perf_counter()
            for volume in vm.volumes:
                self.stamped.generations[volume.name] = read_generation(capture.images[volume.id].path)
                self.stamped.calls[volume.name] = (began, frozen)
            stamps_read = time.perf_counter()
            self.stamped.stamp_read_s += stamps_read - started
        merged = time.perf_counter()
        phases = self.stamped.phases
        phases["freeze_s"] += frozen - began
        phases["read_s"] += started - frozen
        phases["merge_s"] += merged - stamps_read


class PreFrozen(SnapshotSource):
    """Images frozen before the backup began (a per-volume tool's snapshots): handed to the data
    mover as they are; merging them back is the caller's business, after every disk is read."""

    def __init__(self, images: dict[str, SourceImage]) -> None:
        self.images = images  # volume id -> the frozen original image

    @contextlib.contextmanager
    def capture(self, vm: VMRef, point_id: str, *, quiesce: bool = False) -> Iterator[Capture]:
        yield Capture({v.id: self.images[v.id] for v in vm.volumes}, "libvirt-per-volume")


def provider(root: Path, label: str, stamped: Stamped) -> KvmProvider:
    repo = root / f"repo-{label}"
    kvm = KvmProvider(
        f"bench-{label}",
        {"repository": str(repo), "hosts": {"host1": {"transport": "local", "libvirt_uri": URI}}},
        root / f"data-{label}",
    )
    kvm.nas.init_repository()  # outside the clock, like any repository set-up
    kvm.nas.snapshot_source = StampReading(kvm.snapshots, stamped)
    return kvm


def group_backup(kvm: KvmProvider, domain: Domain, point: str, stamped: Stamped) -> None:
    kvm.take_backup(BackupRequest(point, domain.vm(), "kvm-daily"), lambda done, total: None)


def sequential_backup(kvm: KvmProvider, domain: Domain, point: str, stamped: Stamped) -> None:
    for target in TARGETS:
        request = BackupRequest(f"{point}-{target}", domain.vm((target,)), "kvm-daily")
        kvm.take_backup(request, lambda done, total: None)


def back_to_back_backup(kvm: KvmProvider, domain: Domain, point: str, stamped: Stamped) -> None:
    """A per-volume tool at its best: the four snapshots one right after the other (one virsh
    call each, nothing in between: no repair, no lookups), then the reads, then the merges."""
    ops = kvm.snapshots.ops(domain.vm())
    reader = kvm.nas.snapshot_source
    assert isinstance(reader, StampReading)
    frozen: dict[str, SourceImage] = {}
    calls: dict[str, tuple[float, float]] = {}
    try:
        for target in TARGETS:
            image = str(domain.disks[target])
            # Named like the driver's overlays, so its repair merges them back below.
            overlay = overlay_path(image, f"{point}-{target}")
            specs = [f"{target},snapshot=external,driver=qcow2,file={overlay}"]
            specs += [f"{other},snapshot=no" for other in TARGETS if other != target]
            began = time.perf_counter()
            ops.snapshot(specs, quiesce=False)
            calls[target] = (began, time.perf_counter())
            frozen[f"vol-{target}"] = SourceImage(image, "qcow2")
        reader.inner = PreFrozen(frozen)
        for target in TARGETS:
            request = BackupRequest(f"{point}-{target}", domain.vm((target,)), "kvm-daily")
            kvm.take_backup(request, lambda done, total: None)
    finally:
        merging = time.perf_counter()
        # Every overlay of ours on the domain, one blockcommit each (also after a failure).
        kvm.repair(domain.vm())
        stamped.phases["merge_s"] += time.perf_counter() - merging
    # The freezes were the snapshot calls above, not the (instant) captures the reads saw.
    stamped.calls.update(calls)
    stamped.phases["freeze_s"] += sum(frozen_at - began for began, frozen_at in calls.values())


BACKUPS = {"group": group_backup, "back_to_back": back_to_back_backup, "sequential": sequential_backup}


def skew(writer: GenerationWriter, generations: dict[str, int]) -> tuple[float, float]:
    """(least, most) seconds that can separate the freezes of the first and the last disk,
    given the generation found in each and when the writer wrote them. One atomic snapshot
    shows 0 as the least: some single instant fits both images."""
    first_lo, first_hi = writer.freeze_window(TARGETS[0], generations[TARGETS[0]])
    last_lo, last_hi = writer.freeze_window(TARGETS[-1], generations[TARGETS[-1]])
    least = max(0.0, last_lo - first_hi, first_lo - last_hi)
    most = max(last_hi - first_lo, first_hi - last_lo)
    return least, most


def one_backup(
    mode: str, root: Path, domain: Domain, writer: GenerationWriter, round_no: int
) -> dict[str, Any]:
    stamped = Stamped()
    kvm = provider(root, f"{mode}-{round_no}", stamped)
    try:
        started = time.perf_counter()
        BACKUPS[mode](kvm, domain, f"{mode}-{round_no}", stamped)
        wall = time.perf_counter() - started - stamped.stamp_read_s
    finally:
        kvm.close()
    writer.check()
    least, most = skew(writer, stamped.generations)
    gens = stamped.generations
    calls = stamped.calls
    freeze_spread = (sum(calls[TARGETS[-1]]) - sum(calls[TARGETS[0]])) / 2
    # All four frozen at one instant: later disks are at most one generation behind vda
    # (the writer was between them), never ahead.
    in_order = all(gens["vda"] - 1 <= gens[t] <= gens["vda"] for t in TARGETS)
    shutil.rmtree(root / f"repo-{mode}-{round_no}", ignore_errors=True)
    shutil.rmtree(root / f"data-{mode}-{round_no}", ignore_errors=True)
    return {
        "seconds": wall,
        "skew_s": least,
        "skew_max_s": most,
        "skew_generations": gens[TARGETS[-1]] - gens[TARGETS[0]],
        "freeze_spread_s": freeze_spread,
        "one_instant": in_order,
        "generations": dict(gens),
        "phases": {**stamped.phases, "other_s": wall - sum(stamped.phases.values())},
    }


def rotation(round_no: int) -> list[str]:
    """Round r starts with the r-th way: over len(MODES) rounds each way is first, middle and
    last once."""
    shift = round_no % len(MODES)
    return [*MODES[shift:], *MODES[:shift]]


def versions() -> dict[str, str]:
    """libvirt's and QEMU's versions as ``virsh version`` reports them (the running ones)."""
    found = {}
    for line in virsh("version").splitlines():
        label, _, value = line.partition(":")
        if label.strip() == "Using library":
            found["libvirt"] = value.split()[-1]
        elif label.strip() == "Running hypervisor":
            found["qemu"] = value.split()[-1]
    found["qemu_img"] = run("qemu-img", "--version").split()[2]
    return found


def describe_baselines(found: dict[str, str], size: int) -> dict[str, Any]:
    """What each way runs, with which flags: the same host, domain, data mover and store."""
    shared = {
        **found,
        "accel": "tcg",
        "disks": f"{len(TARGETS)} x qcow2 of {size} bytes",
        "store": "providers.nas data mover and repository, default settings, a fresh repository per backup",
        "merge": "virsh blockcommit <disk> --active --shallow --pivot --wait, one disk after another",
    }
    return {
        "group": {
            **shared,
            "tool": "this project: KvmProvider.take_backup of the VM's 4 volumes (one restore point)",
            "snapshot": "one virsh snapshot-create-as --disk-only --atomic --no-metadata "
            "--diskspec vda,snapshot=external,... (all 4 disks), after the driver's repair",
        },
        "back_to_back": {
            **shared,
            "tool": "a per-volume snapshot tool at its best: 4 snapshots back to back, then 4 reads "
            "(a restore point per disk), then the merges",
            "snapshot": "per disk, one right after the other: virsh snapshot-create-as --disk-only "
            "--atomic --no-metadata --diskspec <disk>,snapshot=external,driver=qcow2,file=<overlay> "
            "--diskspec <each other disk>,snapshot=no",
        },
        "sequential": {
            **shared,
            "tool": "worst case, no real tool does it: KvmProvider.take_backup per disk "
            "(a VM of one volume), each disk snapshotted, read and merged before the next",
            "snapshot": "per disk, after the previous disk's read and merge: virsh snapshot-create-as "
            "--disk-only --atomic --no-metadata --diskspec <disk>,snapshot=external,... "
            "--diskspec <each other disk>,snapshot=no, after the driver's repair",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="4 x 64 MiB disks")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--size", type=int, help="bytes per disk (default 512 MiB, quick 64 MiB)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every way, in rotating order (default and least 3)"
    )
    parser.add_argument(
        "--period", type=float, default=0.05, help="seconds between two generations (default 0.05)"
    )
    parser.add_argument("--workdir", help="where disks and repositories go (default: under /var/tmp)")
    args = parser.parse_args()
    size = args.size or (64 * MiB if args.quick else 512 * MiB)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3: a min, median and max of fewer say nothing")
    rounds = args.rounds
    # SIGTERM (a test's timeout) unwinds like Ctrl-C: the domain is destroyed, daemons stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    root = Path(tempfile.mkdtemp(prefix="bo-kvm-bench-", dir=args.workdir or "/var/tmp"))  # noqa: S108
    try:
        started = time.perf_counter()
        with libvirtd() as daemons, running_domain(root, size) as domain:
            found = versions()
            log(
                f"domain {domain.name}: 4 qcow2 disks of {size / MiB:.0f} MiB, running under TCG "
                f"(set up in {time.perf_counter() - started:.1f} s; daemons started here: "
                f"{', '.join(daemons) or 'none'}; {', '.join(f'{k} {v}' for k, v in found.items())})"
            )
            results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            order = [rotation(round_no) for round_no in range(rounds)]
            with GenerationWriter(domain, args.period) as writer:
                for round_no, modes in enumerate(order):
                    for mode in modes:
                        r = one_backup(mode, root, domain, writer, round_no)
                        results[mode].append(r)
                        log(
                            f"{mode:>12} round {round_no + 1}: {r['seconds']:6.2f} s, skew "
                            f"{r['skew_s']:.3f} s (at most {r['skew_max_s']:.3f} s), generations "
                            + " ".join(f"{t}={g}" for t, g in r["generations"].items())
                            + "; "
                            + ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in r["phases"].items())
                        )
                period = writer.measured_period()
                stamps = writer.generation
            left = domain.overlays()
            sources = domain.sources()
            on_originals = sources == {t: str(p) for t, p in domain.disks.items()} and not left
            if not on_originals:
                raise RuntimeError(f"domain not back on its disks: {sources}, overlays {left}")
        summary = summarize(results, order, size, period, stamps, time.perf_counter() - started)
        summary["baselines"] = describe_baselines(found, size)
        if args.json:
            print(json.dumps(summary, sort_keys=True))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def spread(values: list[float], digits: int = 3) -> dict[str, float]:
    """One figure over the rounds."""
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


FIGURES = ("seconds", "skew_s", "skew_max_s", "skew_generations", "freeze_spread_s")


def summarize(
    results: dict[str, list[dict[str, Any]]],
    order: list[list[str]],
    size: int,
    period: float,
    stamps: int,
    total: float,
) -> dict[str, Any]:
    """Every figure of every way as min / median / max over the rounds; ratios per round (both
    ways ran in the same round, under the same load), then spread the same way."""
    summary: dict[str, Any] = {"rounds": len(order), "order": order}
    for mode in MODES:
        for key in FIGURES:
            summary[f"{mode}_{key}"] = spread([r[key] for r in results[mode]])
        summary[f"{mode}_phases_s"] = {
            k: spread([r["phases"][k] for r in results[mode]]) for k in (*PHASES, "other_s")
        }
        summary[f"{mode}_one_instant"] = all(r["one_instant"] for r in results[mode])
    for mode in ("back_to_back", "sequential"):
        summary[f"{mode}_vs_group_seconds"] = spread(
            [b["seconds"] / g["seconds"] for b, g in zip(results[mode], results["group"], strict=True)], 2
        )
    summary["params"] = {
        "disks": len(TARGETS),
        "disk_bytes": size,
        "generation_period_s": round(period, 4),
        "generations_written": stamps,
        "cpus": os.cpu_count(),
    }
    summary["bench_s"] = round(total, 1)
    for mode in MODES:
        seconds, skew_s = summary[f"{mode}_seconds"], summary[f"{mode}_skew_s"]
        log(
            f"{mode:>12}: {seconds['median']:.2f} s ({seconds['min']:.2f}-{seconds['max']:.2f}), "
            f"skew {skew_s['median']:.3f} s ({skew_s['min']:.3f}-{skew_s['max']:.3f}), one instant: "
            + ("yes" if summary[f"{mode}_one_instant"] else "no")
            + (
                f", {summary[f'{mode}_vs_group_seconds']['median']}x the group's time"
                if mode != "group"
                else ""
            )
        )
    return summary


if __name__ == "__main__":
    main()
