"""Putting VMs under offerings, taking them out, and moving them between offerings."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import Conflict, InvalidArgument, NotFound
from orchestrator.domain.jobparams import PlannedBackup
from orchestrator.domain.models import BackupStatus, BackupType, JobKind, JobState
from orchestrator.engine import routing
from orchestrator.usecases import assignments, backups, inventory, jobs, offerings, restores, schedules
from tests.conftest import add_provider, import_offering

# A provider that keeps a VM's restore points when the VM leaves its offering.
KEEPING = ["incremental", "restore_volume", "delete_single_restore_point"]
# One that deletes them at the back end.
REMOVING = [*KEEPING, "removes_backups_on_unassign"]


def _offering(world, name, capabilities, external_id="dummy-gold"):
    provider = add_provider(world.core, world.admin, f"prov-{name}", capabilities=capabilities)
    return import_offering(world.core, world.admin, provider, name, external_id=external_id)


def _assign(world, vm_id, offering_id, actor=None):
    with world.core.scope(actor or world.alice) as s:
        assignments.assign(s, vm_id, offering_id)


def _backup(world, vm_id, actor=None):
    actor = actor or world.alice
    with world.core.scope(actor) as s:
        job_id = backups.create_backup(s, vm_id).id
    with world.core.scope(actor) as s:
        job = jobs.show(s, job_id)
        assert job.state is JobState.SUCCEEDED, job.error
        return job.subject_id


def _point(world, backup_id):
    with world.core.scope(world.alice) as s:
        return backups.show(s, backup_id)


def _offering_of(world, vm_id):
    with world.core.scope(world.alice) as s:
        return inventory.show_vm(s, vm_id).backup_offering_id


# -- assign --------------------------------------------------------------------------------------


def test_assign_puts_vm_under_offering(world):
    _assign(world, world.alice_vm2, world.gold_id)

    assert _offering_of(world, world.alice_vm2) == world.gold_id


def test_assign_same_offering_again_is_a_no_op(world):
    _assign(world, world.alice_vm, world.gold_id)

    assert _offering_of(world, world.alice_vm) == world.gold_id


def test_assign_when_vm_has_another_offering_conflicts(world):
    with pytest.raises(Conflict, match="change it instead"), world.core.scope(world.alice) as s:
        assignments.assign(s, world.alice_vm, world.bronze_id)

    assert _offering_of(world, world.alice_vm) == world.gold_id


def test_assign_offering_of_another_zone_is_invalid(world):
    zone2_gold = import_offering(world.core, world.admin, world.provider_id, "gold-z2", zone="zone2")

    with pytest.raises(InvalidArgument, match="another zone") as err, world.core.scope(world.alice) as s:
        assignments.assign(s, world.alice_vm2, zone2_gold)
    assert err.value.field == "offering"
    assert _offering_of(world, world.alice_vm2) is None


def test_an_offering_named_only_in_another_zone_says_so(world):
    # The CLI finds the offering by name in the VM's zone; only zone2 has "gold-z2".
    import_offering(world.core, world.admin, world.provider_id, "gold-z2", zone="zone2")
    with pytest.raises(InvalidArgument, match="another zone"), world.core.scope(world.alice) as s:
        assignments.assign(s, world.alice_vm2, offerings.find(s, "gold-z2", world.zone_id).id)


def test_an_offering_name_in_both_zones_resolves_to_the_vms_zone(world):
    import_offering(world.core, world.admin, world.provider_id, "gold", zone="zone2")
    with world.core.scope(world.alice) as s:
        assert offerings.find(s, "gold", world.zone_id).id == world.gold_id
        with pytest.raises(InvalidArgument, match="several zones"):
            offerings.find(s, "gold")


def test_assign_other_tenants_vm_is_not_found(world):
    with pytest.raises(NotFound, match=world.alice_vm2), world.core.scope(world.bob) as s:
        assignments.assign(s, world.alice_vm2, world.gold_id)

    assert _offering_of(world, world.alice_vm2) is None


def test_assign_unknown_offering_is_not_found(world):
    with pytest.raises(NotFound, match="backup offering"), world.core.scope(world.alice) as s:
        assignments.assign(s, world.alice_vm2, "no-such-offering")


# -- remove --------------------------------------------------------------------------------------


def test_remove_takes_vm_out_of_offering(world):
    with world.core.scope(world.alice) as s:
        assignments.remove(s, world.alice_vm)

    assert _offering_of(world, world.alice_vm) is None


def test_remove_unassigned_vm_conflicts(world):
    with pytest.raises(Conflict, match="no backup offering"), world.core.scope(world.alice) as s:
        assignments.remove(s, world.alice_vm2)


def test_remove_deletes_the_vms_schedules(world):
    with world.core.scope(world.alice) as s:
        schedules.create(s, vm_id=world.alice_vm, interval_type="DAILY", schedule="0:1")
    with world.core.scope(world.alice) as s:
        assignments.remove(s, world.alice_vm)

    with world.core.scope(world.alice) as s:
        assert schedules.list_schedules(s, world.alice_vm) == []


def _planned_backup(world, vm_id: str) -> str:
    with world.core.scope(world.admin) as s:
        job = jobs.new_job(
            kind=JobKind.BACKUP,
            state=JobState.PLANNED,
            account_id=world.alice.account_id,
            requested_by=None,
            subject_type="vm",
            subject_id=vm_id,
            placement=routing.planned_placement(world.pool_id),
            params=PlannedBackup(reason="test", late=False, expected_end="2030-01-01T00:00:00+00:00"),
        )
        s.session.add(job)
        return job.id


def _state(world, job_id: str) -> JobState:
    with world.core.scope(world.admin) as s:
        return jobs.show(s, job_id).state


def test_remove_cancels_the_vms_planned_backups(world):
    planned = _planned_backup(world, world.alice_vm)
    other = _planned_backup(world, world.bob_vm)

    with world.core.scope(world.alice) as s:
        assignments.remove(s, world.alice_vm)

    assert _state(world, planned) is JobState.CANCELLED
    assert _state(world, other) is JobState.PLANNED


def test_destroy_takes_the_vms_schedules_and_planned_backups_with_it(world):
    with world.core.scope(world.alice) as s:
        schedules.create(s, vm_id=world.alice_vm, interval_type="DAILY", schedule="0:1")
    planned = _planned_backup(world, world.alice_vm)

    with world.core.scope(world.admin) as s:
        inventory.destroy_vm(s, world.alice_vm)

    assert _state(world, planned) is JobState.CANCELLED
    with world.core.scope(world.admin) as s:
        assert schedules.list_schedules(s) == []


def test_remove_refused_when_provider_would_delete_restore_points(world):
    offering = _offering(world, "removing", REMOVING)
    _assign(world, world.alice_vm2, offering)
    point = _backup(world, world.alice_vm2)

    with pytest.raises(Conflict, match=r"1 restore point.*forced") as err, world.core.scope(world.alice) as s:
        assignments.remove(s, world.alice_vm2)
    assert "prov-removing" in err.value.message
    assert _offering_of(world, world.alice_vm2) == offering
    assert _point(world, point).status is BackupStatus.BACKED_UP


def test_forced_remove_marks_restore_points_removed(world):
    offering = _offering(world, "removing", REMOVING)
    _assign(world, world.alice_vm2, offering)
    point = _backup(world, world.alice_vm2)

    with world.core.scope(world.alice) as s:
        assignments.remove(s, world.alice_vm2, forced=True)

    assert _offering_of(world, world.alice_vm2) is None
    assert _point(world, point).status is BackupStatus.REMOVED
    with world.core.scope(world.alice) as s:
        assert backups.list_backups(s, vm_id=world.alice_vm2).total == 0


def test_remove_without_restore_points_needs_no_force(world):
    offering = _offering(world, "removing", REMOVING)
    _assign(world, world.alice_vm2, offering)

    with world.core.scope(world.alice) as s:
        assignments.remove(s, world.alice_vm2)

    assert _offering_of(world, world.alice_vm2) is None


def test_remove_keeps_restore_points_when_provider_keeps_them(world):
    offering = _offering(world, "keeping", KEEPING)
    _assign(world, world.alice_vm2, offering)
    point = _backup(world, world.alice_vm2)

    with world.core.scope(world.alice) as s:
        assignments.remove(s, world.alice_vm2)

    assert _offering_of(world, world.alice_vm2) is None
    assert _point(world, point).status is BackupStatus.BACKED_UP
    with world.core.scope(world.alice) as s:
        assert [b.id for b in backups.list_backups(s, vm_id=world.alice_vm2).items] == [point]


def test_remove_refused_while_backup_is_queued(world, deferred):
    with deferred.scope(world.alice) as s:
        backups.create_backup(s, world.alice_vm)

    with pytest.raises(Conflict, match="in progress"), world.core.scope(world.alice) as s:
        assignments.remove(s, world.alice_vm, forced=True)

    assert _offering_of(world, world.alice_vm) == world.gold_id


# -- change --------------------------------------------------------------------------------------


@pytest.fixture
def keeping_pair(world):
    """A gold and a bronze offering on a provider that keeps restore points on unassign."""
    provider = add_provider(world.core, world.admin, "keeper", capabilities=KEEPING)
    gold = import_offering(world.core, world.admin, provider, "k-gold")
    bronze = import_offering(world.core, world.admin, provider, "k-bronze", external_id="dummy-bronze")
    _assign(world, world.alice_vm2, gold)
    return gold, bronze


def test_change_moves_vm_to_new_offering(world, keeping_pair):
    _, bronze = keeping_pair

    with world.core.scope(world.alice) as s:
        assignments.change(s, world.alice_vm2, bronze)

    assert _offering_of(world, world.alice_vm2) == bronze


def test_change_keeps_old_restore_points_on_old_offering(world, keeping_pair):
    gold, bronze = keeping_pair
    full = _backup(world, world.alice_vm2)
    incremental = _backup(world, world.alice_vm2)

    with world.core.scope(world.alice) as s:
        assignments.change(s, world.alice_vm2, bronze)

    for point_id in (full, incremental):
        point = _point(world, point_id)
        assert point.offering_id == gold
        assert point.status is BackupStatus.BACKED_UP
    with world.core.scope(world.alice) as s:
        listed = backups.list_backups(s, vm_id=world.alice_vm2, offering_id=gold)
    assert {b.id for b in listed.items} == {full, incremental}


def test_old_restore_point_is_restorable_after_change(world, keeping_pair):
    _, bronze = keeping_pair
    point = _backup(world, world.alice_vm2)
    with world.core.scope(world.alice) as s:
        assignments.change(s, world.alice_vm2, bronze)

    with world.core.scope(world.alice) as s:
        job_id = restores.restore_vm(s, point).id

    with world.core.scope(world.alice) as s:
        job = jobs.show(s, job_id)
        assert job.state is JobState.SUCCEEDED, job.error
    assert _point(world, point).status is BackupStatus.BACKED_UP


def test_first_backup_after_change_is_full_without_parent(world, keeping_pair):
    _, bronze = keeping_pair
    _backup(world, world.alice_vm2)
    with world.core.scope(world.alice) as s:
        assignments.change(s, world.alice_vm2, bronze)

    point = _point(world, _backup(world, world.alice_vm2))

    assert point.offering_id == bronze
    assert point.backup_type is BackupType.FULL
    assert point.parent_id is None


def test_change_refused_without_forced_when_old_provider_removes_backups(world):
    # The world's dummy provider has every capability, removes_backups_on_unassign included.
    point = _backup(world, world.alice_vm)

    with pytest.raises(Conflict, match=r"changing the offering.*forced"), world.core.scope(world.admin) as s:
        assignments.change(s, world.alice_vm, world.bronze_id)

    assert _offering_of(world, world.alice_vm) == world.gold_id
    assert _point(world, point).status is BackupStatus.BACKED_UP


def test_forced_change_marks_old_restore_points_removed(world):
    point = _backup(world, world.alice_vm)

    with world.core.scope(world.admin) as s:
        assignments.change(s, world.alice_vm, world.bronze_id, forced=True)

    assert _offering_of(world, world.alice_vm) == world.bronze_id
    assert _point(world, point).status is BackupStatus.REMOVED


def test_change_to_offering_of_another_zone_is_invalid(world):
    zone2_gold = import_offering(world.core, world.admin, world.provider_id, "gold-z2", zone="zone2")

    with pytest.raises(InvalidArgument, match="another zone"), world.core.scope(world.alice) as s:
        assignments.change(s, world.alice_vm, zone2_gold)

    assert _offering_of(world, world.alice_vm) == world.gold_id


def test_change_of_unassigned_vm_assigns_it(world):
    with world.core.scope(world.alice) as s:
        assignments.change(s, world.alice_vm2, world.gold_id)

    assert _offering_of(world, world.alice_vm2) == world.gold_id
