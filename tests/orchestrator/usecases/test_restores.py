"""Restoring whole VMs (in place, or recreated after destruction) and single volumes."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import Conflict, InvalidArgument, NotFound, Unsupported
from orchestrator.domain.models import BackupStatus, Job, JobState, VirtualMachine, VMState, VolumeType
from orchestrator.engine.execution import Outcome, _record_success, claim, execute
from orchestrator.usecases import assignments, backups, inventory, jobs, offerings, restores
from tests.conftest import GiB, add_provider, import_offering


def _job(world, job_id):
    with world.core.scope(world.admin) as s:
        return jobs.show(s, job_id)


def _backup(world, vm_id, actor=None):
    with world.core.scope(actor or world.alice) as s:
        job_id = backups.create_backup(s, vm_id).id
    job = _job(world, job_id)
    assert job.state is JobState.SUCCEEDED, job.error
    return job.subject_id


def _point(world, backup_id):
    with world.core.scope(world.admin) as s:
        return backups.show(s, backup_id)


def _volume_ids(world, vm_id):
    with world.core.scope(world.admin) as s:
        return [v.id for v in inventory.list_volumes(s, vm_id)]


def _restore_vm(world, backup_id, actor=None):
    # web1 runs: the dummy provider stops it first.
    with world.core.scope(actor or world.alice) as s:
        return restores.restore_vm(s, backup_id, stop=True).id


def _restore_volume(world, backup_id, volume_id, vm_id, actor=None):
    with world.core.scope(actor or world.alice) as s:
        return restores.restore_volume(s, backup_id, volume_id, vm_id).id


def _offering_on(world, name, **config):
    provider = add_provider(world.core, world.admin, f"prov-{name}", **config)
    return import_offering(world.core, world.admin, provider, name)


@pytest.fixture
def point(world):
    return _backup(world, world.alice_vm)


# -- whole VM ------------------------------------------------------------------------------------


def test_restore_in_place_succeeds(world, point):
    job = _job(world, _restore_vm(world, point))

    assert job.state is JobState.SUCCEEDED
    assert job.result["vm_id"] == world.alice_vm
    assert job.result["recreated"] is False
    assert _point(world, point).status is BackupStatus.BACKED_UP


def test_restore_in_place_keeps_vm_and_volumes(world, point):
    before = _volume_ids(world, world.alice_vm)

    _restore_vm(world, point)

    assert _volume_ids(world, world.alice_vm) == before


def test_restore_point_can_be_restored_twice(world, point):
    _restore_vm(world, point)

    job = _job(world, _restore_vm(world, point))

    assert job.state is JobState.SUCCEEDED


def test_restore_recreates_destroyed_vm(world, point):
    volumes = _volume_ids(world, world.alice_vm)
    with world.core.scope(world.admin) as s:
        inventory.destroy_vm(s, world.alice_vm)
    with pytest.raises(NotFound), world.core.scope(world.alice) as s:
        inventory.show_vm(s, world.alice_vm)

    job = _job(world, _restore_vm(world, point))

    assert job.state is JobState.SUCCEEDED, job.error
    assert job.result["recreated"] is True
    with world.core.scope(world.alice) as s:
        vm = inventory.show_vm(s, world.alice_vm)
        assert vm.state is VMState.STOPPED
        assert vm.name == "web1"
        assert vm.removed_at is None
        restored = inventory.list_volumes(s, world.alice_vm)
        assert [v.id for v in restored] == volumes
        assert [v.type for v in restored] == [VolumeType.ROOT, VolumeType.DATADISK]
        assert [v.size for v in restored] == [10 * GiB, 2 * GiB]
        assert all(v.removed_at is None for v in restored)
    assert _point(world, point).status is BackupStatus.BACKED_UP


def test_a_vm_restored_after_destroy_is_back_under_its_offering(world, point):
    with world.core.scope(world.admin) as s:
        inventory.destroy_vm(s, world.alice_vm)
    _job(world, _restore_vm(world, point))
    with world.core.scope(world.alice) as s:
        assert inventory.show_vm(s, world.alice_vm).backup_offering_id == world.gold_id


def test_a_vm_restored_after_its_offering_went_comes_back_without_one(world, point):
    with world.core.scope(world.admin) as s:
        inventory.destroy_vm(s, world.alice_vm)
    with world.core.scope(world.admin) as s:
        assignments.remove(s, world.bob_vm)
        offerings.delete_offering(s, world.gold_id)
    _job(world, _restore_vm(world, point))
    with world.core.scope(world.alice) as s:
        assert inventory.show_vm(s, world.alice_vm).backup_offering_id is None


def test_recreated_vm_is_listed_for_its_owner(world, point):
    with world.core.scope(world.admin) as s:
        inventory.destroy_vm(s, world.alice_vm)
    _restore_vm(world, point)

    with world.core.scope(world.alice) as s:
        names = [vm.name for vm in inventory.list_vms(s).items]
    assert "web1" in names


def test_restore_of_failed_point_conflicts(world):
    offering = _offering_on(world, "broken", fail=["backup"])
    with world.core.scope(world.admin) as s:
        assignments.assign(s, world.alice_vm2, offering)
    with world.core.scope(world.alice) as s:
        job_id = backups.create_backup(s, world.alice_vm2).id
    failed = _job(world, job_id).subject_id
    assert _point(world, failed).status is BackupStatus.FAILED

    with pytest.raises(Conflict, match=rf"{failed} is Failed"), world.core.scope(world.alice) as s:
        restores.restore_vm(s, failed)


def test_restore_of_expunged_point_conflicts(world, point):
    with world.core.scope(world.alice) as s:
        backups.delete_backup(s, point)

    with pytest.raises(Conflict, match="Expunged"), world.core.scope(world.alice) as s:
        restores.restore_vm(s, point)


def test_restore_by_other_tenant_is_not_found(world, point):
    with pytest.raises(NotFound, match=point), world.core.scope(world.bob) as s:
        restores.restore_vm(s, point)

    with world.core.scope(world.admin) as s:
        assert jobs.list_jobs(s, kind="restore_vm").total == 0


def test_restore_in_place_of_a_running_vm_conflicts_without_stop(world, point):
    with (
        pytest.raises(Conflict, match="virtual machine web1 is Running") as raised,
        world.core.scope(world.alice) as s,
    ):
        restores.restore_vm(s, point)

    assert raised.value.field == "stop"
    with world.core.scope(world.admin) as s:
        assert jobs.list_jobs(s, kind="restore_vm").total == 0


def test_stop_of_a_running_vm_is_unsupported_where_its_provider_cannot_stop_it(world):
    offering = _offering_on(world, "no-stop", capabilities=["restore_volume"])
    with world.core.scope(world.admin) as s:
        assignments.change(s, world.alice_vm, offering)
    point = _backup(world, world.alice_vm)

    with (
        pytest.raises(Unsupported, match=r"cannot stop virtual machine web1 \(Running\)"),
        world.core.scope(world.alice) as s,
    ):
        restores.restore_vm(s, point, stop=True)


def test_stop_has_the_provider_stop_a_running_vm_first(world, point):
    job = _job(world, _restore_vm(world, point))

    assert job.state is JobState.SUCCEEDED, job.error
    assert job.params["stop"] is True


def test_a_stopped_vm_is_restored_in_place_by_a_provider_that_cannot_stop_it(world):
    offering = _offering_on(world, "no-stop", capabilities=["restore_volume"])
    with world.core.scope(world.admin) as s:
        assignments.assign(s, world.alice_vm2, offering)
    point = _backup(world, world.alice_vm2)

    with world.core.scope(world.alice) as s:
        job_id = restores.restore_vm(s, point).id

    job = _job(world, job_id)
    assert job.state is JobState.SUCCEEDED, job.error


def _set_state(world, vm_id, state):
    with world.core.db.session() as session:
        session.get(VirtualMachine, vm_id).state = state


def test_a_vm_started_after_its_restore_was_asked_for_is_not_written(world, deferred, point):
    _set_state(world, world.alice_vm, VMState.STOPPED)
    with deferred.scope(world.alice) as s:
        job_id = restores.restore_vm(s, point).id
    _set_state(world, world.alice_vm, VMState.RUNNING)

    assert execute(deferred, job_id) is Outcome.FAILED
    job = _job(world, job_id)
    assert "virtual machine web1 is Running" in job.error
    assert _point(world, point).status is BackupStatus.BACKED_UP


def test_restore_by_admin_of_users_point_succeeds(world, point):
    job = _job(world, _restore_vm(world, point, world.admin))

    assert job.state is JobState.SUCCEEDED
    assert job.account_id == _point(world, point).account_id


def test_second_restore_while_first_is_queued_conflicts(world, deferred, point):
    with deferred.scope(world.alice) as s:
        restores.restore_vm(s, point, stop=True)

    with pytest.raises(Conflict, match="restore of virtual machine web1 is already in progress"):
        _restore_vm(world, point)


def test_a_point_read_by_two_restores_is_given_back_when_the_last_one_ends(world, deferred, point):
    # A whole-VM restore and a volume restore of the same point, both running.
    with deferred.scope(world.alice) as s:
        whole = restores.restore_vm(s, point, stop=True).id
        one = restores.restore_volume(s, point, _datadisk_of(world, point)["id"], world.alice_vm2).id
    finishes = {}
    for job_id in (whole, one):
        job = claim(deferred, job_id, "w1")
        assert isinstance(job, Job)
        handler = deferred.handlers[job.kind]
        finishes[job_id] = (job, "w1", handler, handler.run(deferred, job, lambda _done, _total: None))
    assert _point(world, point).status is BackupStatus.RESTORING

    assert _record_success(deferred, *finishes[whole]) is Outcome.SUCCEEDED
    # The volume restore still reads the point: it stays Restoring (and cannot be deleted).
    assert _point(world, point).status is BackupStatus.RESTORING
    assert _record_success(deferred, *finishes[one]) is Outcome.SUCCEEDED
    assert _point(world, point).status is BackupStatus.BACKED_UP


# -- single volume -------------------------------------------------------------------------------


def _datadisk_of(world, backup_id):
    volumes = _point(world, backup_id).vm_metadata["volumes"]
    return next(v for v in volumes if v["type"] == "DATADISK")


def test_restore_volume_attaches_new_datadisk_to_other_vm(world, point):
    source = _datadisk_of(world, point)
    before = _volume_ids(world, world.alice_vm2)

    job = _job(world, _restore_volume(world, point, source["id"], world.alice_vm2))

    assert job.state is JobState.SUCCEEDED, job.error
    with world.core.scope(world.alice) as s:
        volumes = inventory.list_volumes(s, world.alice_vm2)
    new = [v for v in volumes if v.id not in before]
    assert len(new) == 1
    assert new[0].id == job.result["volume_id"]
    assert new[0].type is VolumeType.DATADISK
    assert new[0].size == source["size"]
    assert new[0].id != source["id"]
    assert new[0].device_id not in {v.device_id for v in volumes if v.id in before}
    assert _point(world, point).status is BackupStatus.BACKED_UP


def test_restore_volume_leaves_source_vm_alone(world, point):
    before = _volume_ids(world, world.alice_vm)

    _restore_volume(world, point, _datadisk_of(world, point)["id"], world.alice_vm2)

    assert _volume_ids(world, world.alice_vm) == before


def test_restore_volume_to_vm_in_other_zone_is_invalid(world, point):
    with world.core.scope(world.admin) as s:
        far = inventory.register_vm(
            s,
            name="far1",
            account="alice",
            zone="zone2",
            host="kvm2",
            volumes=[{"pool": "pool2", "size": GiB}],
        ).id

    with pytest.raises(InvalidArgument, match="zone") as err:
        _restore_volume(world, point, _datadisk_of(world, point)["id"], far)
    assert "far1" in err.value.message
    assert len(_volume_ids(world, far)) == 1


def test_restore_volume_unsupported_by_provider(world):
    offering = _offering_on(world, "novolume", capabilities=["incremental"])
    with world.core.scope(world.admin) as s:
        assignments.assign(s, world.alice_vm2, offering)
    point = _backup(world, world.alice_vm2)

    with pytest.raises(Unsupported, match=r"'prov-novolume'.*restore a single volume"):
        _restore_volume(world, point, _datadisk_of(world, point)["id"], world.alice_vm)


def test_restore_volume_unknown_volume_is_not_found(world, point):
    with pytest.raises(NotFound, match="no-such-volume"):
        _restore_volume(world, point, "no-such-volume", world.alice_vm2)


def test_restore_volume_to_other_tenants_vm_is_not_found(world, point):
    with pytest.raises(NotFound, match=world.bob_vm):
        _restore_volume(world, point, _datadisk_of(world, point)["id"], world.bob_vm)

    assert len(_volume_ids(world, world.bob_vm)) == 2


def test_restore_volume_by_other_tenant_is_not_found(world, point):
    with pytest.raises(NotFound, match=point):
        _restore_volume(world, point, _datadisk_of(world, point)["id"], world.bob_vm, world.bob)


# -- restore to a new VM ---------------------------------------------------------------------


def test_restore_to_new_vm_creates_a_second_vm_beside_the_original(world):
    with world.core.scope(world.alice) as s:
        point = backups.create_backup(s, world.alice_vm).subject_id
    with world.core.scope(world.alice) as s:
        job = restores.restore_to_new_vm(s, point, "web1-copy")
    with world.core.scope(world.alice) as s:
        done = jobs.show(s, job.id)
        assert done.state is JobState.SUCCEEDED
        new_vm = inventory.show_vm(s, done.params["vm_id"])
        original = inventory.show_vm(s, world.alice_vm)
        assert new_vm.id != original.id
        assert new_vm.name == "web1-copy"
        assert new_vm.account_id == original.account_id
        assert [v.device_id for v in new_vm.live_volumes] == [v.device_id for v in original.live_volumes]
        assert not {v.id for v in new_vm.live_volumes} & {v.id for v in original.live_volumes}
        assert not {v.path for v in new_vm.live_volumes} & {v.path for v in original.live_volumes}
        assert original.state is VMState.RUNNING


def test_restore_to_new_vm_needs_the_capability(world):
    provider = add_provider(world.core, world.admin, "no-new-vm", capabilities=["incremental"])
    offering = import_offering(world.core, world.admin, provider, "plain")
    with world.core.scope(world.alice) as s:
        assignments.assign(s, world.alice_vm2, offering)
    with world.core.scope(world.alice) as s:
        point = backups.create_backup(s, world.alice_vm2).subject_id
    with (
        pytest.raises(Unsupported, match="restore to a new virtual machine"),
        world.core.scope(world.alice) as s,
    ):
        restores.restore_to_new_vm(s, point, "copy")


def test_restore_to_new_vm_of_another_tenants_point_is_not_found(world):
    with world.core.scope(world.bob) as s:
        point = backups.create_backup(s, world.bob_vm).subject_id
    with pytest.raises(NotFound), world.core.scope(world.alice) as s:
        restores.restore_to_new_vm(s, point, "stolen")
