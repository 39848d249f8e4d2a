"""The dummy driver on its own, and the registry that finds drivers by entry point."""

from __future__ import annotations

import posixpath
from pathlib import Path

import pytest

from orchestrator.domain.errors import InvalidArgument, ProviderError, Unsupported
from providers import registry
from providers.base import BackupRequest, Capability, RestorePointRef, VMRef, VolumeRef
from providers.dummy import DummyProvider

GiB = 2**30
ROOT = VolumeRef("vol-root", "ROOT-1", "ROOT", 0, 10 * GiB, "/srv/pool1/vm1-0.qcow2", "qcow2", "pool-1")
DATA = VolumeRef("vol-data", "DATA-1", "DATADISK", 1, 2 * GiB, "/srv/pool1/vm1-1.qcow2", "qcow2", "pool-1")
VM = VMRef("vm-1", "web1", "zone-1", "host-1", (ROOT, DATA))
PROTECTED = 12 * GiB


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))


def ignore(done: int, total: int) -> None:
    pass


def provider(tmp_path: Path, **config: object) -> DummyProvider:
    return DummyProvider("test", config, tmp_path)


def backup(p: DummyProvider, parent: RestorePointRef | None = None, progress=ignore):
    return p.take_backup(BackupRequest("rp-1", VM, "dummy-gold", parent=parent), progress)


def ref(external_id: str, backup_type: str = "FULL", parent: str | None = None) -> RestorePointRef:
    return RestorePointRef("rp-1", external_id, backup_type, VM, parent)


# -- configuration ---------------------------------------------------------------------------


def test_capabilities_default_to_all(tmp_path):
    p = provider(tmp_path)
    assert p.capabilities == frozenset(Capability)
    assert p.supports(Capability.RESTORE_VOLUME)


def test_configured_capabilities_restrict_what_it_can_do(tmp_path):
    p = provider(tmp_path, capabilities=["incremental", "verify"])
    assert p.capabilities == {Capability.INCREMENTAL, Capability.VERIFY}
    assert not p.supports(Capability.RESTORE_VOLUME)
    with pytest.raises(Unsupported, match=r"provider 'test' \(dummy\) cannot restore a single volume"):
        p.restore_volume(ref("x"), ROOT, VM, ignore)


def test_empty_capability_list_means_none(tmp_path):
    assert provider(tmp_path, capabilities=[]).capabilities == frozenset()


def test_unknown_capability_is_rejected(tmp_path):
    with pytest.raises(InvalidArgument, match=r"^capabilities: unknown capabilities \['teleport'\]; known: "):
        provider(tmp_path, capabilities=["incremental", "teleport"])


def test_unknown_fail_operation_is_rejected(tmp_path):
    with pytest.raises(InvalidArgument, match=r"^config\.fail: unknown operations \['explode'\]; known: "):
        provider(tmp_path, fail=["backup", "explode"])


def test_offerings_default_and_configured(tmp_path):
    assert [o.external_id for o in provider(tmp_path).list_offerings(None)] == [
        "dummy-gold",
        "dummy-silver",
        "dummy-bronze",
    ]
    custom = provider(tmp_path, offerings=[{"id": "p1"}]).list_offerings("zone-1")
    assert [(o.external_id, o.name, o.description) for o in custom] == [("p1", "p1", "")]


# -- backups ---------------------------------------------------------------------------------


def test_first_backup_is_full_of_every_volume(tmp_path):
    p = provider(tmp_path)
    result = backup(p)
    assert result.backup_type == "FULL"
    assert result.size == PROTECTED
    assert result.protected_size == PROTECTED
    stored = p.restore_points()[result.external_id]
    assert stored["type"] == "FULL"
    assert stored["parent"] is None
    assert stored["volumes"] == ["vol-root", "vol-data"]


def test_backup_with_a_parent_is_incremental_and_smaller(tmp_path):
    p = provider(tmp_path, incremental_ratio=0.25)
    first = backup(p)
    second = backup(p, parent=ref(first.external_id))
    assert second.backup_type == "INCREMENTAL"
    assert second.size == PROTECTED // 4
    assert second.protected_size == PROTECTED
    assert second.external_id != first.external_id
    assert p.restore_points()[second.external_id]["parent"] == first.external_id


def test_backup_with_a_parent_is_full_without_the_incremental_capability(tmp_path):
    p = provider(tmp_path, capabilities=["restore_volume"])
    first = backup(p)
    second = backup(p, parent=ref(first.external_id))
    assert second.backup_type == "FULL"
    assert second.size == PROTECTED
    assert p.restore_points()[second.external_id]["parent"] is None


def test_backup_reports_progress_up_to_the_total(tmp_path):
    progress = Recorder()
    backup(provider(tmp_path), progress=progress)
    assert len(progress.calls) >= 2
    assert all(total == PROTECTED for _, total in progress.calls)
    done = [d for d, _ in progress.calls]
    assert done == sorted(done)
    assert progress.calls[-1] == (PROTECTED, PROTECTED)


def test_told_to_fail_backup_raises_and_records_nothing(tmp_path):
    p = provider(tmp_path, fail=["backup"])
    for call in (1, 2):
        with pytest.raises(ProviderError, match=rf"'test' told to fail backup \(call {call}\)"):
            backup(p)
    assert p.restore_points() == {}


def test_fail_times_fails_only_the_first_calls(tmp_path):
    p = provider(tmp_path, fail=["backup"], fail_times=1)
    with pytest.raises(ProviderError, match="told to fail backup"):
        backup(p)
    result = backup(p)
    assert result.external_id in p.restore_points()


def test_failing_one_operation_leaves_the_others_working(tmp_path):
    p = provider(tmp_path, fail=["restore"])
    result = backup(p)
    p.delete_backup(ref(result.external_id), forced=False)
    assert p.restore_points() == {}


# -- delete ----------------------------------------------------------------------------------


def request(attempt: int) -> BackupRequest:
    return BackupRequest("rp-1", VM, "dummy-gold", attempt=attempt)


def test_a_superseded_attempt_is_not_committed(tmp_path):
    p = provider(tmp_path)
    newer = p.take_backup(request(2), ignore)
    with pytest.raises(ProviderError, match="superseded by attempt 2"):
        p.take_backup(request(1), ignore)  # a paused worker of attempt 1 wakes up
    assert [s.external_id for s in p.list_restore_points()] == [newer.external_id]
    assert not list(tmp_path.glob("points/*.partial"))


def test_an_attempt_overtaken_while_it_runs_is_not_committed(tmp_path):
    p = provider(tmp_path)
    overtaken: list[str] = []

    def newer_attempt_starts(done: int, total: int) -> None:
        if not overtaken:
            overtaken.append(p.take_backup(request(2), ignore).external_id)

    with pytest.raises(ProviderError, match="superseded"):
        p.take_backup(request(1), newer_attempt_starts)
    assert [s.external_id for s in p.list_restore_points()] == overtaken


def test_abandon_removes_only_what_that_attempt_wrote(tmp_path):
    p = provider(tmp_path)
    first = p.take_backup(request(1), ignore)  # committed, then its worker lost the job
    second = p.take_backup(request(2), ignore)
    p.abandon_backup("rp-1", 1)
    p.abandon_backup("rp-1", 1)  # idempotent
    assert [s.external_id for s in p.list_restore_points()] == [second.external_id]
    assert first.external_id != second.external_id


def test_list_restore_points_needs_its_capability(tmp_path):
    p = provider(tmp_path, capabilities=["incremental"])
    with pytest.raises(Unsupported, match="list its restore points"):
        p.list_restore_points()


def test_delete_backup_removes_the_point_and_is_idempotent(tmp_path):
    p = provider(tmp_path)
    keep, gone = backup(p), backup(p)
    p.delete_backup(ref(gone.external_id), forced=False)
    p.delete_backup(ref(gone.external_id), forced=False)
    p.delete_backup(ref("dummy-never-existed"), forced=True)
    assert set(p.restore_points()) == {keep.external_id}


def test_told_to_fail_delete_keeps_the_point(tmp_path):
    p = provider(tmp_path, fail=["delete"])
    result = backup(p)
    with pytest.raises(ProviderError, match="told to fail delete"):
        p.delete_backup(ref(result.external_id), forced=False)
    assert result.external_id in p.restore_points()


# -- restores --------------------------------------------------------------------------------


def test_restore_vm_records_the_restore_and_reports_progress(tmp_path):
    p = provider(tmp_path)
    result = backup(p)
    progress = Recorder()
    p.restore_vm(ref(result.external_id), VM, progress)
    assert p.restores() == [{"point": result.external_id, "vm": "vm-1", "volumes": ["vol-root", "vol-data"]}]
    assert progress.calls[-1] == (PROTECTED, PROTECTED)


def test_restore_vm_of_an_unknown_point_raises_a_final_provider_error(tmp_path):
    p = provider(tmp_path)
    with pytest.raises(ProviderError, match="restore point dummy-missing is not at the back end") as exc:
        p.restore_vm(ref("dummy-missing"), VM, ignore)
    assert exc.value.retryable is False
    assert p.restores() == []


def test_restore_vm_of_a_deleted_point_raises(tmp_path):
    p = provider(tmp_path)
    result = backup(p)
    p.delete_backup(ref(result.external_id), forced=False)
    with pytest.raises(ProviderError, match="is not at the back end"):
        p.restore_vm(ref(result.external_id), VM, ignore)


def test_restore_volume_returns_a_new_datadisk_at_a_new_path(tmp_path):
    p = provider(tmp_path)
    result = backup(p)
    restored = p.restore_volume(ref(result.external_id), ROOT, VM, ignore)
    assert restored.type == "DATADISK"
    assert restored.id not in {ROOT.id, DATA.id}
    assert restored.path not in {ROOT.path, DATA.path}
    assert restored.path.startswith("/srv/pool1/vm1-0-restored-")
    assert restored.path.endswith(".qcow2")
    assert restored.device_id == 2  # after the target's highest device id
    assert (restored.size, restored.format, restored.pool_id) == (ROOT.size, "qcow2", "pool-1")
    assert p.restores() == [{"point": result.external_id, "vm": "vm-1", "volumes": ["vol-root"]}]


def test_restore_volume_twice_gives_different_volumes(tmp_path):
    p = provider(tmp_path)
    point = ref(backup(p).external_id)
    first = p.restore_volume(point, DATA, VM, ignore)
    second = p.restore_volume(point, DATA, VM, ignore)
    assert first.id != second.id
    assert first.path != second.path


def test_restore_volume_without_an_extension_stays_in_the_same_directory(tmp_path):
    volume = VolumeRef("vol-raw", "RAW-1", "DATADISK", 1, GiB, "/srv/pool.d/vm1-1", "raw", "pool-1")
    vm = VMRef("vm-1", "web1", "zone-1", "host-1", (volume,))
    p = provider(tmp_path)
    result = p.take_backup(BackupRequest("rp-1", vm, "dummy-gold"), ignore)
    restored = p.restore_volume(RestorePointRef("rp-1", result.external_id, "FULL", vm), volume, vm, ignore)
    assert posixpath.dirname(restored.path) == "/srv/pool.d"
    assert restored.path != volume.path


def test_restore_volume_of_an_unknown_point_raises(tmp_path):
    with pytest.raises(ProviderError, match="is not at the back end"):
        provider(tmp_path).restore_volume(ref("dummy-missing"), ROOT, VM, ignore)


def test_verify_needs_a_known_point(tmp_path):
    p = provider(tmp_path)
    p.verify(ref(backup(p).external_id))
    with pytest.raises(ProviderError, match="is not at the back end"):
        p.verify(ref("dummy-missing"))


# -- state -----------------------------------------------------------------------------------


def test_state_survives_a_new_driver_instance_on_the_same_data_dir(tmp_path):
    first = backup(provider(tmp_path))
    again = provider(tmp_path)
    assert first.external_id in again.restore_points()
    again.restore_vm(ref(first.external_id), VM, ignore)
    assert again.restores()[0]["point"] == first.external_id


def test_fail_times_counts_across_driver_instances(tmp_path):
    with pytest.raises(ProviderError):
        backup(provider(tmp_path, fail=["backup"], fail_times=1))
    assert backup(provider(tmp_path, fail=["backup"], fail_times=1)).backup_type == "FULL"


def test_separate_data_dirs_do_not_share_state(tmp_path):
    backup(provider(tmp_path / "a"))
    assert provider(tmp_path / "b").restore_points() == {}


# -- registry --------------------------------------------------------------------------------


def test_registry_finds_the_dummy_driver_by_entry_point(tmp_path):
    assert "dummy" in registry.available_drivers()
    assert registry.driver_class("dummy") is DummyProvider
    made = registry.create("dummy", "via-registry", {"capabilities": ["verify"]}, tmp_path)
    assert isinstance(made, DummyProvider)
    assert made.name == "via-registry"
    assert made.capabilities == {Capability.VERIFY}


def test_registry_rejects_an_unknown_driver_listing_installed_ones(tmp_path):
    with pytest.raises(
        InvalidArgument, match=r"^driver: unknown provider driver 'tape-robot'; installed: .*\bdummy\b"
    ) as exc:
        registry.create("tape-robot", "x", {}, tmp_path)
    assert exc.value.field == "driver"
