"""Restores on KVM against a real libvirtd with QEMU (TCG): in place, one volume, a new VM.

Markers are written through the guest's own devices before the backup, changed after it,
and every restored image is compared with ``qemu-img compare`` against a copy taken at
backup time.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from orchestrator.domain.errors import ProviderError
from providers.base import BackupRequest, RestorePointRef, VMRef, VolumeRef
from providers.hypervisor import copied_details
from providers.kvm.domains import parse_domain_xml
from providers.kvm.driver import KvmProvider
from providers.kvm.restore import NewDisk, new_domain_xml, next_free_target, target_index, target_name
from providers.nas import restore as nas_restore
from tests.providers.kvm.fixtures.kvm_libvirt import (
    GuestDomain,
    image_has,
    libvirtd,  # noqa: F401 - a session fixture used by the tests below
    virsh,
)
from tests.providers.kvm.fixtures.kvm_restore_domains import (
    ORIGINAL_MAC,
    copy_images,
    domain_xml,
    identical,
    imported_vm,
    make_restore_domain,
)

MiB = 2**20
A, B = 0xA1, 0xB2


def _no_progress(done: int, total: int) -> None:
    pass


@pytest.fixture
def provider(tmp_path: Path, libvirtd: str) -> Iterator[KvmProvider]:  # noqa: F811
    kvm = KvmProvider(
        "kvm1",
        {
            "repository": str(tmp_path / "repo"),
            "chunk_size": 256 * 1024,
            "fsync": False,
            "hosts": {"h1": {"transport": "local"}},
            # A guest without an OS ignores ACPI: do not wait long for it.
            "shutdown_timeout_s": 0.5,
        },
        tmp_path,
    )
    yield kvm
    kvm.close()


def back_up(
    provider: KvmProvider, dom: GuestDomain, vm: VMRef, copies_dir: Path, point_id: str = "rp-1"
) -> tuple[RestorePointRef, dict[str, Path]]:
    """Marker A on every disk, copies taken, a restore point, then marker B written over it."""
    for target in dom.disks:
        dom.guest_write(target, A, 0)
        dom.guest_write(target, A, 3 * MiB)
    copies = copy_images(dom, copies_dir)
    result = provider.take_backup(BackupRequest(point_id, vm, "nas-daily"), _no_progress)
    for target in dom.disks:
        dom.guest_write(target, B, 0)
        dom.guest_write(target, B, 5 * MiB)
    for target, path in dom.disks.items():
        assert not identical(path, copies[target]), f"{target} did not change after the backup"
    return RestorePointRef(point_id, result.external_id, result.backup_type, vm), copies


def defined_disks(name: str) -> dict[str, str]:
    xml = virsh("dumpxml", "--inactive", name).stdout
    found = {}
    for disk in re.findall(r"<disk .*?</disk>", xml, re.S):
        target = re.search(r"<target dev='([^']+)'", disk)
        source = re.search(r"<source file='([^']+)'", disk)
        if target and source:
            found[target[1]] = source[1]
    return found


# -- pure helpers -----------------------------------------------------------------------------------


def test_target_names_follow_libvirts_numbering() -> None:
    assert target_index("vda") == ("vd", 0)
    assert target_index("vdz") == ("vd", 25)
    assert target_index("vdaa") == ("vd", 26)
    assert target_index("xvdb") == ("xvd", 1)
    assert [target_name("vd", i) for i in (0, 25, 26, 27)] == ["vda", "vdz", "vdaa", "vdab"]
    assert next_free_target(["vda", "vdb", "hdc"], "virtio") == "vdc"
    assert next_free_target(["vda", "vdc"], "virtio") == "vdb"
    assert next_free_target(["vda", "hdc"], "ide") == "hda"
    assert next_free_target(["vda", "sda"], "scsi") == "sdb"


# What a restore point of an imported CloudStack VM stores: the live dump of its domain.
LIVE_XML = (Path(__file__).parent / "fixtures" / "kvm_live_cloudstack.xml").read_text()


def test_a_new_domain_definition_has_a_new_identity_and_the_new_images() -> None:
    meta = VMRef(
        "0b7a4c36-36d5-4e4b-9a0b-2f0e6f3c0a11",
        "web",
        "z1",
        "h1",
        (
            VolumeRef("v0", "root", "ROOT", 0, MiB, "/pool/root.qcow2", "qcow2", "p"),
            VolumeRef("v1", "data", "DATADISK", 1, MiB, "/pool/data.qcow2", "qcow2", "p"),
        ),
        {"xml": LIVE_XML},
    )
    new_uuid = str(uuid.uuid4())
    xml = new_domain_xml(
        meta,
        [
            NewDisk("/pool/new-0.qcow2", "qcow2", "/pool/root.qcow2", 0),
            NewDisk("/pool/new-1.raw", "raw", "/pool/data.qcow2", 1),
        ],
        name="web-copy",
        uuid=new_uuid,
    )
    domain = parse_domain_xml(xml)
    assert (domain.name, domain.uuid) == ("web-copy", new_uuid)
    assert " id=" not in xml.split(">", 1)[0]
    assert f'<entry name="uuid">{new_uuid}</entry>' in xml
    # root keeps vda as a flat image; the scratch disk the point lacks is left out; the data
    # volume the stored XML lacked gets the next free virtio target; the CD-ROM stays.
    assert {d.target: (d.path, d.format) for d in domain.disks} == {
        "vda": ("/pool/new-0.qcow2", "qcow2"),
        "vdb": ("/pool/new-1.raw", "raw"),
        "hdc": ("/iso/tools.iso", "raw"),
    }
    assert "backingStore" not in xml
    assert "tmpl.qcow2" not in xml
    assert "scratch.raw" not in xml
    (nic,) = domain.nics
    assert nic.mac != "02:00:11:22:33:44"
    assert re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", nic.mac)
    assert (nic.kind, nic.source, nic.model, nic.target) == ("bridge", "cloudbr0", "virtio", None)
    assert "domain-7-i-2-9-VM" not in xml
    assert domain.has_guest_agent


# -- in place ---------------------------------------------------------------------------------------


def test_a_running_domain_is_stopped_restored_and_started_again(
    provider: KvmProvider,
    libvirtd: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    with make_restore_domain() as dom:
        vm = imported_vm(dom)
        point, copies = back_up(provider, dom, vm, tmp_path / "copies")
        assert provider.restore_vm(point, vm, _no_progress) is None  # the same domain: nothing to follow
        assert dom.state() == "running"
        assert dom.sources() == {t: str(p) for t, p in dom.disks.items()}
        assert defined_disks(dom.name) == {t: str(p) for t, p in dom.disks.items()}
        for target, path in dom.disks.items():
            assert identical(path, copies[target]), target
            assert image_has(path, A, 0)
            assert image_has(path, 0, 5 * MiB)


def test_volumes_created_in_another_order_land_on_their_own_targets(
    provider: KvmProvider,
    libvirtd: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Images created data first, the XML given with vdb before vda (libvirt sorts its disks
    # by target on define), the VM's volumes (and so the restore point's) listed data first;
    # no stored XML, so the device order check applies.
    with make_restore_domain(("vdb", "vda")) as dom:
        vm = dom.vm()
        assert [v.name for v in vm.volumes] == ["vdb", "vda"]
        # Different contents per disk, so a swap would show.
        dom.guest_write("vda", 0x11, MiB)
        dom.guest_write("vdb", 0x22, 2 * MiB)
        point, copies = back_up(provider, dom, vm, tmp_path / "copies")
        provider.restore_vm(point, vm, _no_progress)
        assert dom.state() == "running"
        assert dom.sources() == {"vdb": str(dom.disks["vdb"]), "vda": str(dom.disks["vda"])}
        for target, path in dom.disks.items():
            assert identical(path, copies[target]), target
        assert image_has(dom.disks["vda"], 0x11, MiB)
        assert image_has(dom.disks["vdb"], 0x22, 2 * MiB)


@pytest.mark.parametrize("stored_xml", [True, False], ids=["stored-xml", "device-order"])
def test_a_domain_whose_disks_changed_is_refused_and_left_as_it_was(
    provider: KvmProvider,
    libvirtd: str,  # noqa: F811
    tmp_path: Path,
    stored_xml: bool,
) -> None:
    with make_restore_domain() as dom:
        vm = imported_vm(dom) if stored_xml else dom.vm()
        point, _ = back_up(provider, dom, vm, tmp_path / "copies")
        # Someone swapped the disks: root on vdb, data on vda.
        virsh("destroy", dom.name)
        swapped = [("vda", dom.disks["vdb"]), ("vdb", dom.disks["vda"])]
        virsh("define", "/dev/stdin", input=domain_xml(dom.name, swapped, nic=False, uuid=dom.uuid))
        virsh("start", dom.name)
        before = dom.sources()
        expected = "was vda in the restore point but is vdb now" if stored_xml else "device order differs"
        with pytest.raises(ProviderError, match=expected) as caught:
            provider.restore_vm(point, vm, _no_progress)
        assert "Nothing was changed" in caught.value.message
        assert not caught.value.retryable
        assert dom.state() == "running"
        assert dom.sources() == before
        for path in dom.disks.values():
            assert image_has(path, B, 0)  # not restored


def test_a_destination_that_is_no_disk_of_the_domain_is_refused(
    provider: KvmProvider,
    libvirtd: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    with make_restore_domain() as dom:
        vm = imported_vm(dom)
        point, _ = back_up(provider, dom, vm, tmp_path / "copies")
        elsewhere = replace(vm.volumes[1], path=str(dom.workdir / "elsewhere.qcow2"))
        target = replace(vm, volumes=(vm.volumes[0], elsewhere))
        with pytest.raises(ProviderError, match=r"elsewhere\.qcow2 \(volume vdb\) is not a disk"):
            provider.restore_vm(point, target, _no_progress)
        assert dom.state() == "running"
        assert not Path(elsewhere.path).exists()


def test_explicit_target_paths_skip_the_target_check(
    provider: KvmProvider,
    libvirtd: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The operator says where each volume goes: the root volume onto the image now at vdb."""
    with make_restore_domain() as dom:
        vm = imported_vm(dom)
        point, copies = back_up(provider, dom, vm, tmp_path / "copies")
        moved_root = dom.workdir / "moved-root.qcow2"
        virsh("destroy", dom.name)
        dom.disks["vda"].rename(moved_root)
        disks = [("vda", dom.disks["vdb"]), ("vdb", moved_root)]
        virsh("define", "/dev/stdin", input=domain_xml(dom.name, disks, nic=False, uuid=dom.uuid))
        target = replace(vm, volumes=(replace(vm.volumes[0], path=str(moved_root)), vm.volumes[1]))
        provider.restore_vm(point, target, _no_progress)
        assert dom.state() == "shut off"  # it was not running: not started
        assert identical(moved_root, copies["vda"])
        assert identical(dom.disks["vdb"], copies["vdb"])


def test_a_failure_while_writing_leaves_the_domain_stopped_on_its_disks(
    provider: KvmProvider,
    libvirtd: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with make_restore_domain() as dom:
        vm = imported_vm(dom)
        point, _ = back_up(provider, dom, vm, tmp_path / "copies")
        real = nas_restore.write_volume
        calls: list[Path] = []

        def second_fails(*args: Any, **kwargs: Any) -> int:
            calls.append(args[3])
            if len(calls) == 2:
                raise ProviderError("injected: the storage went away", retryable=True)
            return real(*args, **kwargs)

        monkeypatch.setattr(nas_restore, "write_volume", second_fails)
        with pytest.raises(ProviderError, match="injected: the storage went away") as caught:
            provider.restore_vm(point, vm, _no_progress)
        message = caught.value.message
        assert "is stopped (it was running)" in message
        assert "still defined on its original disks" in message
        assert caught.value.retryable
        assert dom.state() == "shut off"
        assert defined_disks(dom.name) == {t: str(p) for t, p in dom.disks.items()}
        assert re.search(r"^Persistent:\s+yes$", virsh("dominfo", dom.name).stdout, re.M)
        assert len(calls) == 2


# -- one volume -------------------------------------------------------------------------------------


@pytest.mark.parametrize("running", [True, False], ids=["running", "shut-off"])
def test_one_volume_is_attached_to_another_domain_at_the_next_free_target(
    provider: KvmProvider,
    libvirtd: str,  # noqa: F811
    tmp_path: Path,
    running: bool,
) -> None:
    with make_restore_domain() as dom, make_restore_domain(start=running) as other:
        vm = imported_vm(dom)
        point, copies = back_up(provider, dom, vm, tmp_path / "copies")
        restored = provider.restore_volume(point, vm.volumes[1], other.vm(), _no_progress)
        assert restored.path not in {str(p) for p in (*dom.disks.values(), *other.disks.values())}
        assert identical(restored.path, copies["vdb"])
        # In its definition, and live when the domain runs (vdc: vda, vdb and hdc are taken).
        assert defined_disks(other.name)["vdc"] == restored.path
        assert set(other.sources()) == {"vda", "vdb", "vdc"}
        assert other.sources()["vdc"] == restored.path
        assert other.state() == ("running" if running else "shut off")
        # The source VM is untouched.
        assert image_has(dom.disks["vdb"], B, 0)


def test_a_failed_attach_removes_the_restored_image(
    provider: KvmProvider,
    libvirtd: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with make_restore_domain() as dom:
        vm = imported_vm(dom)
        point, _ = back_up(provider, dom, vm, tmp_path / "copies")
        before = sorted(p.name for p in dom.workdir.iterdir())

        def refused(*args: Any) -> str:
            raise ProviderError("injected: attach-disk refused", retryable=False)

        monkeypatch.setattr(provider.restores, "_attach", refused)
        with pytest.raises(ProviderError, match="injected: attach-disk refused; the image was removed"):
            provider.restore_volume(point, vm.volumes[1], vm, _no_progress)
        assert sorted(p.name for p in dom.workdir.iterdir()) == before
        assert set(dom.sources()) == {"vda", "vdb"}


def test_a_volume_for_a_vm_without_a_domain_is_refused_before_writing(
    provider: KvmProvider,
    libvirtd: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    with make_restore_domain() as dom:
        vm = imported_vm(dom)
        point, _ = back_up(provider, dom, vm, tmp_path / "copies")
        ghost = VMRef(str(uuid.uuid4()), "ghost", "z1", "h1", (), {"instance_name": "no-such-domain"})
        before = sorted(p.name for p in dom.workdir.iterdir())
        with pytest.raises(ProviderError, match="no libvirt domain"):
            provider.restore_volume(point, vm.volumes[1], ghost, _no_progress)
        assert sorted(p.name for p in dom.workdir.iterdir()) == before


# -- a new VM ---------------------------------------------------------------------------------------


def new_vm_target(vm: VMRef, name: str) -> VMRef:
    """As the framework's restore_to_new_vm builds it: new ids, new paths beside the originals."""
    vm_id = str(uuid.uuid4())
    return VMRef(
        id=vm_id,
        name=name,
        zone_id=vm.zone_id,
        host_id=vm.host_id,
        volumes=tuple(
            replace(
                v,
                id=str(uuid.uuid4()),
                path=str(PurePosixPath(v.path).with_name(f"{vm_id}-{v.device_id}.{v.format}")),
            )
            for v in vm.volumes
        ),
        details=copied_details(vm.details, name),
    )


@pytest.mark.parametrize("stored_xml", [True, False], ids=["stored-xml", "minimal"])
def test_restore_to_a_new_vm_defines_a_new_domain(
    provider: KvmProvider,
    libvirtd: str,  # noqa: F811
    tmp_path: Path,
    stored_xml: bool,
) -> None:
    with make_restore_domain(nic=True) as dom:
        vm = imported_vm(dom) if stored_xml else dom.vm()
        point, copies = back_up(provider, dom, vm, tmp_path / "copies")
        name = f"{dom.name}-copy"
        target = new_vm_target(vm, name)
        try:
            restored = provider.restore_vm(point, target, _no_progress)
            assert virsh("domstate", name).stdout.strip() == "shut off"
            assert virsh("domuuid", name).stdout.strip() == target.id != dom.uuid
            xml = virsh("dumpxml", "--inactive", name).stdout
            by_device = {v.device_id: v.path for v in target.volumes}
            assert defined_disks(name) == {"vda": by_device[0], "vdb": by_device[1]}
            for volume, original in zip(target.volumes, vm.volumes, strict=True):
                assert identical(volume.path, copies[original.name]), volume.name
            if stored_xml:
                macs = re.findall(r"<mac address='([^']+)'", xml)
                assert len(macs) == 1
                assert macs[0] != ORIGINAL_MAC
                assert re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", macs[0])
            # What the inventory records of the new VM is the new domain, not the original's.
            assert restored is not None
            assert (restored.id, restored.volumes) == (target.id, target.volumes)
            assert restored.details["instance_name"] == name
            assert "domain" not in restored.details  # its UUID is the new VM's id
            assert parse_domain_xml(restored.details["xml"]).name == name
            assert {d["target"]: d["path"] for d in restored.details["disks"] if d["device"] == "disk"} == {
                "vda": by_device[0],
                "vdb": by_device[1],
            }
            # The original is untouched and still running on its own images.
            assert dom.state() == "running"
            assert dom.sources() == {t: str(p) for t, p in dom.disks.items()}
            assert image_has(dom.disks["vda"], B, 0)
            # The new domain is a usable one.
            virsh("start", name)
            virsh("destroy", name)
        finally:
            virsh("destroy", name, check=False)
            virsh("undefine", name, check=False)


def test_a_new_vm_never_overwrites_an_existing_image(
    provider: KvmProvider,
    libvirtd: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    with make_restore_domain() as dom:
        vm = imported_vm(dom)
        point, _ = back_up(provider, dom, vm, tmp_path / "copies")
        target = new_vm_target(vm, f"{dom.name}-copy")
        # The second destination is someone's image already.
        target = replace(
            target, volumes=(target.volumes[0], replace(target.volumes[1], path=vm.volumes[1].path))
        )
        with pytest.raises(ProviderError, match="already exist; nothing was written"):
            provider.restore_vm(point, target, _no_progress)
        assert virsh("domuuid", target.name, check=False).returncode != 0
        assert not Path(target.volumes[0].path).exists()
        assert image_has(dom.disks["vdb"], B, 0)


def test_a_vm_whose_domain_was_undefined_comes_back_as_it_was(
    provider: KvmProvider,
    libvirtd: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    with make_restore_domain(nic=True) as dom:
        vm = imported_vm(dom)
        point, copies = back_up(provider, dom, vm, tmp_path / "copies")
        virsh("destroy", dom.name)
        virsh("undefine", dom.name)
        restored = provider.restore_vm(point, vm, _no_progress)
        assert virsh("domuuid", dom.name).stdout.strip() == dom.uuid
        assert restored is not None
        assert restored.details["instance_name"] == dom.name
        assert parse_domain_xml(restored.details["xml"]).uuid == dom.uuid
        assert dom.state() == "shut off"
        assert ORIGINAL_MAC in virsh("dumpxml", dom.name).stdout
        assert defined_disks(dom.name) == {t: str(p) for t, p in dom.disks.items()}
        for target, path in dom.disks.items():
            assert identical(path, copies[target]), target
