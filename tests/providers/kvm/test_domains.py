"""Reading domains through virsh, against libvirt's real test driver.

``test:///ABSOLUTE/PATH/node.xml`` makes the test driver load a whole host from the file on
every connection; since each virsh call is its own connection, every call sees the same
fixture, which is what lets a sequence of calls read one consistent host.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NotRequired, get_origin, get_type_hints

import pytest

from orchestrator.domain.errors import InvalidArgument, ProviderError
from providers.hypervisor import DiscoveredController, DiscoveredDisk, DiscoveredNic, DiscoveredVM
from providers.kvm.domains import Controller, Disk, Domain, Libvirt, Nic, memory_to_bytes, parse_domain_xml
from providers.kvm.transport import CommandFailed, CommandResult, LocalTransport, SSHTransport
from tests.conftest import IN_CI
from tests.providers.kvm.conftest import SshServer, write_known_hosts

FIXTURES = Path(__file__).parent / "fixtures"
NODE_URI = f"test://{(FIXTURES / 'node.xml').resolve()}"
WEB1 = "6e0d9a84-3b1f-4c1e-9a57-0c3a2f1e7b01"
DB1 = "b3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c02"
# The test driver invents the same block info for every disk that has a source.
TEST_DRIVER_CAPACITY = 1099506450432
MiB = 2**20
GiB = 2**30


@pytest.fixture(scope="module")
def virsh() -> str:
    path = shutil.which("virsh")
    if path is None:
        if IN_CI:
            pytest.fail("virsh is required in CI (apt-get install libvirt-clients)")
        pytest.skip("virsh not installed (apt-get install libvirt-clients)")
    return path


@pytest.fixture
def libvirt(virsh: str) -> Libvirt:
    return Libvirt(LocalTransport(), NODE_URI)


@pytest.fixture
def domains(libvirt: Libvirt) -> dict[str, Domain]:
    return {d.name: d for d in libvirt.list_domains()}


class Rewriting:
    """A LocalTransport that lets a test bend one command or its output, to stage a race."""

    name = "rewriting"

    def __init__(
        self,
        argv: Callable[[tuple[str, ...]], tuple[str, ...]] = lambda argv: argv,
        stdout: Callable[[tuple[str, ...], bytes], bytes] = lambda argv, out: out,
    ) -> None:
        self.local = LocalTransport()
        self.argv = argv
        self.stdout = stdout
        self.calls: list[tuple[str, ...]] = []

    def run(
        self, argv: Sequence[str], *, timeout: float = 60.0, input: bytes | None = None, check: bool = True
    ) -> CommandResult:
        argv = tuple(self.argv(tuple(argv)))
        self.calls.append(argv)
        result = self.local.run(argv, timeout=timeout, input=input, check=check)
        return replace(result, stdout=self.stdout(argv, result.stdout))

    def close(self) -> None:
        pass


# -- against the test driver ----------------------------------------------------------------------


def test_list_domains_reads_every_domain_running_or_not(domains: dict[str, Domain]) -> None:
    assert sorted(domains) == ["db1", "web1"]
    web1, db1 = domains["web1"], domains["db1"]
    assert (web1.uuid, web1.state, web1.vcpus, web1.memory_bytes) == (WEB1, "running", 2, 2048 * MiB)
    assert (db1.uuid, db1.state, db1.vcpus, db1.memory_bytes) == (DB1, "shut off", 4, 4 * GiB)


def test_disks_of_a_running_domain(domains: dict[str, Domain]) -> None:
    assert domains["web1"].disks == (
        Disk(
            target="vda",
            bus="virtio",
            device="disk",
            path="/var/lib/libvirt/images/web1-root.qcow2",
            format="qcow2",
            size_bytes=TEST_DRIVER_CAPACITY,
        ),
        Disk(
            target="vdb",
            bus="virtio",
            device="disk",
            path="/var/lib/libvirt/images/web1-data.raw",
            format="raw",
            size_bytes=TEST_DRIVER_CAPACITY,
        ),
        Disk(
            target="sda",
            bus="scsi",
            device="cdrom",
            path="/var/lib/libvirt/images/debian-12.iso",
            format="raw",
            size_bytes=TEST_DRIVER_CAPACITY,
            readonly=True,
        ),
    )
    [disk] = domains["db1"].disks
    assert (disk.target, disk.bus, disk.path) == ("sda", "scsi", "/var/lib/libvirt/images/db1-root.qcow2")


def test_nics_controllers_and_guest_agent(domains: dict[str, Domain]) -> None:
    web1 = domains["web1"]
    # The test driver names the tap devices of a running domain testnetN, whatever the XML said.
    assert web1.nics == (
        Nic(mac="52:54:00:6b:3c:01", kind="network", source="default", model="virtio", target="testnet0"),
        Nic(mac="52:54:00:6b:3c:02", kind="bridge", source="br0", model="e1000", target="testnet1"),
    )
    assert web1.controllers == (
        Controller(type="virtio-serial", model=None, index=0),
        Controller(type="scsi", model="virtio-scsi", index=0),
    )
    assert web1.has_guest_agent
    assert domains["db1"].nics == ()
    assert not domains["db1"].has_guest_agent


def test_the_raw_xml_is_kept_and_describes_the_same_domain(domains: dict[str, Domain]) -> None:
    web1 = domains["web1"]
    assert "<name>web1</name>" in web1.xml
    reparsed = parse_domain_xml(web1.xml, state=web1.state)
    assert reparsed == replace(web1, disks=tuple(replace(d, size_bytes=None) for d in web1.disks))


def test_one_domain_by_uuid_or_by_name(libvirt: Libvirt, domains: dict[str, Domain]) -> None:
    assert libvirt.domain(DB1) == domains["db1"]
    assert libvirt.domain("web1") == domains["web1"]


def test_the_same_reading_over_ssh(
    virsh: str, sshd: SshServer, tmp_path: Path, domains: dict[str, Domain]
) -> None:
    known_hosts = write_known_hosts(tmp_path / "known_hosts", sshd)
    with SSHTransport(
        sshd.host, port=sshd.port, key_file=sshd.client_key, known_hosts=known_hosts
    ) as transport:
        assert {d.name: d for d in Libvirt(transport, NODE_URI).list_domains()} == domains
        with pytest.raises(CommandFailed, match="failed to get domain 'nope'"):
            Libvirt(transport, NODE_URI).domain("nope")


def test_to_dict_is_json_safe_and_round_trips(domains: dict[str, Domain]) -> None:
    for domain in domains.values():
        data = json.loads(json.dumps(domain.to_dict()))
        assert Domain.from_dict(data) == domain


def test_to_dict_carries_everything_the_hypervisor_port_promises(domains: dict[str, Domain]) -> None:
    data = domains["web1"].to_dict()
    assert required_keys(DiscoveredVM) <= set(data)
    assert required_keys(DiscoveredNic) <= set(data["nics"][0])
    assert required_keys(DiscoveredController) <= set(data["controllers"][0])
    assert required_keys(DiscoveredDisk) <= set(data["disks"][0])
    # Keys only some hypervisors have (vSphere's moref) are not KVM's to give.
    assert "moref" not in required_keys(DiscoveredVM)


def required_keys(typed: type) -> set[str]:
    # ``__required_keys__`` cannot see NotRequired through postponed annotations on 3.11.
    hints = get_type_hints(typed, include_extras=True)
    return {key for key, hint in hints.items() if get_origin(hint) is not NotRequired}


def test_from_dict_names_a_missing_field() -> None:
    with pytest.raises(InvalidArgument, match="'uuid'"):
        Domain.from_dict({"name": "x"})


def test_an_unknown_size_does_not_fail_discovery(virsh: str) -> None:
    # Ask for a disk the domain does not have, so the real virsh fails the way it does for an
    # image it cannot read.
    def lose_vdb(argv: tuple[str, ...]) -> tuple[str, ...]:
        return (*argv[:-1], "vdz") if "domblkinfo" in argv and argv[-1] == "vdb" else argv

    transport = Rewriting(argv=lose_vdb)
    web1 = Libvirt(transport, NODE_URI).domain("web1")
    assert [d.size_bytes for d in web1.disks] == [TEST_DRIVER_CAPACITY, None, TEST_DRIVER_CAPACITY]


def test_a_drive_without_media_is_not_asked_for_its_size(virsh: str) -> None:
    transport = Rewriting()
    Libvirt(transport, NODE_URI).list_domains()
    sized = sorted(argv[-1] for argv in transport.calls if "domblkinfo" in argv)
    assert sized == ["sda", "sda", "vda", "vdb"]  # web1's three, db1's one

    empty = "<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>"
    transport = Rewriting(stdout=lambda argv, out: _with_device(out, empty) if "dumpxml" in argv else out)
    [_, cdrom] = Libvirt(transport, NODE_URI).domain("db1").disks
    assert cdrom == Disk(target="hdc", bus="ide", device="cdrom", path=None, format=None, readonly=True)
    assert not any("hdc" in argv for argv in transport.calls)


def test_a_domain_gone_between_listing_and_reading_is_skipped(virsh: str) -> None:
    ghost = "00000000-0000-4000-8000-000000000001"
    transport = Rewriting(stdout=lambda argv, out: out + f"{ghost}\n".encode() if "list" in argv else out)
    names = [d.name for d in Libvirt(transport, NODE_URI).list_domains()]
    assert names == ["web1", "db1"]
    assert any(ghost in argv for argv in transport.calls)


def test_an_unknown_domain_raises_with_virsh_s_reason(libvirt: Libvirt) -> None:
    with pytest.raises(CommandFailed, match="failed to get domain 'nope'"):
        libvirt.domain("nope")


def test_a_name_that_looks_like_an_option_is_still_a_name(libvirt: Libvirt) -> None:
    with pytest.raises(CommandFailed, match="failed to get domain '--all'"):
        libvirt.domain("--all")
    with pytest.raises(InvalidArgument):
        libvirt.domain(" ")


def test_an_unreachable_libvirt_raises_with_virsh_s_reason(virsh: str, tmp_path: Path) -> None:
    missing = Libvirt(LocalTransport(), f"test://{tmp_path / 'no-such-node.xml'}")
    with pytest.raises(CommandFailed, match="failed to connect to the hypervisor") as caught:
        missing.list_domains()
    assert b"no-such-node.xml" in caught.value.stderr


# -- parsing --------------------------------------------------------------------------------------


def _domain_xml(devices: str = "", memory: str = "<memory>1024</memory>") -> str:
    return (
        f"<domain type='kvm'><name>vm</name><uuid>{WEB1}</uuid>{memory}<vcpu current='1'>2</vcpu>"
        f"<devices>{devices}</devices></domain>"
    )


def _with_device(xml: bytes, device: str) -> bytes:
    return xml.replace(b"</devices>", device.encode() + b"</devices>")


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        (None, 3 * 1024),
        ("", 3 * 1024),
        ("b", 3),
        ("bytes", 3),
        ("k", 3 * 1024),
        ("KiB", 3 * 1024),
        ("KB", 3 * 1000),
        ("M", 3 * MiB),
        ("MiB", 3 * MiB),
        ("MB", 3 * 10**6),
        ("G", 3 * GiB),
        ("GiB", 3 * GiB),
        ("GB", 3 * 10**9),
        ("T", 3 * 2**40),
        ("TiB", 3 * 2**40),
        ("TB", 3 * 10**12),
        ("gib", 3 * GiB),
    ],
)
def test_memory_units(unit: str | None, expected: int) -> None:
    memory = "<memory>3</memory>" if unit is None else f"<memory unit='{unit}'>3</memory>"
    assert parse_domain_xml(_domain_xml(memory=memory)).memory_bytes == expected


@pytest.mark.parametrize("unit", ["X", "KiBs", "Mi", "kibibytes"])
def test_an_unknown_memory_unit_is_refused(unit: str) -> None:
    with pytest.raises(ProviderError, match="unknown unit"):
        memory_to_bytes("3", unit)


def test_defaults_of_a_minimal_domain() -> None:
    domain = parse_domain_xml(_domain_xml())
    assert (domain.name, domain.uuid, domain.state, domain.vcpus) == ("vm", WEB1, "unknown", 2)
    assert (domain.nics, domain.controllers, domain.disks, domain.has_guest_agent) == ((), (), (), False)


def test_block_disk() -> None:
    [disk] = parse_domain_xml(
        _domain_xml(
            "<disk type='block' device='disk'><driver name='qemu' type='raw'/>"
            "<source dev='/dev/vg0/vm-data'/><target dev='sdb' bus='sata'/></disk>"
        )
    ).disks
    assert disk == Disk(
        target="sdb", bus="sata", device="disk", path="/dev/vg0/vm-data", format="raw", source_type="block"
    )


def test_network_disk_has_no_path() -> None:
    [disk] = parse_domain_xml(
        _domain_xml(
            "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
            "<source protocol='rbd' name='pool/vm-root'><host name='mon1' port='6789'/></source>"
            "<target dev='vda' bus='virtio'/></disk>"
        )
    ).disks
    assert (disk.path, disk.source_type, disk.format) == (None, "network", "raw")


def test_volume_disk_keeps_pool_and_volume() -> None:
    [disk] = parse_domain_xml(
        _domain_xml(
            "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
            "<source pool='default' volume='vm-logs.qcow2'/><target dev='vdc' bus='virtio'/></disk>"
        )
    ).disks
    assert (disk.path, disk.source_type) == (None, "volume")
    assert (disk.pool, disk.volume) == ("default", "vm-logs.qcow2")


def test_empty_cdrom() -> None:
    [disk] = parse_domain_xml(
        _domain_xml("<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>")
    ).disks
    assert disk == Disk(target="hdc", bus="ide", device="cdrom", path=None, format=None, readonly=True)


def test_a_disk_on_an_overlay_is_the_overlay_not_its_backing_image() -> None:
    [disk] = parse_domain_xml(
        _domain_xml(
            "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
            "<source file='/images/vm.snap1'/>"
            "<backingStore type='file'><format type='qcow2'/><source file='/images/vm.qcow2'/>"
            "</backingStore><target dev='vda' bus='virtio'/></disk>"
        )
    ).disks
    assert disk.path == "/images/vm.snap1"


def test_only_the_qemu_guest_agent_channel_counts() -> None:
    spice = "<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>"
    agent = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
    assert not parse_domain_xml(_domain_xml(spice)).has_guest_agent
    assert parse_domain_xml(_domain_xml(spice + agent)).has_guest_agent


def test_direct_nic_source_is_the_host_device() -> None:
    [nic] = parse_domain_xml(
        _domain_xml(
            "<interface type='direct'><mac address='52:54:00:AA:BB:CC'/>"
            "<source dev='eth0' mode='bridge'/></interface>"
        )
    ).nics
    assert nic == Nic(mac="52:54:00:aa:bb:cc", kind="direct", source="eth0")


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE domain [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<domain type='kvm'><name>&lol9;</name><uuid>x</uuid><memory>1</memory></domain>
"""


def test_entity_expansion_is_refused_not_parsed() -> None:
    started = time.monotonic()
    with pytest.raises(ProviderError, match="entity expansion") as caught:
        parse_domain_xml(BILLION_LAUGHS)
    assert time.monotonic() - started < 1.0
    assert not caught.value.retryable


def test_external_entities_are_refused() -> None:
    xxe = (
        '<!DOCTYPE domain [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
        "<domain><name>&secret;</name><uuid>x</uuid><memory>1</memory></domain>"
    )
    with pytest.raises(ProviderError, match="refused"):
        parse_domain_xml(xxe)


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ("<domain><name>vm", "not well-formed"),
        ("<network><name>default</name></network>", "expected a <domain>"),
        ("<domain><uuid>x</uuid><memory>1</memory></domain>", "no <name>"),
        ("<domain><name>vm</name><uuid>x</uuid></domain>", "no <memory>"),
        (_domain_xml("<interface type='network'><source network='default'/></interface>"), "no MAC"),
        (_domain_xml("<disk type='file'><source file='/x'/></disk>"), "no target"),
    ],
)
def test_malformed_xml_is_a_clear_provider_error(xml: str, reason: str) -> None:
    with pytest.raises(ProviderError, match=reason):
        parse_domain_xml(xml)
