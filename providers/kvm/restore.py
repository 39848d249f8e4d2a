"""Restores on KVM: a whole VM in place, one volume attached to another VM, a VM as a new domain.

The NAS data mover writes every image (to a temporary file, verified chunk by chunk against
the manifest, then renamed over its destination); this module does what only libvirt can:

- **in place**: the domain's disks are checked against what the restore point holds (the
  same image paths, on the same targets) *before* anything changes; a running domain is
  shut down (a short ``virsh shutdown`` grace, then ``virsh destroy``: a guest without an OS
  or without ACPI never goes down gracefully), the images written, and the domain started
  again. The definition is never edited, so whatever fails, the domain stays defined on
  its original disks, and the error says that it is stopped.
- **one volume**: written as a new image, then ``virsh attach-disk`` at the next free target
  of the same bus family (``vdc`` after ``vda`` and ``vdb``).
- **a new VM**: the volumes written to the target's new paths, then a domain defined from
  the restore point's stored XML (``VMRef.details["xml"]``, kept by ingestion) with a new
  UUID, name, MAC addresses and disk paths, and left shut off. Without stored XML a minimal
  domain is built from the VMRef.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import time
import uuid as uuidlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only to build and serialise trees; every document from outside is parsed with defusedxml.
from xml.etree.ElementTree import Element, SubElement
from xml.etree.ElementTree import tostring as xml_tostring

import defusedxml.ElementTree as SafeET

from orchestrator.domain.errors import ProviderError
from providers.base import Progress, RestorePointRef, VMRef, VolumeRef
from providers.hypervisor import vm_details
from providers.kvm.domains import Disk, Domain, Libvirt, parse_domain_xml
from providers.kvm.snapshot import OFFLINE_STATES, DomainOps, KvmSnapshot, KvmSnapshotOptions
from providers.kvm.transport import CommandFailed

if TYPE_CHECKING:
    from providers.nas.driver import NasProvider

log = logging.getLogger(__name__)

_VIRSH = ("env", "LC_ALL=C", "virsh")
_NO_SUCH_DOMAIN = b"failed to get domain"
# Target name prefix of each bus family; scsi, sata and usb disks all share "sd".
BUS_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd", "fdc": "fd", "xen": "xvd"}
_TARGET = re.compile(r"^(?P<prefix>xvd|ubd|vd|sd|hd|fd)(?P<letters>[a-z]+)$")
_POLL_S = 0.25
# A domain in these states before an in-place restore is started again after it; a crashed
# one (kept by on_crash=preserve) or one already shutting down is left stopped.
RESTART_STATES = frozenset({"running", "paused"})


@dataclass(frozen=True)
class RestoreOptions:
    # How long a running domain gets to shut down through ACPI before it is destroyed. Short
    # by default: a guest that ignores ACPI (no OS, no acpid) would only make us wait.
    shutdown_timeout_s: float = 10.0


# -- target names --------------------------------------------------------------------------------


def target_index(name: str) -> tuple[str, int] | None:
    """("vd", 2) for "vdc": libvirt's own numbering (vdz is 25, vdaa 26)."""
    found = _TARGET.match(name)
    if not found:
        return None
    index = 0
    for letter in found["letters"]:
        index = index * 26 + (ord(letter) - ord("a") + 1)
    return found["prefix"], index - 1


def target_name(prefix: str, index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return prefix + letters


def next_free_target(used: Sequence[str], bus: str) -> str:
    """The lowest target of the bus family that no disk (of any kind) of the domain uses."""
    prefix = BUS_PREFIX.get(bus, "vd")
    taken = {found[1] for name in used if (found := target_index(name)) and found[0] == prefix}
    return target_name(prefix, next(i for i in range(len(taken) + 1) if i not in taken))


def _order_key(target: str) -> tuple[str, int]:
    return target_index(target) or (target, 0)


# -- checking the domain against the restore point -------------------------------------------------


def recorded_targets(meta: VMRef) -> dict[str, Disk]:
    """path -> disk (target, bus) as the restore point's stored domain XML had them, if it has one."""
    xml = meta.details.get("xml")
    if not xml:
        return {}
    try:
        return {d.path: d for d in parse_domain_xml(str(xml)).disks if d.path and d.device == "disk"}
    except ProviderError as exc:
        log.warning("VM %s: stored domain XML unusable (%s); checking device order only", meta.name, exc)
        return {}


def pair_volumes(point_vm: VMRef, target: VMRef) -> list[tuple[VolumeRef, VolumeRef]]:
    """Each volume of the restore point with the target's volume of the same id, else of the
    same device id (the data mover pairs them the same way; never by list position)."""
    return target.pair(
        point_vm.volumes,
        lambda volume: (
            f"restore point of {point_vm.name} has volume {volume.name or volume.id} "
            f"(device {volume.device_id}), which VM {target.name} has no volume for; nothing was changed"
        ),
    )


def disk_mismatches(point_vm: VMRef, target: VMRef, disks: Sequence[Disk], definition: str) -> list[str]:
    """What differs between the domain's disks and the restore point; empty when they agree.

    Every destination must be a file disk of the domain (anything else would restore files
    the VM does not use). Unless the target paths were given explicitly (they differ from
    the restore point's), each image must also be on the target it had at backup time -
    exactly, where the stored XML says which, else in the same device order.
    """
    pairs = pair_volumes(point_vm, target)
    by_path = {d.path: d for d in disks if d.path}
    shown = ", ".join(f"{d.target}={d.path}" for d in disks if d.path and d.device == "disk") or "none"
    problems = []
    found: list[tuple[VolumeRef, Disk]] = []
    for volume, dest in pairs:
        disk = by_path.get(dest.path)
        if disk is None or disk.device != "disk":
            label = volume.name or volume.id
            problems.append(f"{dest.path} (volume {label}) is not a disk of the {definition}")
        elif disk.source_type != "file":
            problems.append(f"{disk.target} is a {disk.source_type} disk; only file disks are restored")
        else:
            found.append((volume, disk))
    explicit = any(volume.path != dest.path for volume, dest in pairs)
    if not explicit:
        recorded = recorded_targets(point_vm)
        for volume, disk in found:
            was = recorded.get(volume.path)
            if was is not None and was.target != disk.target:
                problems.append(
                    f"{volume.path} was {was.target} in the restore point but is {disk.target} now"
                )
        if not recorded:
            # No stored XML: at least the images must keep their device order.
            by_device = sorted(found, key=lambda pair: pair[0].device_id)
            targets = [disk.target for _, disk in by_device]
            if targets != sorted(targets, key=_order_key):
                problems.append(
                    "device order differs: the restore point's volumes by device id are on "
                    + ", ".join(f"{d.target}={v.path}" for v, d in by_device)
                )
    if problems:
        problems.append(f"the {definition} has {shown}")
    return problems


# -- building a new domain definition --------------------------------------------------------------


def random_mac(rng: random.Random | None = None) -> str:
    """52:54:00:xx:xx:xx - QEMU's locally administered prefix, as libvirt itself assigns."""
    rng = rng or random.SystemRandom()
    return "52:54:00:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))


@dataclass(frozen=True)
class NewDisk:
    path: str
    format: str
    old_path: str
    device_id: int


def new_domain_xml(
    meta: VMRef,
    disks: Sequence[NewDisk],
    *,
    name: str,
    uuid: str,
    keep_macs: bool = False,
    domain_type: str = "kvm",
) -> str:
    """The restore point's domain redefined onto ``disks`` (matched by the old image path, so
    each lands on the target it had), with the given name and UUID and fresh MACs."""
    xml = meta.details.get("xml")
    root = _stored_root(str(xml)) if xml else _minimal_root(meta, domain_type)
    # A live dump names the running instance (id='5'); a definition must not.
    root.attrib.pop("id", None)
    _set_text(root, "name", name)
    _set_text(root, "uuid", uuid)
    # CloudStack (and others) put the UUID in SMBIOS too; libvirt refuses a mismatch.
    for entry in root.iterfind("sysinfo/system/entry"):
        if entry.get("name") == "uuid":
            entry.text = uuid
    devices = root.find("devices")
    if devices is None:
        devices = SubElement(root, "devices")
    by_old = {d.old_path: d for d in disks}
    placed: set[str] = set()
    used_targets: list[str] = []
    for el in list(devices.findall("disk")):
        source = el.find("source")
        path = source.get("file") if source is not None else None
        target = el.find("target")
        readonly = el.find("readonly") is not None or el.get("device", "disk") != "disk"
        new = by_old.get(path or "")
        if new is None:
            if not readonly and path:
                # A writable image the restore point does not hold: the new domain must never
                # share it with the original.
                log.warning("VM %s: disk %s (%s) is not in the restore point; left out", name, path, target)
                devices.remove(el)
            elif target is not None:
                used_targets.append(target.get("dev", ""))
            continue
        _point_disk(el, new)
        placed.add(new.old_path)
        if target is not None:
            used_targets.append(target.get("dev", ""))
    for new in sorted(disks, key=lambda d: d.device_id):
        if new.old_path in placed:
            continue
        # Known to the restore point but not to the stored XML (attached after import).
        dev = next_free_target(used_targets, "virtio")
        used_targets.append(dev)
        el = SubElement(devices, "disk", type="file", device="disk")
        SubElement(el, "driver", name="qemu", type=new.format)
        SubElement(el, "source", file=new.path)
        SubElement(el, "target", dev=dev, bus="virtio")
    for iface in devices.findall("interface"):
        _fresh_interface(iface, keep_macs=keep_macs)
    _drop_instance_paths(root, devices)
    return xml_tostring(root, encoding="unicode")


def _stored_root(xml: str) -> Element:
    parse_domain_xml(xml)  # refuses DTDs, entities and documents that are not domains, with reasons
    return SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)


def _minimal_root(meta: VMRef, domain_type: str) -> Element:
    details: Mapping[str, Any] = meta.details
    root = Element("domain", type=domain_type)
    SubElement(root, "name")
    SubElement(root, "uuid")
    memory = int(details.get("memory_bytes") or 512 * 2**20)
    SubElement(root, "memory", unit="KiB").text = str(max(memory // 1024, 1024))
    SubElement(root, "vcpu").text = str(int(details.get("vcpus") or 1))
    os_el = SubElement(root, "os")
    SubElement(os_el, "type").text = "hvm"
    SubElement(os_el, "boot", dev="hd")
    features = SubElement(root, "features")
    SubElement(features, "acpi")
    devices = SubElement(root, "devices")
    for nic in details.get("nics") or ():
        kind = nic.get("kind") if nic.get("kind") in ("network", "bridge") else None
        if kind is None or not nic.get("source"):
            continue
        iface = SubElement(devices, "interface", type=kind)
        SubElement(iface, "mac", address=str(nic.get("mac") or random_mac()))
        SubElement(iface, "source", {kind: str(nic["source"])})
        if nic.get("model"):
            SubElement(iface, "model", type=str(nic["model"]))
    return root


def _set_text(root: Element, tag: str, text: str) -> None:
    el = root.find(tag)
    if el is None:
        el = SubElement(root, tag)
    el.text = text


def _point_disk(el: Element, new: NewDisk) -> None:
    source = el.find("source")
    if source is None:
        source = SubElement(el, "source")
    # The restored image is a flat file: no chain below it, no index from a live dump.
    source.attrib.clear()
    source.set("file", new.path)
    el.set("type", "file")
    backing = el.find("backingStore")
    if backing is not None:
        el.remove(backing)
    driver = el.find("driver")
    if driver is None:
        driver = SubElement(el, "driver", name="qemu")
    driver.set("type", new.format)
    alias = el.find("alias")
    if alias is not None:
        el.remove(alias)


def _fresh_interface(iface: Element, *, keep_macs: bool) -> None:
    mac = iface.find("mac")
    if not keep_macs:
        if mac is None:
            mac = SubElement(iface, "mac")
        mac.set("address", random_mac())
    # The host-side tap device and alias belong to the running original.
    for tag in ("target", "alias"):
        found = iface.find(tag)
        if found is not None:
            iface.remove(found)


def _drop_instance_paths(root: Element, devices: Element) -> None:
    """Paths libvirt derives from the domain's name: shared with the original they would clash."""
    for channel in devices.findall("channel"):
        source = channel.find("source")
        if channel.get("type") == "unix" and source is not None:
            source.attrib.pop("path", None)
    nvram = root.find("os/nvram")
    if nvram is not None:
        # libvirt creates a new variable store (from the template) for the new name.
        nvram.text = None
    seclabel = root.find("seclabel")
    if seclabel is not None and seclabel.get("type") == "dynamic":
        for tag in ("label", "imagelabel"):
            found = seclabel.find(tag)
            if found is not None:
                seclabel.remove(found)


# -- the restores ----------------------------------------------------------------------------------


class KvmRestore:
    """Restores through the NAS data mover, with the domain handled around them."""

    def __init__(
        self,
        snapshots: KvmSnapshot,
        nas: NasProvider,
        connect: Callable[[VMRef], Libvirt],
        options: KvmSnapshotOptions,
        restore_options: RestoreOptions,
    ) -> None:
        self.snapshots = snapshots
        self.nas = nas
        self.connect = connect
        self.options = options
        self.restore_options = restore_options

    # -- finding domains

    def find(self, vm: VMRef) -> str | None:
        """The UUID of the VM's domain, or None if its host has none."""
        try:
            return self.snapshots.ops(vm).domain
        except CommandFailed:
            raise
        except ProviderError as exc:
            # KvmSnapshot.ops says so when every lookup answered "no such domain".
            if "no libvirt domain" in exc.message:
                return None
            raise

    def _exists(self, libvirt: Libvirt, name_or_uuid: str) -> bool:
        result = libvirt.transport.run(
            (*_VIRSH, "-c", libvirt.uri, "domuuid", "--", name_or_uuid),
            timeout=self.options.command_timeout_s,
            check=False,
        )
        if result.exit_status == 0:
            return True
        if _NO_SUCH_DOMAIN in result.stderr:
            return False
        raise CommandFailed(
            f"looking up domain {name_or_uuid} failed: "
            f"{result.stderr.decode(errors='replace').strip()[-500:]}",
            exit_status=result.exit_status,
            stderr=result.stderr,
        )

    # -- in place

    def in_place(self, point: RestorePointRef, target: VMRef, progress: Progress) -> None:
        ops = self.snapshots.ops(target)
        # A leftover overlay of a killed backup would keep serving old data over the restore.
        self.snapshots.repair(target)
        state = ops.state()
        running = state not in OFFLINE_STATES
        if running and not self._persistent(ops):
            raise ProviderError(
                f"VM {target.name}: domain {ops.domain} is transient; stopping it would undefine it, "
                "so it is not restored in place",
                retryable=False,
            )
        definitions = [("persistent definition", ops.xml(inactive=True))]
        if running:
            definitions.append(("running domain", ops.xml()))
        for what, xml in definitions:
            problems = disk_mismatches(point.vm, target, parse_domain_xml(xml).disks, what)
            if problems:
                raise ProviderError(
                    f"VM {target.name}: the domain's disks differ from restore point {point.id}: "
                    + "; ".join(problems)
                    + ". Nothing was changed; give the target paths explicitly to restore anyway",
                    retryable=False,
                )
        paths = ", ".join(v.path for v in target.volumes)
        writing = False
        try:
            if running:
                self._stop(ops, target)
            writing = True
            self.nas.restore_vm(point, target, progress)
        except Exception as exc:
            message = exc.message if isinstance(exc, ProviderError) else repr(exc)
            now = self._state_after_failure(ops)
            now = "stopped" if now in OFFLINE_STATES else now
            was = f" (it was {state})" if running else ""
            raise ProviderError(
                f"restoring VM {target.name} in place failed: {message}. "
                f"Its domain {ops.domain} is {now}{was}, still defined on its original disks ({paths})"
                + (
                    "; some of them may already hold the restore point, so restore again before starting it"
                    if writing
                    else "; nothing was written"
                ),
                retryable=exc.retryable if isinstance(exc, ProviderError) else True,
            ) from exc
        if state in RESTART_STATES:
            try:
                ops.virsh("start", "--", ops.domain, *(["--paused"] if state == "paused" else []))
            except ProviderError as exc:
                raise ProviderError(
                    f"VM {target.name} was restored and verified, but starting it again failed, so it is "
                    f"stopped: {exc.message}",
                    retryable=False,
                ) from exc
        log.info("VM %s restored in place from %s (it was %s)", target.name, point.id, state)

    def _state_after_failure(self, ops: DomainOps) -> str:
        try:
            return ops.state()
        except ProviderError as exc:
            return f"in an unknown state ({exc.message})"

    def _persistent(self, ops: DomainOps) -> bool:
        for line in ops.virsh("dominfo", "--", ops.domain).text.splitlines():
            label, _, value = line.partition(":")
            if label.strip() == "Persistent":
                return value.strip() == "yes"
        return True

    def _stop(self, ops: DomainOps, vm: VMRef) -> None:
        """ACPI shutdown for a short grace, then destroy: the images must be at rest."""
        grace = self.restore_options.shutdown_timeout_s
        asked = ops.virsh("shutdown", "--", ops.domain, check=False)
        if asked.exit_status == 0:
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if ops.state() in OFFLINE_STATES:
                    log.info("VM %s shut down for its restore", vm.name)
                    return
                time.sleep(min(_POLL_S, max(deadline - time.monotonic(), 0)))
        else:
            log.info("VM %s refused an ACPI shutdown: %s", vm.name, asked.stderr[-300:])
        # Fails when the domain went down on its own meanwhile; the state says what counts.
        ops.virsh("destroy", "--", ops.domain, check=False)
        state = ops.state()
        if state not in OFFLINE_STATES:
            raise ProviderError(f"VM {vm.name} could not be stopped for its restore", retryable=True)
        log.info("VM %s destroyed for its restore after a %gs shutdown grace", vm.name, grace)

    # -- one volume

    def volume(
        self, point: RestorePointRef, volume: VolumeRef, target: VMRef, progress: Progress
    ) -> VolumeRef:
        ops = self.snapshots.ops(target)  # a missing domain fails before anything is written
        restored = self.nas.restore_volume(point, volume, target, progress)
        try:
            dev = self._attach(ops, point, volume, restored, target)
        except Exception as exc:
            # The framework records no volume for a failed job: the image would be an orphan.
            with contextlib.suppress(OSError):
                os.unlink(restored.path)
            message = exc.message if isinstance(exc, ProviderError) else repr(exc)
            raise ProviderError(
                f"attaching restored volume {restored.path} to VM {target.name} failed: {message}; "
                "the image was removed",
                retryable=exc.retryable if isinstance(exc, ProviderError) else True,
            ) from exc
        log.info("volume %s of %s restored as %s of %s: %s", volume.id, point.id, dev, target.name, restored)
        return restored

    def _attach(
        self, ops: DomainOps, point: RestorePointRef, volume: VolumeRef, restored: VolumeRef, target: VMRef
    ) -> str:
        live = parse_domain_xml(ops.xml())
        inactive = parse_domain_xml(ops.xml(inactive=True))
        used = [d.target for d in (*live.disks, *inactive.disks)]
        original = recorded_targets(point.vm).get(volume.path)
        own = next((d.bus for d in inactive.disks if d.device == "disk" and d.bus), None)
        bus = (original.bus if original else None) or own or "virtio"
        dev = next_free_target(used, bus)
        running = ops.state() not in OFFLINE_STATES
        ops.virsh(
            "attach-disk",
            ops.domain,
            restored.path,
            dev,
            "--driver",
            "qemu",
            "--subdriver",
            restored.format,
            "--targetbus",
            bus,
            "--persistent",
            *(["--live"] if running else []),
        )
        attached = {d.target: d.path for d in parse_domain_xml(ops.xml(inactive=True)).disks}
        if attached.get(dev) != restored.path:
            raise ProviderError(
                f"VM {target.name}: attach-disk reported success but {dev} is {attached.get(dev)!r}",
                retryable=False,
            )
        return dev

    # -- a new domain

    def new_vm(self, point: RestorePointRef, target: VMRef, progress: Progress, *, recreate: bool) -> VMRef:
        """Write the volumes to the target's paths and define a domain on them, shut off; the
        target with the details of that domain (its name, UUID, definition and disks).

        ``recreate``: the VM's own domain is gone (same VM id): it comes back with its old
        name, UUID and MACs. Otherwise the domain is a new one beside the original.
        """
        libvirt: Libvirt = self.connect(target)
        meta = point.vm
        stored = _stored_identity(meta)
        if recreate:
            name, uuid = stored[0], stored[1] or _new_uuid(target.id, ())
        else:
            # The VM's id doubles as its domain's UUID, as ingestion assumes (CloudStack's way).
            name, uuid = target.name, _new_uuid(target.id, (meta.id, stored[1]))
        for taken in (name, uuid):
            if self._exists(libvirt, taken):
                raise ProviderError(
                    f"a domain {taken} already exists on {libvirt.transport.name}; nothing was written",
                    retryable=False,
                )
        pairs = pair_volumes(meta, target)
        if not recreate:
            existing = [dest.path for _, dest in pairs if Path(dest.path).exists()]
            if existing:
                # The data mover renames over its destination: never over someone's image.
                raise ProviderError(
                    f"restore to new VM {name}: {', '.join(existing)} already exist; nothing was written",
                    retryable=False,
                )
        disks = [
            NewDisk(dest.path, dest.format or volume.format, volume.path, dest.device_id)
            for volume, dest in pairs
        ]
        # Only a minimal domain (no stored XML) needs a type chosen here.
        domain_type = "kvm" if meta.details.get("xml") else self._domain_type(libvirt)
        xml = new_domain_xml(meta, disks, name=name, uuid=uuid, keep_macs=recreate, domain_type=domain_type)
        written = False
        try:
            self.nas.restore_vm(point, target, progress)
            written = True
            libvirt.transport.run(
                (*_VIRSH, "-c", libvirt.uri, "define", "/dev/stdin"),
                timeout=self.options.command_timeout_s,
                input=xml.encode(),
            )
            defined = self._check_defined(libvirt, uuid, disks)
        except BaseException:
            if written:
                with contextlib.suppress(ProviderError):
                    libvirt.transport.run(
                        (*_VIRSH, "-c", libvirt.uri, "undefine", "--nvram", "--", uuid),
                        timeout=self.options.command_timeout_s,
                        check=False,
                    )
            if not recreate:
                for disk in disks:
                    with contextlib.suppress(OSError):
                        os.unlink(disk.path)
            raise
        log.info("restore point %s defined as domain %s (%s), shut off", point.id, name, uuid)
        return replace(target, details=vm_details(defined.to_dict(), target.id, target.details))

    def _domain_type(self, libvirt: Libvirt) -> str:
        """kvm where the host has it, else qemu (TCG): a minimal domain must be definable."""
        result = libvirt.transport.run(
            (*_VIRSH, "-c", libvirt.uri, "domcapabilities", "--virttype", "kvm"),
            timeout=self.options.command_timeout_s,
            check=False,
        )
        return "kvm" if result.exit_status == 0 else "qemu"

    def _check_defined(self, libvirt: Libvirt, uuid: str, disks: Sequence[NewDisk]) -> Domain:
        defined = libvirt.domain(uuid)
        paths = {d.path for d in defined.disks if d.path}
        missing = [d.path for d in disks if d.path not in paths]
        if missing:
            raise ProviderError(
                f"domain {uuid} was defined without the restored images {', '.join(missing)}", retryable=False
            )
        return defined


def _is_uuid(value: str) -> bool:
    try:
        uuidlib.UUID(value)
    except ValueError:
        return False
    return True


def _new_uuid(wanted: str, taken: Sequence[str | None]) -> str:
    if _is_uuid(wanted) and wanted not in taken:
        return wanted
    return str(uuidlib.uuid4())


def _stored_identity(meta: VMRef) -> tuple[str, str | None]:
    """(domain name, UUID) the restore point's VM had on its host."""
    xml = meta.details.get("xml")
    if xml:
        with contextlib.suppress(ProviderError):
            parsed = parse_domain_xml(str(xml))
            return parsed.name, parsed.uuid
    return str(meta.details.get("instance_name") or meta.name), meta.id if _is_uuid(meta.id) else None
