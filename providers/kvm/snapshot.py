"""One crash-consistent (or quiesced) point-in-time image of all of a running domain's disks.

``KvmSnapshot`` is a NAS ``SnapshotSource``: for a running domain it creates ONE libvirt
disk-only, atomic, external snapshot of every volume (``virsh snapshot-create-as --disk-only
--atomic --no-metadata``). From that instant the domain writes to new qcow2 overlays and the
original image files no longer change, so the data mover reads the originals. When the
capture ends — however it ends — each overlay is merged back (``virsh blockcommit --active
--shallow --pivot --wait``) and deleted.

Overlays are named ``<image file name>.bo-<point id>.qcow2`` beside their image, which is how
``repair`` recognises what a killed worker left behind: every capture begins by repairing the
domain, so the next job cleans up after a crashed one. A domain that was shut down while on
an overlay is repaired offline (``qemu-img commit`` and the persistent definition pointed
back at the original image).

Invariants, in order of importance:

- an overlay the domain (live or persistent definition) still uses is never deleted;
- the domain is never left on an overlay by a capture that returned, normally or not —
  if merging fails the capture raises, and the next ``repair`` tries again;
- ``--shallow`` always: a commit without it would flatten the whole chain into its deepest
  image, i.e. write the VM's data into a shared template.

The images the data mover reads must be reachable under the same paths on the worker (a
local host, or primary storage mounted at the same path), as for the NAS driver itself.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Only to serialise a tree that defusedxml parsed; never to parse.
from xml.etree.ElementTree import tostring as xml_tostring

import defusedxml.ElementTree as SafeET

from orchestrator.domain.errors import ProviderError
from providers.base import VMRef, VolumeRef
from providers.kvm.domains import Domain, Libvirt, parse_domain_xml
from providers.kvm.transport import CommandFailed, CommandResult
from providers.nas.snapshot import Capture, SnapshotSource, SourceImage

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

log = logging.getLogger(__name__)

OVERLAY_INFIX = ".bo-"
_OVERLAY = re.compile(r"^(?P<base>.+)\.bo-(?P<point>[A-Za-z0-9][A-Za-z0-9._-]*)\.qcow2$")
_POINT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# The state in which no QEMU process holds the images: blockcommit is impossible, the files are
# at rest. Not "crashed": with on_crash=preserve the process (and its open images) lives on.
OFFLINE_STATES = frozenset({"shut off"})
# virsh prints labels and errors through gettext; we match its C-locale text.
_VIRSH = ("env", "LC_ALL=C", "virsh")
_NO_SUCH_DOMAIN = b"failed to get domain"

CONSISTENCY_QUIESCED = "libvirt+quiesce"
CONSISTENCY_CRASH = "libvirt"
CONSISTENCY_STOPPED = "stopped"


def overlay_path(image: str, point_id: str) -> str:
    """Where the overlay of ``image`` for restore point ``point_id`` goes: beside the image, so
    it lands on the same storage (and the same pool's free space)."""
    if not _POINT.match(point_id):
        raise ProviderError(f"restore point id {point_id!r} is not usable in a file name", retryable=False)
    return f"{image}{OVERLAY_INFIX}{point_id}.qcow2"


def parse_overlay(path: str) -> tuple[str, str] | None:
    """(original image path, point id) if ``path`` is named like one of our overlays."""
    found = _OVERLAY.match(path)
    return (found["base"], found["point"]) if found else None


@dataclass(frozen=True)
class KvmSnapshotOptions:
    # Take a crash-consistent snapshot when a quiesced one was asked for but cannot be had
    # (no guest agent, or the agent failed to freeze); otherwise such a backup fails.
    quiesce_fallback: bool = False
    command_timeout_s: float = 60.0
    # One disk's merge back; virsh aborts the job cleanly (domain stays on the overlay, still
    # consistent, repaired next time) rather than being killed mid-pivot.
    commit_timeout_s: float = 900.0


@dataclass(frozen=True)
class LiveDisk:
    """A disk as the live XML shows it: the image written now and the one right below it."""

    target: str
    path: str | None
    format: str | None
    backing: str | None
    backing_format: str | None
    device: str
    readonly: bool
    source_type: str

    @property
    def leftover(self) -> tuple[str, str] | None:
        """(original, point id) when the disk runs on an overlay of ours over its original."""
        if self.path is None:
            return None
        parsed = parse_overlay(self.path)
        if parsed is None or parsed[0] != self.backing:
            # Named like ours but not over the image the name says: not ours to merge.
            return None
        return parsed

    @property
    def original(self) -> str | None:
        """The image the inventory knows: below our overlay if the disk is on one."""
        found = self.leftover
        return found[0] if found else self.path


@dataclass(frozen=True)
class Repaired:
    target: str
    overlay: str
    original: str
    point_id: str
    offline: bool


def _disk_chain(el: Element) -> tuple[str | None, str | None]:
    """The path and format of the image right below a disk's active one."""
    backing = el.find("backingStore")
    if backing is None:
        return None, None
    src = backing.find("source")
    fmt = backing.find("format")
    return (
        src.get("file") if src is not None else None,
        fmt.get("type") if fmt is not None else None,
    )


def _xml_root(xml: str) -> Element:
    # parse_domain_xml has already refused DTDs and entities in the same document.
    return SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)


def live_disks(xml: str) -> list[LiveDisk]:
    domain = parse_domain_xml(xml)
    devices = _xml_root(xml).find("devices")
    elements = [] if devices is None else devices.findall("disk")
    disks = []
    for disk, el in zip(domain.disks, elements, strict=True):
        backing, backing_format = _disk_chain(el)
        disks.append(
            LiveDisk(
                target=disk.target,
                path=disk.path,
                format=disk.format,
                backing=backing,
                backing_format=backing_format,
                device=disk.device,
                readonly=disk.readonly,
                source_type=disk.source_type,
            )
        )
    return disks


def referenced_files(xml: str) -> set[str]:
    """Every file any disk's chain names, at any depth: none of these may be deleted."""
    return {src.get("file", "") for src in _xml_root(xml).iter("source") if src.get("file")}


def _diskspec(target: str, *options: str) -> str:
    # virsh splits --diskspec on commas; a literal comma in a path is written twice.
    return ",".join([target, *(o.replace(",", ",,") for o in options)])


class DomainOps:
    """The virsh and qemu-img commands on one domain of one host."""

    def __init__(self, libvirt: Libvirt, domain: str, options: KvmSnapshotOptions) -> None:
        self.libvirt = libvirt
        self.domain = domain
        self.options = options

    # -- plain commands

    def virsh(self, *args: str, timeout: float | None = None, check: bool = True) -> CommandResult:
        argv = (*_VIRSH, "-c", self.libvirt.uri, *args)
        return self.libvirt.transport.run(
            argv, timeout=timeout or self.options.command_timeout_s, check=check
        )

    def run(self, *argv: str, timeout: float | None = None, check: bool = True) -> CommandResult:
        return self.libvirt.transport.run(
            argv, timeout=timeout or self.options.command_timeout_s, check=check
        )

    def xml(self, *, inactive: bool = False) -> str:
        return self.virsh("dumpxml", *(["--inactive"] if inactive else []), "--", self.domain).text

    def state(self) -> str:
        lines = self.virsh("domstate", "--", self.domain).text.strip().splitlines()
        return lines[0].strip() if lines else "unknown"

    def describe(self) -> tuple[Domain, list[LiveDisk], str]:
        xml = self.xml()
        state = self.state()
        return parse_domain_xml(xml, state), live_disks(xml), state

    # -- snapshot

    def snapshot(self, specs: Sequence[str], *, quiesce: bool) -> None:
        argv = ["snapshot-create-as", "--domain", self.domain, "--disk-only", "--atomic", "--no-metadata"]
        if quiesce:
            argv.append("--quiesce")
        for spec in specs:
            argv += ["--diskspec", spec]
        self.virsh(*argv)

    # -- merging back

    def commit_live(self, disk: LiveDisk) -> None:
        """Merge the active overlay of ``disk`` into the image below it and pivot onto that image."""
        if self._settle_block_job(disk.target):
            return
        self.virsh(
            "blockcommit",
            self.domain,
            disk.target,
            "--active",
            "--shallow",
            "--pivot",
            "--wait",
            "--timeout",
            str(max(1, int(self.options.commit_timeout_s))),
            timeout=self.options.commit_timeout_s + self.options.command_timeout_s,
        )

    def _settle_block_job(self, target: str) -> bool:
        """A killed worker may have left a commit job behind: pivot it if it is done, else
        abort it (the domain stays on the overlay, consistent) so a fresh commit can start.
        True when that pivot finished the merge."""
        raw = self.virsh("blockjob", self.domain, target, "--raw", check=False)
        if raw.exit_status != 0 or "type=" not in raw.text:
            return False
        fields = dict(line.strip().split("=", 1) for line in raw.text.splitlines() if "=" in line)
        log.warning("domain %s disk %s has a leftover block job: %s", self.domain, target, fields)
        if fields.get("type") == "Active Block Commit" and fields.get("cur") == fields.get("end"):
            pivot = self.virsh("blockjob", self.domain, target, "--pivot", check=False)
            if pivot.exit_status == 0:
                return True
        self.virsh("blockjob", self.domain, target, "--abort", timeout=self.options.commit_timeout_s)
        return False

    def commit_offline(self, leftovers: Sequence[tuple[LiveDisk, str]]) -> None:
        """Merge overlays of a shut-off domain with qemu-img and point its definition back."""
        for disk, _original in leftovers:
            assert disk.path is not None
            # Into the immediate backing file only (qemu-img commit's default base). The
            # overlay is emptied but stays valid, so a VM started meanwhile loses nothing.
            self.run(
                "qemu-img",
                "commit",
                "-q",
                "-f",
                "qcow2",
                "--",
                disk.path,
                timeout=self.options.commit_timeout_s,
            )
        inactive = self.xml(inactive=True)
        fixed = repoint_definition(inactive, {d.path: (o, d.backing_format) for d, o in leftovers if d.path})
        # Started while we merged? Then libvirt owns the images again; the next repair
        # merges live instead of us rewriting a definition under a running domain.
        if self.state() not in OFFLINE_STATES:
            raise ProviderError(
                f"domain {self.domain} was started while its overlays were merged offline; "
                "the next backup repairs it",
                retryable=True,
            )
        self.libvirt.transport.run(
            (*_VIRSH, "-c", self.libvirt.uri, "define", "/dev/stdin"),
            timeout=self.options.command_timeout_s,
            input=fixed.encode(),
        )

    # -- files

    def remove(self, path: str) -> None:
        self.run("rm", "-f", "--", path)

    def overlay_files(self, directory: str) -> list[str]:
        """Files named like our overlays in ``directory`` (found by name, filtered here, so no
        glob pattern ever carries a path)."""
        found = self.run(
            "find",
            directory,
            "-maxdepth",
            "1",
            "-type",
            "f",
            "-name",
            "*.bo-*.qcow2",
            "-print0",
            check=False,
        )
        if found.exit_status != 0:
            log.info("cannot list %s on %s: %s", directory, self.libvirt.transport.name, found.stderr[-300:])
            return []
        return [p for p in found.stdout.decode(errors="surrogateescape").split("\0") if p]


def repoint_definition(xml: str, moves: dict[str, tuple[str, str | None]]) -> str:
    """The inactive definition with each disk on an overlay (key) moved back to its original
    image (path, format), its overlay's backingStore dropped."""
    root = _xml_root(xml)
    for el in root.iterfind("devices/disk"):
        src = el.find("source")
        if src is None or src.get("file") not in moves:
            continue
        original, fmt = moves[src.get("file", "")]
        src.set("file", original)
        for attr in ("index",):
            src.attrib.pop(attr, None)
        backing = el.find("backingStore")
        if backing is not None:
            el.remove(backing)
        driver = el.find("driver")
        if driver is not None and fmt:
            driver.set("type", fmt)
    return xml_tostring(root, encoding="unicode")


class KvmSnapshot(SnapshotSource):
    """Point-in-time images of a domain's volumes through libvirt external snapshots."""

    def __init__(
        self,
        connect: Callable[[VMRef], Libvirt],
        options: KvmSnapshotOptions | None = None,
    ) -> None:
        self.connect = connect
        self.options = options or KvmSnapshotOptions()

    # -- finding the domain

    def ops(self, vm: VMRef) -> DomainOps:
        libvirt = self.connect(vm)
        candidates = [str(c) for c in (vm.details.get("domain"), vm.id, vm.details.get("instance_name")) if c]
        for candidate in dict.fromkeys(candidates):
            ops = DomainOps(libvirt, candidate, self.options)
            result = ops.virsh("domuuid", "--", candidate, check=False)
            if result.exit_status == 0 and result.text.strip():
                return DomainOps(libvirt, result.text.strip(), self.options)
            if _NO_SUCH_DOMAIN not in result.stderr:
                raise CommandFailed(
                    f"looking up domain {candidate} on {libvirt.transport.name} failed: "
                    f"{result.stderr.decode(errors='replace').strip()[-500:]}",
                    exit_status=result.exit_status,
                    stderr=result.stderr,
                )
        raise ProviderError(
            f"VM {vm.name}: no libvirt domain {' or '.join(dict.fromkeys(candidates))} on "
            f"{libvirt.transport.name} ({libvirt.uri})",
            retryable=False,
        )

    # -- repair

    def repair(self, vm: VMRef) -> list[Repaired]:
        """Merge back every overlay of ours the domain still runs on (any restore point) and
        delete the overlay files it no longer uses; returns what was merged."""
        return self._release(self.ops(vm), vm, point_id=None)

    def _release(self, ops: DomainOps, vm: VMRef, point_id: str | None) -> list[Repaired]:
        """Idempotent: with nothing left over it only looks."""
        _domain, disks, state = ops.describe()
        offline = state in OFFLINE_STATES
        leftovers = [
            (d, found[0])
            for d in disks
            if (found := d.leftover) is not None and (point_id is None or found[1] == point_id)
        ]
        repaired = []
        failures = []
        if offline and leftovers:
            ops.commit_offline(leftovers)
        for disk, original in leftovers:
            assert disk.path is not None
            if not offline:
                try:
                    ops.commit_live(disk)
                except ProviderError as exc:
                    failures.append(f"{disk.target}: {exc.message}")
                    continue
            parsed = parse_overlay(disk.path)
            assert parsed is not None
            repaired.append(Repaired(disk.target, disk.path, original, parsed[1], offline))
            log.info(
                "domain %s disk %s merged %s back into %s%s",
                ops.domain,
                disk.target,
                disk.path,
                original,
                " (offline)" if offline else "",
            )
        self._remove_unused_overlays(ops, disks, point_id)
        if failures:
            raise ProviderError(
                f"domain {ops.domain} is still running on overlays ({'; '.join(failures)}); "
                "the next backup of this VM retries merging them",
                retryable=True,
            )
        # A pivot that libvirt reported but that did not take would leave the domain on an
        # overlay whose file we would otherwise keep forever: check the outcome.
        still = [
            d.target
            for d in live_disks(ops.xml())
            if (found := d.leftover) is not None and (point_id is None or found[1] == point_id)
        ]
        if still:
            raise ProviderError(
                f"domain {ops.domain}: disks {', '.join(still)} are still on overlays after merging",
                retryable=True,
            )
        return repaired

    def _remove_unused_overlays(
        self, ops: DomainOps, disks: Sequence[LiveDisk], point_id: str | None
    ) -> None:
        in_use = referenced_files(ops.xml())
        with contextlib.suppress(CommandFailed):
            # The persistent definition decides what the next start opens: keep its files too.
            in_use |= referenced_files(ops.xml(inactive=True))
        originals = {d.original for d in disks if d.original}
        for directory in sorted({posixpath.dirname(p) for p in originals}):
            for path in ops.overlay_files(directory):
                parsed = parse_overlay(path)
                if parsed is None or parsed[0] not in originals or path in in_use:
                    continue
                if point_id is not None and parsed[1] != point_id:
                    continue
                ops.remove(path)
                log.info("removed unused overlay %s of domain %s", path, ops.domain)

    # -- capture

    @contextmanager
    def capture(self, vm: VMRef, point_id: str, *, quiesce: bool = False) -> Iterator[Capture]:
        ops = self.ops(vm)
        # Whatever a killed worker left on this domain first: never stack overlays.
        self._release(ops, vm, point_id=None)
        domain, disks, state = ops.describe()
        matched = _match_volumes(vm, domain, disks)
        if state in OFFLINE_STATES:
            yield Capture(
                {v.id: SourceImage(d.path or v.path, d.format or v.format) for v, d in matched},
                CONSISTENCY_STOPPED,
            )
            # Started while its files were read in place: those reads may be torn.
            if (now := ops.state()) not in OFFLINE_STATES:
                raise ProviderError(
                    f"VM {vm.name} was started ({now}) while its stopped disks were read; retry",
                    retryable=True,
                )
            return
        overlays = {d.target: overlay_path(d.path or "", point_id) for _, d in matched}
        volume_targets = set(overlays)
        specs = [
            _diskspec(d.target, "snapshot=external", "driver=qcow2", f"file={overlays[d.target]}")
            for _, d in matched
        ]
        # A writable disk the inventory does not know is left out explicitly: without a spec
        # libvirt would snapshot it too, with an overlay name of its own choosing.
        specs += [
            _diskspec(d.target, "snapshot=no")
            for d in disks
            if d.target not in volume_targets and d.device == "disk" and not d.readonly
        ]
        try:
            consistency = self._snapshot(ops, vm, specs, quiesce and self._can_quiesce(vm, domain))
            yield Capture(
                {v.id: SourceImage(d.path or v.path, d.format or v.format) for v, d in matched},
                consistency,
            )
            self._check_still_frozen(ops, overlays)
        except BaseException as exc:
            try:
                self._release(ops, vm, point_id)
            except Exception as cleanup:  # the original failure stays the job's error
                log.error("cleaning up after a failed backup of %s: %s", vm.name, cleanup)
                exc.add_note(f"and cleaning up failed: {cleanup}")
            raise
        else:
            self._release(ops, vm, point_id)

    def _can_quiesce(self, vm: VMRef, domain: Domain) -> bool:
        if domain.has_guest_agent:
            return True
        # The framework asks every backup of a quiescing provider to quiesce; a domain with
        # no agent channel cannot, so it gets a crash-consistent snapshot, and the manifest
        # records that (consistency "libvirt", not "libvirt+quiesce").
        log.info("VM %s has no guest agent channel: taking a crash-consistent snapshot", vm.name)
        return False

    def _snapshot(self, ops: DomainOps, vm: VMRef, specs: Sequence[str], quiesce: bool) -> str:
        # Stale overlay files (a crashed attempt of this very point would make the snapshot
        # fail) were removed by the repair that every capture starts with.
        if quiesce:
            try:
                ops.snapshot(specs, quiesce=True)
                return CONSISTENCY_QUIESCED
            except CommandFailed as exc:
                if not self.options.quiesce_fallback:
                    raise ProviderError(
                        f"VM {vm.name}: the guest agent could not quiesce the file systems: {exc.message}",
                        retryable=True,
                    ) from exc
                log.warning("VM %s: quiescing failed, taking a crash-consistent snapshot: %s", vm.name, exc)
                # --atomic: nothing was changed, but libvirt may have left the new files.
                self._remove_unused_overlays(ops, ops.describe()[1], None)
        ops.snapshot(specs, quiesce=False)
        return CONSISTENCY_CRASH

    def _check_still_frozen(self, ops: DomainOps, overlays: dict[str, str]) -> None:
        """Something merged our overlays while the images were read (another job's repair,
        an operator): the reads may be torn, and the point must not be recorded."""
        current = {d.target: d.path for d in live_disks(ops.xml())}
        moved = [t for t, path in overlays.items() if current.get(t) != path]
        if moved:
            raise ProviderError(
                f"domain {ops.domain}: disks {', '.join(moved)} left their snapshot overlays while being "
                "read (merged by someone else?); the images read may not be one point in time",
                retryable=True,
            )


def _match_volumes(vm: VMRef, domain: Domain, disks: Sequence[LiveDisk]) -> list[tuple[VolumeRef, LiveDisk]]:
    """Each volume with the domain's disk at the same path, in the domain's device order."""
    by_path = {d.path: d for d in disks if d.path}
    matched = []
    missing = []
    for volume in vm.volumes:
        disk = by_path.get(volume.path)
        if disk is None:
            missing.append(volume.path)
            continue
        if disk.source_type != "file":
            raise ProviderError(
                f"VM {vm.name}: disk {disk.target} is a {disk.source_type} disk; the kvm driver "
                "snapshots file-backed disks only",
                retryable=False,
            )
        matched.append((volume, disk))
    if missing:
        known = ", ".join(f"{d.target}={d.path}" for d in disks if d.path) or "none"
        raise ProviderError(
            f"VM {vm.name}: volumes {', '.join(missing)} are not disks of domain {domain.name} "
            f"(its disks: {known}); re-discover the VM",
            retryable=False,
        )
    order = {d.target: i for i, d in enumerate(disks)}
    return sorted(matched, key=lambda pair: order[pair[1].target])
