"""Taking, listing and deleting restore points."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from orchestrator.domain.errors import Conflict, InvalidArgument, NotFound, PermissionDenied, Unsupported
from orchestrator.domain.models import Backup, BackupOrigin, BackupStatus, BackupType, JobState
from orchestrator.engine.execution import Outcome, execute
from orchestrator.usecases import assignments, backups, jobs, restores
from tests.conftest import GiB, add_provider, import_offering


def _start(world, vm_id, actor=None, **kw):
    with world.core.scope(actor or world.alice) as s:
        return backups.create_backup(s, vm_id, **kw).id


def _job(world, job_id, actor=None):
    with world.core.scope(actor or world.admin) as s:
        return jobs.show(s, job_id)


def _backup(world, vm_id, actor=None):
    """Take a backup that must succeed; returns the restore point's id."""
    job = _job(world, _start(world, vm_id, actor))
    assert job.state is JobState.SUCCEEDED, job.error
    return job.subject_id


def _point(world, backup_id):
    with world.core.scope(world.admin) as s:
        return backups.show(s, backup_id)


def _vm_on_provider(world, name, vm_id=None, **config):
    """Put alice's second VM under an offering of a new provider configured with ``config``."""
    provider = add_provider(world.core, world.admin, f"prov-{name}", **config)
    offering = import_offering(world.core, world.admin, provider, name)
    vm_id = vm_id or world.alice_vm2
    with world.core.scope(world.admin) as s:
        assignments.assign(s, vm_id, offering)
    return vm_id


def _chain(world, vm_id, length):
    return [_backup(world, vm_id) for _ in range(length)]


# -- taking backups ------------------------------------------------------------------------------


def test_adhoc_backup_is_full_and_backed_up(world):
    point = _point(world, _backup(world, world.alice_vm))

    assert point.status is BackupStatus.BACKED_UP
    assert point.backup_type is BackupType.FULL
    assert point.parent_id is None
    assert point.origin is BackupOrigin.ADHOC
    assert point.offering_id == world.gold_id
    assert point.vm_id == world.alice_vm
    assert point.external_id
    assert point.completed_at is not None
    assert point.protected_size == 12 * GiB
    assert len(point.vm_metadata["volumes"]) == 2


def test_backup_job_reports_restore_point(world):
    job = _job(world, _start(world, world.alice_vm))

    assert job.kind.value == "backup"
    assert job.result["backup_id"] == job.subject_id
    assert job.result["type"] == "FULL"
    assert job.attempts == 1


def test_second_backup_is_incremental_on_first(world):
    full, second = _chain(world, world.alice_vm, 2)

    point = _point(world, second)
    assert point.backup_type is BackupType.INCREMENTAL
    assert point.parent_id == full
    assert point.size < _point(world, full).size


def test_backups_stay_full_when_provider_has_no_incremental(world):
    vm = _vm_on_provider(world, "fullonly", capabilities=["restore_volume"])

    points = [_point(world, p) for p in _chain(world, vm, 2)]

    assert [p.backup_type for p in points] == [BackupType.FULL, BackupType.FULL]
    assert [p.parent_id for p in points] == [None, None]


def test_user_backup_refused_where_offering_disallows_it(world):
    with world.core.scope(world.admin) as s:
        assignments.assign(s, world.alice_vm2, world.bronze_id)

    with (
        pytest.raises(PermissionDenied, match=r"'bronze' does not allow"),
        world.core.scope(world.alice) as s,
    ):
        backups.create_backup(s, world.alice_vm2)

    with world.core.scope(world.admin) as s:
        assert backups.list_backups(s, vm_id=world.alice_vm2).total == 0


def test_admin_backup_allowed_where_offering_disallows_user_backups(world):
    with world.core.scope(world.admin) as s:
        assignments.assign(s, world.alice_vm2, world.bronze_id)

    point = _point(world, _backup(world, world.alice_vm2, world.admin))

    assert point.status is BackupStatus.BACKED_UP
    assert point.offering_id == world.bronze_id
    with world.core.scope(world.alice) as s:
        assert [b.id for b in backups.list_backups(s, vm_id=world.alice_vm2).items] == [point.id]


def test_backup_of_unassigned_vm_conflicts(world):
    with pytest.raises(Conflict, match="no backup offering"), world.core.scope(world.alice) as s:
        backups.create_backup(s, world.alice_vm2)


def test_backup_of_unknown_vm_is_not_found(world):
    with pytest.raises(NotFound, match="virtual machine"), world.core.scope(world.alice) as s:
        backups.create_backup(s, "no-such-vm")


# -- failures and retries --------------------------------------------------------------------------


def test_backup_failing_every_time_fails_job_and_restore_point(world):
    vm = _vm_on_provider(world, "broken", fail=["backup"])

    job = _job(world, _start(world, vm))

    assert job.state is JobState.FAILED
    assert job.attempts == job.max_attempts == 3
    assert "told to fail backup" in job.error
    point = _point(world, job.subject_id)
    assert point.status is BackupStatus.FAILED
    assert point.completed_at is None
    assert "told to fail backup" in point.error


def test_failed_backup_leaves_no_backed_up_point(world):
    vm = _vm_on_provider(world, "broken", fail=["backup"])
    _start(world, vm)

    with world.core.scope(world.admin) as s:
        assert backups.list_backups(s, vm_id=vm, status="BackedUp").total == 0
        assert backups.list_backups(s, vm_id=vm, status="Failed").total == 1


def test_backup_failing_once_is_retried_and_succeeds(world):
    vm = _vm_on_provider(world, "flaky", fail=["backup"], fail_times=1)

    job = _job(world, _start(world, vm))

    assert job.state is JobState.SUCCEEDED
    assert job.attempts == 2
    with world.core.scope(world.admin) as s:
        listed = backups.list_backups(s, vm_id=vm).items
    assert [(b.id, b.status) for b in listed] == [(job.subject_id, BackupStatus.BACKED_UP)]


def test_backup_after_failed_backup_is_allowed(world):
    vm = _vm_on_provider(world, "flaky", fail=["backup"], fail_times=3)
    failed = _job(world, _start(world, vm))
    assert failed.state is JobState.FAILED

    point = _point(world, _backup(world, vm))

    assert point.status is BackupStatus.BACKED_UP
    assert point.backup_type is BackupType.FULL


# -- idempotency ---------------------------------------------------------------------------------


def test_reused_idempotency_key_returns_same_job(world):
    first = _start(world, world.alice_vm, idempotency_key="nightly-42")
    second = _start(world, world.alice_vm, idempotency_key="nightly-42")

    assert second == first
    with world.core.scope(world.admin) as s:
        count = s.session.scalar(
            select(func.count()).select_from(Backup).where(Backup.vm_id == world.alice_vm)
        )
    assert count == 1


def test_idempotency_key_of_another_tenant_conflicts(world):
    _start(world, world.alice_vm, idempotency_key="shared-key")

    with pytest.raises(Conflict, match="idempotency key"), world.core.scope(world.bob) as s:
        backups.create_backup(s, world.bob_vm, idempotency_key="shared-key")

    with world.core.scope(world.bob) as s:
        assert backups.list_backups(s).total == 0


# -- while a backup is queued ----------------------------------------------------------------------


def _queue(core, actor, vm_id, **kw):
    with core.scope(actor) as s:
        return backups.create_backup(s, vm_id, **kw)


def test_a_queued_point_already_has_the_type_and_parent_it_ends_with(world, deferred):
    full = _backup(world, world.alice_vm)
    job = _queue(deferred, world.alice, world.alice_vm)

    queued = _point(world, job.subject_id)
    assert (queued.status, queued.backup_type, queued.parent_id) == (
        BackupStatus.QUEUED,
        BackupType.INCREMENTAL,
        full,
    )
    assert (queued.protected_size, queued.size) == (12 * GiB, 0)

    assert execute(world.core, job.id) is Outcome.SUCCEEDED
    done = _point(world, job.subject_id)
    assert (done.backup_type, done.parent_id) == (BackupType.INCREMENTAL, full)


def test_a_queued_incremental_whose_parent_broke_builds_on_the_newest_good_one(world, deferred):
    first, second = _chain(world, world.alice_vm, 2)
    job = _queue(deferred, world.alice, world.alice_vm)
    assert _point(world, job.subject_id).parent_id == second
    with world.core.db.session() as s:
        s.get(Backup, second).status = BackupStatus.ERROR  # as a verify that found it damaged

    assert execute(world.core, job.id) is Outcome.SUCCEEDED
    done = _point(world, job.subject_id)
    assert (done.backup_type, done.parent_id) == (BackupType.INCREMENTAL, first)


def test_second_backup_while_first_is_queued_conflicts(world, deferred):
    queued = _queue(deferred, world.alice, world.alice_vm)

    with pytest.raises(Conflict, match=rf"already in progress \(restore point {queued.subject_id}\)"):
        _queue(deferred, world.alice, world.alice_vm)

    with world.core.scope(world.admin) as s:
        assert backups.list_backups(s, vm_id=world.alice_vm).total == 1


def test_retry_with_same_idempotency_key_while_queued_returns_same_job(world, deferred):
    first = _queue(deferred, world.alice, world.alice_vm, idempotency_key="retry-1")

    second = _queue(deferred, world.alice, world.alice_vm, idempotency_key="retry-1")

    assert second.id == first.id
    assert deferred.runner.ids == [first.id]


def test_queued_restore_point_cannot_be_deleted(world, deferred):
    queued = _queue(deferred, world.alice, world.alice_vm)

    with pytest.raises(Conflict, match="Queued"), world.core.scope(world.alice) as s:
        backups.delete_backup(s, queued.subject_id)


# -- listing -------------------------------------------------------------------------------------


@pytest.fixture
def listed(world):
    """alice: two points of web1, one of db1; bob: one point of app1."""
    with world.core.scope(world.alice) as s:
        assignments.assign(s, world.alice_vm2, world.gold_id)
    web = _chain(world, world.alice_vm, 2)
    db = _backup(world, world.alice_vm2)
    app = _backup(world, world.bob_vm, world.bob)
    return {"web": web, "db": db, "app": app}


def _ids(world, actor=None, **filters):
    with world.core.scope(actor or world.alice) as s:
        return {b.id for b in backups.list_backups(s, **filters).items}


def test_user_lists_only_own_backups(world, listed):
    assert _ids(world) == {*listed["web"], listed["db"]}
    assert _ids(world, world.bob) == {listed["app"]}


def test_admin_lists_every_backup(world, listed):
    assert _ids(world, world.admin) == {*listed["web"], listed["db"], listed["app"]}


def test_list_by_vm(world, listed):
    assert _ids(world, vm_id=world.alice_vm) == set(listed["web"])


def test_list_by_zone(world, listed):
    assert _ids(world, zone="zone1") == {*listed["web"], listed["db"]}
    assert _ids(world, zone="zone2") == set()


def test_list_by_status(world, listed):
    assert _ids(world, status="BackedUp") == {*listed["web"], listed["db"]}
    assert _ids(world, status="Failed") == set()


def test_list_by_bad_status_is_invalid(world, listed):
    with pytest.raises(InvalidArgument, match="status"), world.core.scope(world.alice) as s:
        backups.list_backups(s, status="Done")


def test_list_by_keyword_matches_vm_name(world, listed):
    assert _ids(world, keyword="web") == set(listed["web"])
    assert _ids(world, keyword="db") == {listed["db"]}


def test_admin_lists_by_account(world, listed):
    assert _ids(world, world.admin, account="bob") == {listed["app"]}
    assert _ids(world, world.admin, account="alice") == {*listed["web"], listed["db"]}


def test_account_filter_cannot_widen_a_users_view(world, listed):
    assert _ids(world, account="bob") == {*listed["web"], listed["db"]}


def test_list_pages_newest_first(world, listed):
    with world.core.scope(world.alice) as s:
        first = backups.list_backups(s, pagesize=2, page=1)
        second = backups.list_backups(s, pagesize=2, page=2)

    assert first.total == second.total == 3
    assert len(first.items) == 2
    assert len(second.items) == 1
    ordered = [*first.items, *second.items]
    assert [b.id for b in ordered] == [listed["db"], listed["web"][1], listed["web"][0]]


def test_list_page_zero_is_invalid(world, listed):
    with pytest.raises(InvalidArgument, match="page"), world.core.scope(world.alice) as s:
        backups.list_backups(s, page=0)


# -- tenancy -------------------------------------------------------------------------------------


@pytest.fixture
def alice_point(world):
    return _backup(world, world.alice_vm)


def test_other_tenant_cannot_show_backup(world, alice_point):
    with pytest.raises(NotFound, match=alice_point), world.core.scope(world.bob) as s:
        backups.show(s, alice_point)


def test_other_tenant_cannot_list_backup(world, alice_point):
    assert _ids(world, world.bob, backup_id=alice_point) == set()
    assert _ids(world, world.bob, vm_id=world.alice_vm) == set()


def test_other_tenant_cannot_delete_backup(world, alice_point):
    with pytest.raises(NotFound, match=alice_point), world.core.scope(world.bob) as s:
        backups.delete_backup(s, alice_point)

    assert _point(world, alice_point).status is BackupStatus.BACKED_UP


def test_other_tenant_cannot_restore_backup(world, alice_point):
    with pytest.raises(NotFound, match=alice_point), world.core.scope(world.bob) as s:
        restores.restore_vm(s, alice_point)


def test_other_tenant_cannot_back_up_vm(world):
    with pytest.raises(NotFound, match=world.alice_vm), world.core.scope(world.bob) as s:
        backups.create_backup(s, world.alice_vm)

    assert _ids(world, world.admin, vm_id=world.alice_vm) == set()


# -- deleting ------------------------------------------------------------------------------------


def _delete(world, backup_id, **kw):
    with world.core.scope(world.alice) as s:
        job_id = backups.delete_backup(s, backup_id, **kw).id
    job = _job(world, job_id)
    assert job.state is JobState.SUCCEEDED, job.error
    return job


def test_delete_lone_restore_point_expunges_it(world, alice_point):
    _delete(world, alice_point)

    assert _point(world, alice_point).status is BackupStatus.EXPUNGED
    assert _ids(world, vm_id=world.alice_vm) == set()


def test_delete_newest_incremental_needs_no_capability(world):
    vm = _vm_on_provider(world, "plain", capabilities=["incremental"])
    full, incremental = _chain(world, vm, 2)

    _delete(world, incremental)

    assert _point(world, incremental).status is BackupStatus.EXPUNGED
    assert _point(world, full).status is BackupStatus.BACKED_UP


def test_delete_full_with_dependents_unsupported_without_chain_capabilities(world):
    vm = _vm_on_provider(world, "plain", capabilities=["incremental"])
    full, incremental = _chain(world, vm, 2)

    with (
        pytest.raises(Unsupported, match=r"'prov-plain' cannot delete restore point") as err,
        world.core.scope(world.alice) as s,
    ):
        backups.delete_backup(s, full, forced=True)
    assert full in err.value.message
    assert "1 newer restore point(s) depend on it" in err.value.message
    assert _point(world, full).status is BackupStatus.BACKED_UP
    assert _point(world, incremental).status is BackupStatus.BACKED_UP


def test_delete_full_with_dependents_needs_forced_for_chain_delete(world):
    vm = _vm_on_provider(world, "chain", capabilities=["incremental", "delete_chain"])
    full, incremental = _chain(world, vm, 2)

    with pytest.raises(Unsupported, match="forced"), world.core.scope(world.alice) as s:
        backups.delete_backup(s, full)

    assert _point(world, full).status is BackupStatus.BACKED_UP
    assert _point(world, incremental).status is BackupStatus.BACKED_UP


def test_forced_delete_expunges_whole_chain(world):
    vm = _vm_on_provider(world, "chain", capabilities=["incremental", "delete_chain"])
    chain = _chain(world, vm, 3)

    job = _delete(world, chain[0], forced=True)

    assert set(job.params["ids"]) == set(chain)
    assert [_point(world, p).status for p in chain] == [BackupStatus.EXPUNGED] * 3


def test_forced_delete_of_middle_point_expunges_whole_chain(world):
    vm = _vm_on_provider(world, "chain", capabilities=["incremental", "delete_chain"])
    chain = _chain(world, vm, 3)

    _delete(world, chain[1], forced=True)

    assert [_point(world, p).status for p in chain] == [BackupStatus.EXPUNGED] * 3


def test_delete_single_point_reparents_its_child(world):
    vm = _vm_on_provider(world, "single", capabilities=["incremental", "delete_single_restore_point"])
    full, middle, newest = _chain(world, vm, 3)
    assert _point(world, newest).parent_id == middle

    _delete(world, middle)

    assert _point(world, middle).status is BackupStatus.EXPUNGED
    assert _point(world, full).status is BackupStatus.BACKED_UP
    kept = _point(world, newest)
    assert kept.status is BackupStatus.BACKED_UP
    assert kept.parent_id == full


def test_delete_single_full_leaves_only_it_expunged(world):
    vm = _vm_on_provider(world, "single", capabilities=["incremental", "delete_single_restore_point"])
    full, incremental = _chain(world, vm, 2)

    _delete(world, full)

    assert _point(world, full).status is BackupStatus.EXPUNGED
    kept = _point(world, incremental)
    assert kept.status is BackupStatus.BACKED_UP
    assert kept.parent_id is None


def test_delete_expunged_point_is_not_found(world, alice_point):
    _delete(world, alice_point)

    with pytest.raises(NotFound, match=alice_point), world.core.scope(world.alice) as s:
        backups.delete_backup(s, alice_point)
