"""KvmSnapshot: one atomic external snapshot of all disks, merged back whatever happens.

The libvirt tests run a real libvirtd with QEMU under TCG and tiny domains that boot no OS
(see fixtures/kvm_libvirt.py); "guest writes" go through the guest's own virtio devices via
the QEMU monitor, so they land in whichever image is active at that moment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.domain.errors import ProviderError
from providers.base import VMRef, VolumeRef
from providers.kvm.domains import Libvirt, parse_domain_xml
from providers.kvm.snapshot import (
    CONSISTENCY_CRASH,
    CONSISTENCY_QUIESCED,
    CONSISTENCY_STOPPED,
    KvmSnapshot,
    KvmSnapshotOptions,
    _diskspec,
    _match_volumes,
    live_disks,
    overlay_path,
    parse_overlay,
    referenced_files,
    repoint_definition,
)
from providers.kvm.transport import LocalTransport
from tests.providers.kvm.fixtures.kvm_libvirt import (
    GuestDomain,
    first_byte,
    image_has,
    libvirtd,  # noqa: F401 - a session fixture used by the tests below
    make_domain,
    virsh,
)

FIXTURES = Path(__file__).parent / "fixtures"
ON_OVERLAY = (FIXTURES / "kvm_on_overlay.xml").read_text()
MiB = 2**20
A, B, C = 0xA1, 0xB2, 0xC3


# -- pure parts ----------------------------------------------------------------------------------


def test_overlay_names_round_trip_and_refuse_unsafe_point_ids() -> None:
    path = overlay_path("/pool/root.qcow2", "rp-42")
    assert path == "/pool/root.qcow2.bo-rp-42.qcow2"
    assert parse_overlay(path) == ("/pool/root.qcow2", "rp-42")
    assert parse_overlay("/pool/root.qcow2") is None
    assert parse_overlay("/pool/root.qcow2.snap") is None
    for bad in ("", "../x", "a/b", "a b", "-x"):
        with pytest.raises(ProviderError, match="file name"):
            overlay_path("/pool/root.qcow2", bad)


def test_diskspec_doubles_commas_in_paths() -> None:
    assert _diskspec("vdb", "snapshot=external", "file=/pool/a,b.qcow2") == (
        "vdb,snapshot=external,file=/pool/a,,b.qcow2"
    )


def test_live_disks_recognise_only_our_overlays_over_their_named_original() -> None:
    disks = {d.target: d for d in live_disks(ON_OVERLAY)}
    assert disks["vda"].leftover == ("/pool/root.qcow2", "rp-1")
    assert disks["vda"].original == "/pool/root.qcow2"
    assert disks["vdb"].leftover == ("/pool/data,1.raw", "rp-1")
    assert disks["vdb"].backing_format == "raw"
    # Named like ours, but not over the image its name says: someone else's, left alone.
    assert disks["vdc"].leftover is None
    assert disks["vdd"].leftover is None
    assert disks["vdd"].original == "/pool/logs.qcow2"
    assert disks["hdc"].path is None
    assert "/pool/template.qcow2" in referenced_files(ON_OVERLAY)


def test_repoint_definition_moves_disks_back_and_keeps_the_rest() -> None:
    fixed = repoint_definition(
        ON_OVERLAY,
        {
            "/pool/root.qcow2.bo-rp-1.qcow2": ("/pool/root.qcow2", "qcow2"),
            "/pool/data,1.raw.bo-rp-1.qcow2": ("/pool/data,1.raw", "raw"),
        },
    )
    disks = {d.target: d for d in live_disks(fixed)}
    assert (disks["vda"].path, disks["vda"].format, disks["vda"].backing) == (
        "/pool/root.qcow2",
        "qcow2",
        None,
    )
    assert (disks["vdb"].path, disks["vdb"].format) == ("/pool/data,1.raw", "raw")
    assert disks["vdc"].path == "/pool/other.qcow2.bo-rp-1.qcow2"
    assert parse_domain_xml(fixed).uuid == parse_domain_xml(ON_OVERLAY).uuid


def _vm(*paths: str) -> VMRef:
    volumes = tuple(
        VolumeRef(f"v{i}", f"v{i}", "DATADISK", i, MiB, path, "qcow2", "p") for i, path in enumerate(paths)
    )
    return VMRef("id", "web1", "z", "h1", volumes)


def test_volumes_are_matched_to_disks_by_path_in_device_order() -> None:
    xml = repoint_definition(ON_OVERLAY, {"/pool/root.qcow2.bo-rp-1.qcow2": ("/pool/root.qcow2", "qcow2")})
    domain = parse_domain_xml(xml)
    matched = _match_volumes(_vm("/pool/logs.qcow2", "/pool/root.qcow2"), domain, live_disks(xml))
    assert [(v.path, d.target) for v, d in matched] == [
        ("/pool/root.qcow2", "vda"),
        ("/pool/logs.qcow2", "vdd"),
    ]
    with pytest.raises(ProviderError, match=r"/pool/gone.qcow2 are not disks of domain web1.*re-discover"):
        _match_volumes(_vm("/pool/root.qcow2", "/pool/gone.qcow2"), domain, live_disks(xml))


# -- against a real libvirtd ---------------------------------------------------------------------


@pytest.fixture
def source(libvirtd: str) -> KvmSnapshot:  # noqa: F811 - the imported fixture
    return KvmSnapshot(lambda vm: Libvirt(LocalTransport(), libvirtd))


@pytest.fixture
def domain(libvirtd: str) -> Iterator[GuestDomain]:  # noqa: F811
    with make_domain() as dom:
        yield dom


def leave_overlays(dom: GuestDomain, point: str) -> None:
    """What a worker killed between snapshot and merge leaves: the domain on our overlays."""
    specs = [
        a for t, p in dom.disks.items() for a in ("--diskspec", f"{t},file={overlay_path(str(p), point)}")
    ]
    virsh("snapshot-create-as", "--domain", dom.name, "--disk-only", "--atomic", "--no-metadata", *specs)


def assert_on_originals(dom: GuestDomain) -> None:
    assert dom.sources() == {t: str(p) for t, p in dom.disks.items()}
    assert dom.overlay_files() == []
    assert dom.state() == "running"


def test_capture_freezes_every_disk_and_merges_back(source: KvmSnapshot, domain: GuestDomain) -> None:
    for target in domain.disks:
        domain.guest_write(target, A, 0)
    with source.capture(domain.vm(), "rp-1") as capture:
        assert capture.consistency == CONSISTENCY_CRASH
        # The data mover reads the original files; the domain writes to one overlay per disk.
        assert {v: i.path for v, i in capture.images.items()} == {v.id: v.path for v in domain.volumes}
        assert domain.sources() == {t: f"{p}.bo-rp-1.qcow2" for t, p in domain.disks.items()}
        before = {t: p.stat().st_mtime_ns for t, p in domain.disks.items()}
        for target in domain.disks:
            domain.guest_write(target, B, MiB)
        # The originals stopped changing at the snapshot: they hold A and not what came after.
        assert {t: p.stat().st_mtime_ns for t, p in domain.disks.items()} == before
        for image in capture.images.values():
            assert image_has(image.path, A, 0)
            assert not image_has(image.path, B, MiB)
    assert_on_originals(domain)
    # Merged back: the writes made on the overlays are in the originals now ...
    for path in domain.disks.values():
        assert image_has(path, A, 0)
        assert image_has(path, B, MiB)
    # ... and only there: --shallow kept vda's template out of it.
    assert not image_has(domain.template, A, 0)
    assert str(domain.template) in virsh("dumpxml", domain.name).stdout


class GenerationWriter:
    """Stamps generation g on vda, then on vdb, over and over, from a thread."""

    def __init__(self, domain: GuestDomain) -> None:
        self.domain = domain
        self.stop = threading.Event()
        self.written: list[int] = []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        for generation in range(1, 250):
            if self.stop.is_set():
                return
            self.domain.guest_io("vda", f"write -P {generation} 0 512")
            self.domain.guest_io("vdb", f"write -P {generation} 0 512")
            self.written.append(generation)

    def __enter__(self) -> GenerationWriter:
        self.thread.start()
        while len(self.written) < 3 and self.thread.is_alive():
            time.sleep(0.02)
        return self

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()

    def __exit__(self, *exc: object) -> None:
        self.finish()


def test_all_disks_are_captured_at_one_instant(source: KvmSnapshot, domain: GuestDomain) -> None:
    """Whatever instant one snapshot hits, vdb can never be newer than vda and at most one
    generation older (the next test shows a per-disk snapshot breaking exactly that)."""
    with GenerationWriter(domain) as writer, source.capture(domain.vm(), "rp-2") as capture:
        time.sleep(0.3)  # the writer goes on, into the overlays
        writer.finish()
        vda, vdb = (first_byte(capture.images[v.id].path) for v in domain.volumes)
    assert vda >= 3
    assert vda - vdb in (0, 1), (vda, vdb)
    assert writer.written[-1] > vda, "the writer kept writing after the snapshot"
    assert_on_originals(domain)
    for target in domain.disks:
        domain.guest_io(target, "flush")
    assert [first_byte(p) for p in domain.disks.values()] == [writer.written[-1]] * 2


def test_the_instant_check_catches_per_disk_snapshots(source: KvmSnapshot, domain: GuestDomain) -> None:
    """The control for the test above: one snapshot per disk, vda first, catches vdb newer."""
    overlays = {t: overlay_path(str(p), "per-disk") for t, p in domain.disks.items()}
    with GenerationWriter(domain) as writer:
        for target, other in (("vda", "vdb"), ("vdb", "vda")):
            virsh(
                "snapshot-create-as",
                "--domain",
                domain.name,
                "--disk-only",
                "--atomic",
                "--no-metadata",
                "--diskspec",
                f"{target},file={overlays[target]}",
                "--diskspec",
                f"{other},snapshot=no",
            )
            time.sleep(0.3)  # a per-volume snapshot API call is rarely faster than this
        writer.finish()
    vda, vdb = (first_byte(p) for p in domain.disks.values())
    assert vdb > vda, (vda, vdb)
    # What is left looks like a killed worker's overlays: repair cleans it up.
    assert {r.target for r in source.repair(domain.vm())} == {"vda", "vdb"}
    assert_on_originals(domain)


def test_a_failure_while_reading_still_leaves_the_domain_on_its_originals(
    source: KvmSnapshot, domain: GuestDomain
) -> None:
    def read_and_die() -> None:
        with source.capture(domain.vm(), "rp-3"):
            domain.guest_write("vdb", C, 0)
            raise RuntimeError("data mover died")

    with pytest.raises(RuntimeError, match="data mover died"):
        read_and_die()
    assert_on_originals(domain)
    assert image_has(domain.disks["vdb"], C, 0)


def test_repair_merges_what_a_killed_worker_left(source: KvmSnapshot, domain: GuestDomain) -> None:
    leave_overlays(domain, "dead-1")
    for target in domain.disks:
        domain.guest_write(target, A, 0)
    # Killed in the middle of merging vdb: a finished, not yet pivoted commit job.
    virsh("blockcommit", domain.name, "vdb", "--active", "--shallow", "--wait")
    # And a stray file of an even older run, no longer used by anything.
    stray = domain.workdir / "root.qcow2.bo-older.qcow2"
    stray.write_bytes(b"")
    repaired = source.repair(domain.vm())
    assert sorted((r.target, r.point_id, r.offline) for r in repaired) == [
        ("vda", "dead-1", False),
        ("vdb", "dead-1", False),
    ]
    assert_on_originals(domain)
    for path in domain.disks.values():
        assert image_has(path, A, 0)
    assert source.repair(domain.vm()) == []  # idempotent


def test_the_next_capture_repairs_first(source: KvmSnapshot, domain: GuestDomain) -> None:
    leave_overlays(domain, "dead-2")
    domain.guest_write("vda", A, 0)
    with source.capture(domain.vm(), "rp-4") as capture:
        # One overlay per disk, ours; the leftover was merged, so the image read has A.
        assert domain.overlay_files() == ["data.qcow2.bo-rp-4.qcow2", "root.qcow2.bo-rp-4.qcow2"]
        assert image_has(capture.images["vol-vda"].path, A, 0)
    assert_on_originals(domain)


def test_a_domain_shut_down_on_an_overlay_is_repaired_offline(
    source: KvmSnapshot, domain: GuestDomain
) -> None:
    leave_overlays(domain, "dead-3")
    for target in domain.disks:
        domain.guest_write(target, A, 0)
    virsh("destroy", domain.name)
    assert ".bo-dead-3" in virsh("dumpxml", "--inactive", domain.name).stdout
    repaired = source.repair(domain.vm())
    assert {(r.target, r.offline) for r in repaired} == {("vda", True), ("vdb", True)}
    assert ".bo-" not in virsh("dumpxml", "--inactive", domain.name).stdout
    assert domain.overlay_files() == []
    for path in domain.disks.values():
        assert image_has(path, A, 0)
    assert not image_has(domain.template, A, 0)
    virsh("start", domain.name)
    assert_on_originals(domain)


def test_a_stopped_domain_is_read_in_place(libvirtd: str, source: KvmSnapshot) -> None:  # noqa: F811
    with make_domain(start=False) as dom:
        with source.capture(dom.vm(), "rp-5") as capture:
            assert capture.consistency == CONSISTENCY_STOPPED
            assert {v: i.path for v, i in capture.images.items()} == {v.id: v.path for v in dom.volumes}
            assert dom.overlay_files() == []
        assert dom.state() == "shut off"


def test_a_domain_shut_down_during_the_backup_is_merged_offline(
    source: KvmSnapshot, domain: GuestDomain
) -> None:
    with source.capture(domain.vm(), "rp-6"):
        domain.guest_write("vda", B, 0)
        virsh("destroy", domain.name)
    assert domain.overlay_files() == []
    assert ".bo-" not in virsh("dumpxml", "--inactive", domain.name).stdout
    assert image_has(domain.disks["vda"], B, 0)


def test_overlays_merged_by_someone_else_fail_the_capture(source: KvmSnapshot, domain: GuestDomain) -> None:
    with (
        pytest.raises(ProviderError, match="left their snapshot overlays"),
        source.capture(domain.vm(), "rp-7"),
    ):
        virsh("blockcommit", domain.name, "vda", "--active", "--shallow", "--pivot", "--wait")
    assert_on_originals(domain)


def test_an_unknown_domain_is_named(source: KvmSnapshot, domain: GuestDomain) -> None:
    vm = replace(domain.vm(), id="00000000-0000-0000-0000-000000000000", details={"instance_name": "nope"})
    with pytest.raises(ProviderError, match="no libvirt domain 00000000-0000-0000-0000-000000000000 or nope"):
        source.repair(vm)


def test_a_domain_without_a_guest_agent_is_snapshotted_crash_consistent(
    source: KvmSnapshot, domain: GuestDomain
) -> None:
    with source.capture(domain.vm(), "rp-8", quiesce=True) as capture:
        assert capture.consistency == CONSISTENCY_CRASH
    assert_on_originals(domain)


def test_an_agent_that_cannot_freeze_is_reported(libvirtd: str) -> None:  # noqa: F811
    with make_domain(agent=True) as dom:  # the channel exists; no agent answers on it
        strict = KvmSnapshot(lambda vm: Libvirt(LocalTransport(), libvirtd))
        with (
            pytest.raises(ProviderError, match=r"could not quiesce.*guest agent is not connected"),
            strict.capture(dom.vm(), "rp-9", quiesce=True),
        ):
            pass
        assert_on_originals(dom)
        lenient = KvmSnapshot(
            lambda vm: Libvirt(LocalTransport(), libvirtd), KvmSnapshotOptions(quiesce_fallback=True)
        )
        with lenient.capture(dom.vm(), "rp-9", quiesce=True) as capture:
            assert capture.consistency == CONSISTENCY_CRASH
            assert capture.consistency != CONSISTENCY_QUIESCED
        assert_on_originals(dom)
