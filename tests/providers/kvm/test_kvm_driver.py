"""The ``kvm`` provider: configuration, and snapshot → backup → merge → restore on a real libvirtd."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.domain.errors import InvalidArgument, ProviderError
from providers import registry
from providers.base import BackupRequest, Capability, HostRef, RestorePointRef, VMRef
from providers.kvm.driver import KvmProvider
from providers.nas import backup as nas_backup
from tests.providers.kvm.conftest import SshServer, write_known_hosts
from tests.providers.kvm.fixtures.kvm_libvirt import (
    GuestDomain,
    image_has,
    libvirtd,  # noqa: F401 - a session fixture used by the tests below
    make_domain,
    virsh,
)
from tests.providers.kvm.fixtures.rebuilt_node import rebuilt_node
from tests.providers.kvm.test_domains import NODE_URI, WEB1
from tests.providers.kvm.test_domains import virsh as virsh_cli  # noqa: F401 - a fixture
from tests.providers.kvm.test_snapshot import assert_on_originals, leave_overlays

MiB = 2**20
A, B = 0xA1, 0xB2
LOCAL = {"h1": {"transport": "local"}}
MOVED = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d05"


def config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "repository": str(tmp_path / "repo"),
        "chunk_size": 256 * 1024,
        "fsync": False,
        "hosts": LOCAL,
        # A guest without an OS ignores ACPI: do not wait long before destroying it.
        "shutdown_timeout_s": 0.5,
        **extra,
    }


# -- configuration -------------------------------------------------------------------------------


def test_capabilities_declare_quiesce_only_when_configured(tmp_path: Path) -> None:
    plain = KvmProvider("k", config(tmp_path), tmp_path)
    assert {
        Capability.INCREMENTAL,
        Capability.RESTORE_VOLUME,
        Capability.RESTORE_TO_NEW_VM,
        Capability.MULTI_VOLUME_CONSISTENT,
        Capability.DELETE_SINGLE_RESTORE_POINT,
        Capability.VERIFY,
    } <= plain.capabilities
    assert Capability.QUIESCE not in plain.capabilities
    assert Capability.QUIESCE in KvmProvider("k", config(tmp_path, quiesce=True), tmp_path).capabilities


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"hosts": ["h1"]}, "hosts", "hosts: must be"),
        ({"hosts": {"h1": {"transport": "telnet"}}}, "hosts", r"hosts\.h1: .*transport: must be one of"),
        ({"snapshot": "reflink"}, "snapshot", "not used by the kvm driver"),
        ({"freeze_command": ["true"]}, "freeze_command", "not used by the kvm driver"),
        ({"quiesce": "yes"}, "quiesce", "must be true or false"),
        ({"commit_timeout_s": 0}, "commit_timeout_s", "> 0"),
        ({"chunk_sise": 1}, None, "chunk_sise"),  # the NAS part still refuses typos
    ],
)
def test_configuration_is_checked_up_front(
    tmp_path: Path, extra: dict[str, Any], field: str | None, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message) as caught:
        KvmProvider("k", config(tmp_path, **extra), tmp_path)
    if field:
        assert caught.value.field == field


def test_the_driver_is_found_by_name(tmp_path: Path) -> None:
    if "kvm" not in registry.available_drivers():
        pytest.skip("entry point not installed yet: pip install -e . after adding it to pyproject.toml")
    assert registry.driver_class("kvm") is KvmProvider


def test_a_vm_on_a_host_without_connection_settings_is_refused(tmp_path: Path) -> None:
    provider = KvmProvider("k", config(tmp_path), tmp_path)
    unset = VMRef("id", "web1", "z", "h9", (), host=HostRef("h9", "kvm"))
    with pytest.raises(ProviderError, match="host h9, which has no connection settings: set them") as caught:
        provider.repair(unset)
    assert "provider 'k' has no hosts entry for it either" in caught.value.message


def _web1(host: HostRef | None, host_id: str = "h1") -> VMRef:
    return VMRef(WEB1, "web1", "z", host_id, (), {"instance_name": "web1"}, host=host)


def test_the_hosts_inventory_connection_is_used_before_the_config(
    tmp_path: Path,
    virsh_cli: str,  # noqa: F811 - the fixture
) -> None:
    """Without a ``hosts`` entry the VM is reached as its host's record says, and when the
    record changes (the host reconnected elsewhere) the next operation goes the new way."""
    moved = rebuilt_node(tmp_path / "node", uuid=MOVED)  # web1 has another UUID there
    recorded = HostRef("h1", "kvm", {"transport": "local", "libvirt_uri": NODE_URI})
    reconnected = HostRef("h1", "kvm", {"transport": "local", "libvirt_uri": moved})
    provider = KvmProvider("k", config(tmp_path, hosts={}), tmp_path)
    fallback = KvmProvider("k", config(tmp_path, hosts={"h1": reconnected.connection}), tmp_path)
    try:
        assert provider.restores.find(_web1(recorded)) == WEB1
        assert provider.restores.find(_web1(reconnected)) == MOVED
        # The config's entry for h1 is only used when the host has no record.
        assert fallback.restores.find(_web1(recorded)) == WEB1
        assert fallback.restores.find(_web1(HostRef("h1", "kvm"))) == MOVED
        assert fallback.restores.find(_web1(None)) == MOVED
    finally:
        provider.close()
        fallback.close()


def test_a_broken_inventory_connection_is_a_clear_error(tmp_path: Path) -> None:
    provider = KvmProvider("k", config(tmp_path), tmp_path)
    broken = HostRef("h1", "kvm", {"transport": "telnet"})
    with pytest.raises(ProviderError, match=r"host h1 of VM web1: connection\.transport: must be one of"):
        provider.repair(_web1(broken))


def test_restore_points_never_keep_the_hosts_connection() -> None:
    host = HostRef("h1", "kvm", {"transport": "ssh", "address": "kvm-01", "key_file": "/etc/k"})
    vm = _web1(host)
    kept = vm.to_dict()
    assert "host" not in kept
    assert "kvm-01" not in str(kept)
    assert VMRef.from_dict(kept) == vm  # the host is filled from the inventory, not compared


def test_quiesce_is_refused_when_not_configured(tmp_path: Path) -> None:
    provider = KvmProvider("k", config(tmp_path), tmp_path)
    request = BackupRequest("rp-1", VMRef("id", "web1", "z", "h1", ()), "nas-daily", quiesce=True)
    with pytest.raises(ProviderError, match="not configured to quiesce"):
        provider.take_backup(request, lambda done, total: None)


# -- against a real libvirtd ---------------------------------------------------------------------


@pytest.fixture
def domain(libvirtd: str) -> Iterator[GuestDomain]:  # noqa: F811 - the imported fixture
    with make_domain() as dom:
        yield dom


@pytest.fixture
def provider(tmp_path: Path, libvirtd: str) -> Iterator[KvmProvider]:  # noqa: F811
    kvm = KvmProvider("kvm1", config(tmp_path), tmp_path)
    yield kvm
    kvm.close()


def _no_progress(done: int, total: int) -> None:
    pass


def test_backup_reads_one_instant_and_restores_it(
    provider: KvmProvider, domain: GuestDomain, monkeypatch: pytest.MonkeyPatch
) -> None:
    for target in domain.disks:
        domain.guest_write(target, A, 0)
    real_back_up = nas_backup.back_up

    def guest_keeps_writing(*args: Any, **kwargs: Any) -> Any:
        # While the data mover reads, the guest writes B: into the overlays, not the backup.
        for target in domain.disks:
            domain.guest_write(target, B, MiB)
        return real_back_up(*args, **kwargs)

    monkeypatch.setattr(nas_backup, "back_up", guest_keeps_writing)
    vm = domain.vm()
    result = provider.take_backup(BackupRequest("rp-1", vm, "nas-daily"), _no_progress)
    assert result.backup_type == "FULL"
    assert_on_originals(domain)
    manifest = next(m for m in provider.nas.list_points() if m.id == result.external_id)
    assert manifest.consistency == "libvirt"
    point = RestorePointRef("rp-1", result.external_id, result.backup_type, vm)
    provider.verify(point)

    # Restored in place: the running domain is stopped, its disks come back as they were at
    # the snapshot (A, no B), and it runs again on its original images.
    provider.restore_vm(point, vm, _no_progress)
    assert domain.state() == "running"
    for path in domain.disks.values():
        assert image_has(path, A, 0)
        assert image_has(path, 0, MiB)
    assert_on_originals(domain)

    # One volume as a new image beside the original.
    restored = provider.restore_volume(point, vm.volumes[1], vm, _no_progress)
    assert restored.path != vm.volumes[1].path
    assert image_has(restored.path, A, 0)
    compare = subprocess.run(
        ["qemu-img", "compare", "-U", restored.path, vm.volumes[1].path], capture_output=True, check=False
    )
    assert compare.returncode == 0, compare.stdout


def test_a_data_mover_failure_leaves_the_domain_on_its_originals(
    provider: KvmProvider, domain: GuestDomain, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ProviderError("repository went away", retryable=True)

    monkeypatch.setattr(nas_backup, "back_up", broken)
    with pytest.raises(ProviderError, match="repository went away"):
        provider.take_backup(BackupRequest("rp-2", domain.vm(), "nas-daily"), _no_progress)
    assert_on_originals(domain)
    assert provider.nas.list_points() == []


def test_a_backup_repairs_a_killed_workers_leftovers_first(
    provider: KvmProvider, domain: GuestDomain
) -> None:
    leave_overlays(domain, "dead-1")
    domain.guest_write("vda", A, 0)  # lands in the leftover overlay
    vm = domain.vm()
    result = provider.take_backup(BackupRequest("rp-3", vm, "nas-daily"), _no_progress)
    assert_on_originals(domain)
    point = RestorePointRef("rp-3", result.external_id, result.backup_type, vm)
    restored = provider.restore_volume(point, vm.volumes[0], vm, _no_progress)
    assert image_has(restored.path, A, 0)


def test_a_stopped_vm_is_backed_up_in_place(provider: KvmProvider, libvirtd: str) -> None:  # noqa: F811
    with make_domain(start=False) as dom:
        result = provider.take_backup(BackupRequest("rp-4", dom.vm(), "nas-daily"), _no_progress)
        manifest = next(m for m in provider.nas.list_points() if m.id == result.external_id)
        assert manifest.consistency == "stopped"
        assert dom.overlay_files() == []


def test_over_ssh_a_backup_and_an_offline_repair_work_the_same(
    tmp_path: Path,
    libvirtd: str,  # noqa: F811
    sshd: SshServer,
) -> None:
    """The same sequence through the SSH transport: every virsh call, the overlay listing and
    removal, and the redefinition fed on stdin run on the "remote" host."""
    known_hosts = write_known_hosts(tmp_path / "known_hosts", sshd)
    connection = {
        "transport": "ssh",
        "address": sshd.host,
        "port": sshd.port,
        "username": "root",
        "key_file": str(sshd.client_key),
        "known_hosts": str(known_hosts),
    }
    provider = KvmProvider("kvm-ssh", config(tmp_path, hosts={"h1": connection}), tmp_path)
    try:
        with make_domain() as dom:
            dom.guest_write("vda", A, 0)
            vm = dom.vm()
            result = provider.take_backup(BackupRequest("rp-5", vm, "nas-daily"), _no_progress)
            assert_on_originals(dom)
            point = RestorePointRef("rp-5", result.external_id, result.backup_type, vm)
            assert image_has(provider.restore_volume(point, vm.volumes[0], vm, _no_progress).path, A, 0)

            leave_overlays(dom, "dead-2")
            dom.guest_write("vdb", B, 0)
            virsh("destroy", dom.name)
            assert {(r.target, r.offline) for r in provider.repair(vm)} == {("vda", True), ("vdb", True)}
            assert ".bo-" not in virsh("dumpxml", "--inactive", dom.name).stdout
            assert dom.overlay_files() == []
            assert image_has(dom.disks["vdb"], B, 0)
    finally:
        provider.close()
