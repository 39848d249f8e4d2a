"""The NAS driver driven by the orchestrator: backup, destroy the disks, restore, compare."""

from __future__ import annotations

import shutil
import subprocess

from api import views
from api.cloudstack import render
from orchestrator.domain.models import BackupStatus, BackupType, JobState
from orchestrator.usecases import (
    accounts,
    assignments,
    backup_providers,
    backups,
    inventory,
    jobs,
    offerings,
    restores,
    verification,
)
from tests.providers.nas.conftest import (
    MiB,
    guest_bytes,
    make_qcow2,
    make_raw,
    overwrite,
    sha256,
    stored_chunks,
)


def _world(core, tmp_path):
    accounts.bootstrap(core)
    admin = accounts.admin_actor(core)
    root = make_raw(tmp_path / "pool" / "root.raw", size=4 * MiB, seed=1)
    data = make_qcow2(tmp_path / "pool" / "data.qcow2", size=4 * MiB, seed=2)
    with core.scope(admin) as s:
        inventory.create_zone(s, "zone1")
        inventory.create_host(s, zone="zone1", name="kvm1", hypervisor="kvm")
        inventory.create_pool(s, zone="zone1", name="pool1", path=str(tmp_path / "pool"))
        accounts.create_account(s, "alice")
        vm = inventory.register_vm(
            s,
            name="web1",
            account="alice",
            zone="zone1",
            host="kvm1",
            # Restored in place, by a provider that cannot stop a VM.
            state="Stopped",
            volumes=[
                {"pool": "pool1", "size": 4 * MiB, "path": str(root), "format": "raw"},
                {"pool": "pool1", "size": 4 * MiB, "path": str(data), "format": "qcow2"},
            ],
        )
        vm_id = vm.id
        provider = backup_providers.add(
            s,
            name="nas1",
            driver="nas",
            config={"repository": str(tmp_path / "repo"), "snapshot": "direct", "chunk_size": 256 * 1024},
        )
        offering = offerings.import_offering(
            s, name="daily", zone="zone1", provider=provider.id, external_id="nas-daily", rpo="24h"
        )
        assignments.assign(s, vm_id, offering.id)
    return admin, vm_id, root, data


def _run(core, actor, job_id):
    with core.scope(actor) as s:
        job = jobs.show(s, job_id)
        assert job.state is JobState.SUCCEEDED, job.error
        return job


def test_backup_destroy_restore_through_the_framework(core, tmp_path):
    (tmp_path / "pool").mkdir()
    admin, vm_id, root, data = _world(core, tmp_path)
    root_hash = sha256(root)
    data_guest = guest_bytes(data, "qcow2", tmp_path)

    with core.scope(admin) as s:
        first = backups.create_backup(s, vm_id).id
    point_id = _run(core, admin, first).subject_id
    with core.scope(admin) as s:
        point = backups.show(s, point_id)
        assert point.status is BackupStatus.BACKED_UP
        assert point.backup_type is BackupType.FULL
        assert point.external_id == point_id
        assert point.protected_size == 8 * MiB
        assert 0 < point.size < 8 * MiB

    overwrite(root, [MiB])
    with core.scope(admin) as s:
        second = backups.create_backup(s, vm_id).id
    incremental = _run(core, admin, second).subject_id
    with core.scope(admin) as s:
        inc = backups.show(s, incremental)
        assert inc.backup_type is BackupType.INCREMENTAL
        assert inc.parent_id == point_id
        assert inc.size < point.size / 4

    root.unlink()
    data.write_bytes(b"corrupted by an accident")
    with core.scope(admin) as s:
        restore_job = restores.restore_vm(s, point_id).id
    _run(core, admin, restore_job)

    assert sha256(root) == root_hash
    assert guest_bytes(data, "qcow2", tmp_path) == data_guest
    assert subprocess.run(["qemu-img", "check", str(data)], capture_output=True).returncode == 0
    with core.scope(admin) as s:
        assert backups.show(s, point_id).status is BackupStatus.BACKED_UP


def test_deleting_a_restore_point_in_the_middle_through_the_framework(core, tmp_path):
    (tmp_path / "pool").mkdir()
    admin, vm_id, root, _ = _world(core, tmp_path)
    ids = []
    for i in range(3):
        overwrite(root, [i * MiB])
        with core.scope(admin) as s:
            job_id = backups.create_backup(s, vm_id).id
        ids.append(_run(core, admin, job_id).subject_id)
    final_hash = sha256(root)

    with core.scope(admin) as s:
        delete_job = backups.delete_backup(s, ids[1]).id  # others depend on it: allowed here
    _run(core, admin, delete_job)
    root.unlink()
    with core.scope(admin) as s:
        restore_job = restores.restore_vm(s, ids[2]).id
    _run(core, admin, restore_job)

    assert sha256(root) == final_hash
    assert not (tmp_path / "repo" / "points" / f"{ids[1]}.manifest").exists()


def test_a_deduplicated_full_reports_what_it_restores_beside_the_nothing_it_stored(core, tmp_path):
    (tmp_path / "pool").mkdir()
    admin, vm_id, root, data = _world(core, tmp_path)
    with core.scope(admin) as s:
        first_job = backups.create_backup(s, vm_id).id
    _run(core, admin, first_job)
    # A clone of web1: its disks hold the same bytes, so its first (full) point stores no chunk.
    clone = [shutil.copy(image, tmp_path / "pool" / f"clone-{image.name}") for image in (root, data)]
    with core.scope(admin) as s:
        twin = inventory.register_vm(
            s,
            name="web2",
            account="alice",
            zone="zone1",
            host="kvm1",
            volumes=[
                {"pool": "pool1", "size": 4 * MiB, "path": str(clone[0]), "format": "raw"},
                {"pool": "pool1", "size": 4 * MiB, "path": str(clone[1]), "format": "qcow2"},
            ],
        ).id
        assignments.assign(s, twin, offerings.find(s, "daily").id)
        twin_job = backups.create_backup(s, twin).id
    point_id = _run(core, admin, twin_job).subject_id

    with core.scope(admin) as s:
        point = backups.show(s, point_id)
        shown, cloudstack = views.backup(point), render.backup(point)
    assert (shown["type"], shown["logical_size"], shown["stored_size"]) == ("FULL", 8 * MiB, 0)
    assert (cloudstack["type"], cloudstack["virtualsize"], cloudstack["size"]) == ("FULL", 8 * MiB, 0)


def test_a_verify_job_marks_a_point_with_a_corrupted_chunk_error(core, tmp_path):
    (tmp_path / "pool").mkdir()
    admin, vm_id, _, _ = _world(core, tmp_path)
    with core.scope(admin) as s:
        first = backups.create_backup(s, vm_id).id
    point_id = _run(core, admin, first).subject_id
    with core.scope(admin) as s:
        intact = verification.verify_backup(s, point_id).id
    assert _run(core, admin, intact).result["intact"] is True

    victim = sorted(stored_chunks(tmp_path / "repo"))[0]
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    with core.scope(admin) as s:
        damaged = verification.verify_backup(s, point_id).id
    result = _run(core, admin, damaged).result
    assert result["intact"] is False
    assert victim.name[:16] in result["damage"]
    with core.scope(admin) as s:
        point = backups.show(s, point_id)
        assert point.status is BackupStatus.ERROR
        assert victim.name[:16] in point.error
