"""A KVM host's domains as libvirt describes them, read with ``virsh`` over any Transport.

Everything goes through the ``virsh`` command line rather than libvirt-python so the same
code reads a host over SSH (where only the remote side has libvirt) and locally. The
domain XML comes from the hypervisor and is treated as untrusted input: it is parsed with
defusedxml, and anything that declares a DTD or entities is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import defusedxml
import defusedxml.ElementTree as SafeET

from orchestrator.domain.errors import InvalidArgument, ProviderError
from providers.kvm.transport import CommandFailed, CommandResult, Transport

if TYPE_CHECKING:
    # Only the type: parsing always goes through defusedxml.
    from xml.etree.ElementTree import Element

log = logging.getLogger(__name__)

GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"

# virsh translates its labels ("Capacity:") and domain states ("shut off") through gettext,
# so the output we parse is only stable in the C locale.
_VIRSH = ("env", "LC_ALL=C", "virsh")

# What virsh prints when a lookup by UUID or name finds nothing (C locale).
_NO_SUCH_DOMAIN = b"failed to get domain"

_UNITS_1024 = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}


@dataclass(frozen=True)
class Nic:
    mac: str
    kind: str  # network, bridge, direct, user, ...
    source: str | None  # the network's or bridge's name, or the host device for direct
    model: str | None = None
    target: str | None = None  # the host-side tap device, only while running


@dataclass(frozen=True)
class Controller:
    type: str
    model: str | None
    index: int


@dataclass(frozen=True)
class Disk:
    target: str  # vda, sdb, ...
    bus: str | None  # virtio, scsi, sata, ide, ...
    device: str  # disk, cdrom, floppy, lun
    path: str | None  # file or block device; None for network, volume and empty drives
    format: str | None  # the driver type: qcow2, raw, ...
    size_bytes: int | None = None
    readonly: bool = False
    source_type: str = "file"  # file, block, volume, network, dir, ...
    pool: str | None = None  # storage pool and volume, for source_type "volume"
    volume: str | None = None


@dataclass(frozen=True)
class Domain:
    uuid: str
    name: str
    state: str  # as virsh domstate prints it: running, paused, shut off, ...
    vcpus: int
    memory_bytes: int
    nics: tuple[Nic, ...] = ()
    controllers: tuple[Controller, ...] = ()
    disks: tuple[Disk, ...] = ()
    has_guest_agent: bool = False
    xml: str = field(default="", repr=False)  # libvirt's own definition, to rebuild the domain

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; a superset of ``providers.hypervisor.DiscoveredVM``."""
        data = asdict(self)
        for key in ("nics", "controllers", "disks"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Domain:
        try:
            return cls(
                uuid=str(data["uuid"]),
                name=str(data["name"]),
                state=str(data["state"]),
                vcpus=int(data["vcpus"]),
                memory_bytes=int(data["memory_bytes"]),
                nics=tuple(
                    Nic(
                        mac=n["mac"],
                        kind=n["kind"],
                        source=n.get("source"),
                        model=n.get("model"),
                        target=n.get("target"),
                    )
                    for n in data.get("nics", ())
                ),
                controllers=tuple(
                    Controller(type=c["type"], model=c.get("model"), index=int(c["index"]))
                    for c in data.get("controllers", ())
                ),
                disks=tuple(
                    Disk(
                        target=d["target"],
                        bus=d.get("bus"),
                        device=d.get("device", "disk"),
                        path=d.get("path"),
                        format=d.get("format"),
                        size_bytes=None if d.get("size_bytes") is None else int(d["size_bytes"]),
                        readonly=bool(d.get("readonly", False)),
                        source_type=d.get("source_type", "file"),
                        pool=d.get("pool"),
                        volume=d.get("volume"),
                    )
                    for d in data.get("disks", ())
                ),
                has_guest_agent=bool(data.get("has_guest_agent", False)),
                xml=str(data.get("xml", "")),
            )
        except KeyError as exc:
            raise InvalidArgument(f"domain record lacks {exc.args[0]!r}", field=str(exc.args[0])) from exc


def parse_domain_xml(xml: str, state: str = "unknown") -> Domain:
    """The domain described by libvirt's XML; ProviderError if it is malformed or hostile."""
    try:
        # libvirt never writes a DTD, so refusing one outright also refuses every entity trick.
        root = SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise ProviderError(
            f"domain XML refused: it declares a DTD or entities, which libvirt never writes "
            f"(entity expansion attack?): {exc!r}",
            retryable=False,
        ) from exc
    except SafeET.ParseError as exc:
        raise ProviderError(f"domain XML is not well-formed: {exc}", retryable=False) from exc
    if root.tag != "domain":
        raise ProviderError(f"expected a <domain> document, got <{root.tag}>", retryable=False)

    name = _required_text(root, "name")
    uuid = _required_text(root, "uuid")
    memory = root.find("memory")
    if memory is None or not (memory.text or "").strip():
        raise ProviderError(f"domain {name}: no <memory>", retryable=False)
    vcpu = root.find("vcpu")
    devices = root.find("devices")

    def each(tag: str) -> list[Element]:
        return [] if devices is None else devices.findall(tag)

    return Domain(
        uuid=uuid,
        name=name,
        state=state,
        # The text is the count the domain is defined with; 'current' is how many are online,
        # which the guest can change at will.
        vcpus=_int(vcpu.text if vcpu is not None else "1", f"domain {name}: <vcpu>"),
        memory_bytes=memory_to_bytes(memory.text or "", memory.get("unit"), what=f"domain {name}"),
        nics=tuple(_nic(el, name) for el in each("interface")),
        controllers=tuple(_controller(el, name) for el in each("controller")),
        disks=tuple(_disk(el, name) for el in each("disk")),
        has_guest_agent=any(
            target.get("name") == GUEST_AGENT_CHANNEL
            for target in (ch.find("target") for ch in each("channel"))
            if target is not None
        ),
        xml=xml,
    )


def memory_to_bytes(value: str, unit: str | None = None, *, what: str = "memory") -> int:
    """libvirt's scaled integer (its virScaleInteger rules; units are case-insensitive)."""
    number = _int(value, what)
    suffix = (unit or "KiB").strip().lower()
    if suffix in ("b", "byte", "bytes"):
        return number
    base = 1024 if suffix[1:] in ("", "ib") else 1000 if suffix[1:] == "b" else 0
    power = _UNITS_1024.get(suffix[:1])
    if not base or power is None:
        raise ProviderError(f"{what}: unknown unit {unit!r}", retryable=False)
    return number * base**power


def _required_text(root: Element, tag: str) -> str:
    text = (root.findtext(tag) or "").strip()
    if not text:
        raise ProviderError(f"domain XML has no <{tag}>", retryable=False)
    return text


def _int(value: str | None, what: str) -> int:
    try:
        return int((value or "").strip())
    except ValueError:
        raise ProviderError(f"{what}: expected an integer, got {value!r}", retryable=False) from None


def _attr(parent: Element, child: str, attr: str) -> str | None:
    el = parent.find(child)
    return None if el is None else el.get(attr)


def _nic(el: Element, domain: str) -> Nic:
    kind = el.get("type", "")
    mac = _attr(el, "mac", "address")
    if not mac:
        raise ProviderError(f"domain {domain}: an interface has no MAC address", retryable=False)
    src = el.find("source")
    source = None
    if src is not None:
        preferred = {"network": "network", "bridge": "bridge", "direct": "dev"}.get(kind)
        keys = (preferred,) if preferred else ("network", "bridge", "dev", "path")
        source = next((src.get(k) for k in keys if k and src.get(k)), None)
    return Nic(
        mac=mac.lower(),
        kind=kind,
        source=source,
        model=_attr(el, "model", "type"),
        target=_attr(el, "target", "dev"),
    )


def _controller(el: Element, domain: str) -> Controller:
    return Controller(
        type=el.get("type", ""),
        model=el.get("model"),
        index=_int(el.get("index", "0"), f"domain {domain}: controller index"),
    )


def _disk(el: Element, domain: str) -> Disk:
    source_type = el.get("type", "file")
    target = _attr(el, "target", "dev")
    if not target:
        raise ProviderError(f"domain {domain}: a disk has no target device", retryable=False)
    # Only the disk's own <source>: a <backingStore> nested below names the images under it.
    src = el.find("source")
    path = pool = volume = None
    if src is not None:
        if source_type in ("file", "block", "dir"):
            path = src.get({"file": "file", "block": "dev", "dir": "dir"}[source_type]) or None
        elif source_type == "volume":
            pool, volume = src.get("pool"), src.get("volume")
    return Disk(
        target=target,
        bus=_attr(el, "target", "bus"),
        device=el.get("device", "disk"),
        path=path,
        format=_attr(el, "driver", "type"),
        readonly=el.find("readonly") is not None,
        source_type=source_type,
        pool=pool,
        volume=volume,
    )


def _has_source(disk: Disk) -> bool:
    return disk.path is not None or disk.volume is not None or disk.source_type == "network"


def _capacity(output: str) -> int | None:
    for line in output.splitlines():
        label, _, value = line.partition(":")
        if label.strip() == "Capacity":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


class Libvirt:
    """One host's libvirt, read through ``virsh -c URI`` on a Transport."""

    def __init__(self, transport: Transport, uri: str = "qemu:///system", timeout: float = 60.0) -> None:
        if not uri or uri.startswith("-"):
            raise InvalidArgument(f"libvirt URI {uri!r} is not valid", field="uri")
        self.transport = transport
        self.uri = uri
        self.timeout = timeout

    def list_domains(self) -> list[Domain]:
        """Every domain, running or not, with its disks' sizes where libvirt knows them."""
        uuids = [line.strip() for line in self._virsh("list", "--all", "--uuid").text.splitlines()]
        domains = []
        for uuid in filter(None, uuids):
            try:
                domains.append(self.domain(uuid))
            except CommandFailed as exc:
                # A transient domain that shut down after the listing is gone, not an error.
                if _NO_SUCH_DOMAIN not in exc.stderr:
                    raise
                log.info("domain %s vanished during discovery on %s", uuid, self.uri)
        return domains

    def domain(self, uuid_or_name: str) -> Domain:
        """One domain by UUID or name; CommandFailed (carrying virsh's stderr) if there is none."""
        if not uuid_or_name or not uuid_or_name.strip():
            raise InvalidArgument("a domain UUID or name is required", field="domain")
        # The live XML, not --inactive: it names the images the domain is writing right now
        # (an external snapshot's overlay, a hot-plugged disk), which is what a backup must
        # read; for a shut-off domain the two are the same.
        xml = self._virsh("dumpxml", "--", uuid_or_name).text
        parsed = parse_domain_xml(xml)
        state = self._virsh("domstate", "--", parsed.uuid).text.strip().splitlines()
        disks = tuple(replace(d, size_bytes=self._disk_size(parsed.uuid, d)) for d in parsed.disks)
        return replace(parsed, state=state[0].strip() if state else "unknown", disks=disks)

    def _disk_size(self, uuid: str, disk: Disk) -> int | None:
        if not _has_source(disk):
            return None
        # Output is in bytes already (virsh 9 has no --bytes; --human would scale it). An
        # unreadable size (network disk of a shut-off domain, image missing) is only unknown.
        result = self._virsh("domblkinfo", "--", uuid, disk.target, check=False)
        if result.exit_status != 0:
            log.info(
                "no size for %s of domain %s: %s", disk.target, uuid, result.stderr.decode(errors="replace")
            )
            return None
        return _capacity(result.text)

    def _virsh(self, *args: str, check: bool = True) -> CommandResult:
        argv: Sequence[str] = (*_VIRSH, "-c", self.uri, *args)
        return self.transport.run(argv, timeout=self.timeout, check=check)
