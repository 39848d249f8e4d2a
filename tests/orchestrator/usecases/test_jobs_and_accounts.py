"""Jobs (listing, showing, cancelling) and accounts with their API keys."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from orchestrator.domain.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from orchestrator.domain.models import BackupStatus, JobState, Role
from orchestrator.engine.execution import Outcome, execute
from orchestrator.infra.sealing import Sealer
from orchestrator.usecases import accounts, backups, jobs


def _backup_job(core, actor, vm_id):
    with core.scope(actor) as s:
        return backups.create_backup(s, vm_id).id


def _job(world, job_id):
    with world.core.scope(world.admin) as s:
        return jobs.show(s, job_id)


def _point_status(world, job_id):
    with world.core.scope(world.admin) as s:
        return backups.show(s, jobs.show(s, job_id).subject_id).status


# -- listing and showing -------------------------------------------------------------------------


@pytest.fixture
def two_jobs(world):
    alices = _backup_job(world.core, world.alice, world.alice_vm)
    bobs = _backup_job(world.core, world.bob, world.bob_vm)
    return alices, bobs


def test_user_lists_only_own_jobs(world, two_jobs):
    alices, bobs = two_jobs

    with world.core.scope(world.alice) as s:
        assert [j.id for j in jobs.list_jobs(s).items] == [alices]
    with world.core.scope(world.bob) as s:
        assert [j.id for j in jobs.list_jobs(s).items] == [bobs]


def test_admin_lists_every_job(world, two_jobs):
    with world.core.scope(world.admin) as s:
        assert {j.id for j in jobs.list_jobs(s).items} == set(two_jobs)


def test_list_jobs_filters_by_state_kind_and_subject(world, two_jobs):
    alices, _ = two_jobs
    subject = _job(world, alices).subject_id

    with world.core.scope(world.admin) as s:
        assert jobs.list_jobs(s, state="succeeded").total == 2
        assert jobs.list_jobs(s, state="failed").total == 0
        assert jobs.list_jobs(s, kind="restore_vm").total == 0
        assert [j.id for j in jobs.list_jobs(s, subject_id=subject).items] == [alices]


def test_a_vms_jobs_include_the_backups_of_its_restore_points(world, two_jobs):
    # An ad-hoc backup's subject is its restore point; listing by the VM still finds it.
    alices, _ = two_jobs
    with world.core.scope(world.alice) as s:
        assert [j.id for j in jobs.list_jobs(s, subject_id=world.alice_vm).items] == [alices]
        assert jobs.list_jobs(s, subject_id=world.alice_vm2).total == 0


def test_list_jobs_bad_state_is_invalid(world):
    with pytest.raises(InvalidArgument, match="state"), world.core.scope(world.alice) as s:
        jobs.list_jobs(s, state="done")


def test_owner_shows_own_job(world, two_jobs):
    alices, _ = two_jobs

    with world.core.scope(world.alice) as s:
        job = jobs.show(s, alices)
        assert job.state is JobState.SUCCEEDED
        assert job.requested_by == world.alice.account_id


def test_other_tenant_cannot_show_job(world, two_jobs):
    alices, _ = two_jobs

    with pytest.raises(NotFound, match=alices), world.core.scope(world.bob) as s:
        jobs.show(s, alices)


def test_job_asked_by_admin_belongs_to_vm_owner(world):
    job_id = _backup_job(world.core, world.admin, world.alice_vm)

    with world.core.scope(world.alice) as s:
        job = jobs.show(s, job_id)
        assert job.account_id == world.alice.account_id
        assert job.requested_by == world.admin.account_id


def _queue_then_fail(scope, vm_id: str, made: list[str]) -> None:
    with scope.savepoint():
        made.append(backups.create_backup(scope, vm_id).id)
        raise RuntimeError("the follow-up failed")


def test_a_job_queued_in_an_undone_savepoint_is_neither_stored_nor_delivered(world, deferred):
    undone: list[str] = []
    with deferred.scope(world.admin) as s:
        kept = backups.create_backup(s, world.alice_vm).id
        with pytest.raises(RuntimeError, match="follow-up failed"):
            _queue_then_fail(s, world.bob_vm, undone)

    assert len(undone) == 1
    assert deferred.runner.ids == [kept]
    with world.core.scope(world.admin) as s:
        assert jobs.show(s, kept).state is JobState.QUEUED
        with pytest.raises(NotFound):
            jobs.show(s, undone[0])


# -- cancelling ----------------------------------------------------------------------------------


def test_deferred_job_stays_queued(world, deferred):
    job_id = _backup_job(deferred, world.alice, world.alice_vm)

    assert deferred.runner.ids == [job_id]
    assert _job(world, job_id).state is JobState.QUEUED
    assert _point_status(world, job_id) is BackupStatus.QUEUED


def test_cancel_queued_job(world, deferred):
    job_id = _backup_job(deferred, world.alice, world.alice_vm)

    with deferred.scope(world.alice) as s:
        jobs.cancel(s, job_id)

    job = _job(world, job_id)
    assert job.state is JobState.CANCELLED
    assert job.finished_at is not None
    assert "alice" in job.error


def test_cancel_marks_restore_point_failed(world, deferred):
    job_id = _backup_job(deferred, world.alice, world.alice_vm)

    with deferred.scope(world.alice) as s:
        jobs.cancel(s, job_id)

    assert _point_status(world, job_id) is BackupStatus.FAILED


def test_cancelled_job_is_not_run_when_delivered(world, deferred):
    job_id = _backup_job(deferred, world.alice, world.alice_vm)
    with deferred.scope(world.alice) as s:
        jobs.cancel(s, job_id)

    assert execute(world.core, job_id) is Outcome.SKIPPED
    assert _job(world, job_id).state is JobState.CANCELLED
    assert _point_status(world, job_id) is BackupStatus.FAILED


def test_vm_can_be_backed_up_again_after_cancel(world, deferred):
    cancelled = _backup_job(deferred, world.alice, world.alice_vm)
    with deferred.scope(world.alice) as s:
        jobs.cancel(s, cancelled)

    job = _job(world, _backup_job(world.core, world.alice, world.alice_vm))

    assert job.state is JobState.SUCCEEDED


def test_cancel_other_tenants_job_is_not_found(world, deferred):
    job_id = _backup_job(deferred, world.alice, world.alice_vm)

    with pytest.raises(NotFound, match=job_id), deferred.scope(world.bob) as s:
        jobs.cancel(s, job_id)

    assert _job(world, job_id).state is JobState.QUEUED


def test_cancel_finished_job_conflicts(world):
    job_id = _backup_job(world.core, world.alice, world.alice_vm)

    with pytest.raises(Conflict, match=rf"{job_id} is succeeded"), world.core.scope(world.alice) as s:
        jobs.cancel(s, job_id)

    assert _job(world, job_id).state is JobState.SUCCEEDED
    assert _point_status(world, job_id) is BackupStatus.BACKED_UP


# -- accounts ------------------------------------------------------------------------------------


def test_admin_creates_account(world):
    with world.core.scope(world.admin) as s:
        created = accounts.create_account(s, "carol")

    assert created.role is Role.USER
    with world.core.scope(world.admin) as s:
        assert "carol" in [a.name for a in accounts.list_accounts(s)]


def test_admin_creates_admin_account(world):
    with world.core.scope(world.admin) as s:
        created = accounts.create_account(s, "root2", role="admin")

    assert created.role is Role.ADMIN


def test_duplicate_account_conflicts(world):
    with pytest.raises(Conflict, match="alice") as err, world.core.scope(world.admin) as s:
        accounts.create_account(s, "alice")
    assert err.value.field == "name"


def test_bad_role_is_invalid(world):
    with pytest.raises(InvalidArgument, match="role"), world.core.scope(world.admin) as s:
        accounts.create_account(s, "carol", role="superuser")


def test_user_cannot_create_account(world):
    with pytest.raises(PermissionDenied, match="accounts"), world.core.scope(world.alice) as s:
        accounts.create_account(s, "mallory")

    with world.core.scope(world.admin) as s:
        assert "mallory" not in [a.name for a in accounts.list_accounts(s)]


def test_user_lists_only_own_account(world):
    with world.core.scope(world.alice) as s:
        assert [a.name for a in accounts.list_accounts(s)] == ["alice"]


# -- API keys ------------------------------------------------------------------------------------


@pytest.fixture
def alice_key(world):
    with world.core.scope(world.admin) as s:
        return accounts.create_key(s, "alice")


def _authenticate(world, api_key, secret):
    with world.core.db.session() as session:
        return accounts.authenticate(session, api_key, secret)


def test_create_key_returns_a_secret(alice_key):
    assert alice_key.account == "alice"
    assert alice_key.apikey
    assert len(alice_key.secretkey) >= 32
    assert alice_key.secretkey != alice_key.apikey


def test_authenticate_with_secret(world, alice_key):
    actor = _authenticate(world, alice_key.apikey, alice_key.secretkey)

    assert actor.account_id == world.alice.account_id
    assert actor.name == "alice"
    assert actor.is_admin is False


def test_authenticate_with_wrong_secret_fails(world, alice_key):
    with pytest.raises(AuthenticationFailed, match="wrong secret"):
        _authenticate(world, alice_key.apikey, alice_key.secretkey + "x")


def test_authenticate_with_unknown_key_fails(world, alice_key):
    with pytest.raises(AuthenticationFailed, match="unknown"):
        _authenticate(world, "no-such-key", alice_key.secretkey)


def test_revoked_key_fails(world, alice_key):
    with world.core.scope(world.alice) as s:
        accounts.revoke_key(s, alice_key.apikey)

    with pytest.raises(AuthenticationFailed, match="revoked"):
        _authenticate(world, alice_key.apikey, alice_key.secretkey)
    with pytest.raises(AuthenticationFailed, match="revoked"), world.core.db.session() as session:
        accounts.signing_secret(session, Sealer(world.core.settings.home), alice_key.apikey)


def test_a_key_is_revoked_by_its_id_too(world, alice_key):
    # ``key create --json`` prints the key's id first: revoking by it works as by the key.
    with world.core.scope(world.alice) as s:
        accounts.revoke_key(s, alice_key.id)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        _authenticate(world, alice_key.apikey, alice_key.secretkey)


def test_other_tenant_cannot_revoke_key(world, alice_key):
    with pytest.raises(NotFound, match="API key"), world.core.scope(world.bob) as s:
        accounts.revoke_key(s, alice_key.apikey)
    with pytest.raises(NotFound, match="API key"), world.core.scope(world.bob) as s:
        accounts.revoke_key(s, alice_key.id)

    assert _authenticate(world, alice_key.apikey, alice_key.secretkey).name == "alice"


def test_signing_secret_returns_the_same_secret(world, alice_key):
    with world.core.db.session() as session:
        actor, secret = accounts.signing_secret(session, Sealer(world.core.settings.home), alice_key.apikey)

    assert secret == alice_key.secretkey
    assert actor.name == "alice"


def test_secret_is_not_stored_in_clear(world, alice_key):
    with world.core.db.session() as session:
        row = (
            session.execute(text("SELECT * FROM api_keys WHERE api_key = :k"), {"k": alice_key.apikey})
            .mappings()
            .one()
        )

    stored = [str(v) for v in row.values() if v is not None]
    assert all(alice_key.secretkey not in value for value in stored)
    assert row["secret_hash"]
    assert row["secret_sealed"]


def test_user_creates_own_key(world):
    with world.core.scope(world.alice) as s:
        issued = accounts.create_key(s, "alice")

    assert _authenticate(world, issued.apikey, issued.secretkey).name == "alice"


def test_user_cannot_create_key_for_another_account(world):
    with pytest.raises(PermissionDenied, match="another account"), world.core.scope(world.alice) as s:
        accounts.create_key(s, "bob")


def test_each_key_has_its_own_secret(world, alice_key):
    with world.core.scope(world.admin) as s:
        other = accounts.create_key(s, "alice")

    assert other.secretkey != alice_key.secretkey
    with pytest.raises(AuthenticationFailed):
        _authenticate(world, other.apikey, alice_key.secretkey)
