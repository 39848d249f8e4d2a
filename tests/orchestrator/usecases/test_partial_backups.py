"""A backup where one volume of a multi-volume VM fails and the provider keeps the others:
a PartiallyFailed restore point, a failed job, and what may be done with the point."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from orchestrator.bootstrap import build_core
from orchestrator.domain.errors import Conflict, ProviderError
from orchestrator.domain.models import Backup, BackupProvider, BackupStatus, Job, JobState
from orchestrator.engine.execution import Outcome, claim, execute
from orchestrator.infra.telemetry import StateCollector
from orchestrator.usecases import assignments, backups, jobs, pruning, restores
from tests.conftest import add_provider, import_offering
from tests.orchestrator.engine.test_fencing import hand_over
from tests.orchestrator.engine.test_job_lifecycle import Held


@pytest.fixture
def flaky(world):
    """Alice's db1 (ROOT device 0, DATADISK device 1) on a provider whose device 1 fails."""
    provider = add_provider(world.core, world.admin, "flaky", fail_volumes=[1])
    offering = import_offering(world.core, world.admin, provider, "flaky-gold", retention_count=1)
    with world.core.scope(world.alice) as s:
        assignments.assign(s, world.alice_vm2, offering)
    return provider


def _backup(world):
    with world.core.scope(world.alice) as s:
        job_id = backups.create_backup(s, world.alice_vm2).id
    with world.core.scope(world.admin) as s:
        job = jobs.show(s, job_id)
        return job.state, job.attempts, job.error, job.subject_id


def _point(world, point_id):
    with world.core.scope(world.admin) as s:
        return backups.show(s, point_id)


def _volumes(world, point_id):
    """(kept, failed) volume ids of the point, by device id."""
    volumes = {v["device_id"]: v["id"] for v in _point(world, point_id).vm_metadata["volumes"]}
    return volumes[0], volumes[1]


def test_the_point_is_partially_failed_and_the_job_fails_for_good_naming_the_volume(world, flaky):
    state, attempts, error, point_id = _backup(world)

    assert state is JobState.FAILED
    assert attempts == 1  # not retried: a retry could only answer the same
    assert "partially failed: volume DATA-db1-1 (device 1)" in error
    assert f"kept in restore point {point_id} (PartiallyFailed" in error
    point = _point(world, point_id)
    assert point.status is BackupStatus.PARTIALLY_FAILED
    assert point.error == error
    assert point.external_id is not None
    assert [(v["device_id"], v["name"]) for v in point.failed_volumes] == [(1, "DATA-db1-1")]
    assert "told to fail device 1" in point.failed_volumes[0]["error"]
    with world.core.scope(world.alice) as s:
        (listed,) = backups.list_backups(s, vm_id=world.alice_vm2).items
    assert listed.status is BackupStatus.PARTIALLY_FAILED
    assert listed.failed_volumes == point.failed_volumes


def test_a_whole_vm_restore_is_refused_and_a_kept_volume_restores(world, flaky):
    *_, point_id = _backup(world)
    kept, failed = _volumes(world, point_id)

    lacks = r"PartiallyFailed: it lacks DATA-db1-1 \(device 1\)"
    with pytest.raises(Conflict, match=lacks), world.core.scope(world.alice) as s:
        restores.restore_vm(s, point_id)
    with pytest.raises(Conflict, match="PartiallyFailed"), world.core.scope(world.alice) as s:
        restores.restore_to_new_vm(s, point_id, "copy")
    not_kept = f"volume {failed} failed in restore point"
    with pytest.raises(Conflict, match=not_kept), world.core.scope(world.alice) as s:
        restores.restore_volume(s, point_id, failed, world.alice_vm)

    with world.core.scope(world.alice) as s:
        job_id = restores.restore_volume(s, point_id, kept, world.alice_vm).id
    with world.core.scope(world.admin) as s:
        job = jobs.show(s, job_id)
    assert job.state is JobState.SUCCEEDED, job.error
    assert _point(world, point_id).status is BackupStatus.PARTIALLY_FAILED  # never BackedUp


def test_a_partial_point_is_not_a_good_one_for_the_rpo(world, flaky):
    _backup(world)

    registry = CollectorRegistry()
    registry.register(StateCollector(world.core.db))
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in registry.collect() for s in f.samples}
    assert got["backup_orchestrator_rpo_vms", (("offering", "flaky-gold"), ("state", "never"))] == 1
    assert got["backup_orchestrator_rpo_vms", (("offering", "flaky-gold"), ("state", "within"))] == 0
    assert (
        got["backup_orchestrator_restore_points", (("offering", "flaky-gold"), ("status", "PartiallyFailed"))]
        == 1
    )


def test_retention_counts_only_good_points_and_drops_partial_ones_a_good_one_supersedes(world, flaky):
    partials = [_backup(world)[3] for _ in range(2)]
    # retention_count=1 keeps the newest *good* point: there is none, so nothing goes.
    assert [_point(world, p).status for p in partials] == [BackupStatus.PARTIALLY_FAILED] * 2
    with world.core.scope(world.admin) as s:
        assert pruning.prune(s, dry_run=True) == []

    with world.core.db.session() as s:
        s.get(BackupProvider, flaky).config = {}  # the failing disk is repaired
    state, _, error, good = _backup(world)

    assert state is JobState.SUCCEEDED, error
    assert _point(world, good).status is BackupStatus.BACKED_UP
    assert [_point(world, p).status for p in partials] == [BackupStatus.EXPUNGED] * 2


def test_a_partial_point_being_read_cannot_be_deleted(world, flaky, deferred):
    *_, point_id = _backup(world)
    kept, _ = _volumes(world, point_id)
    with deferred.scope(world.alice) as s:
        restores.restore_volume(s, point_id, kept, world.alice_vm)

    with pytest.raises(Conflict, match="is being restored"), world.core.scope(world.alice) as s:
        backups.delete_backup(s, point_id)
    with world.core.db.session() as s:
        assert s.get(Backup, point_id).status is BackupStatus.PARTIALLY_FAILED


def test_a_redelivered_job_of_a_partial_point_fails_again_without_a_second_backup(world, flaky):
    _, _, error, point_id = _backup(world)
    with world.core.db.session() as s:
        job = s.scalars(select(Job).where(Job.subject_id == point_id)).one()
        job.state, job.finished_at, job.max_attempts = JobState.QUEUED, None, 5
        driver = world.core.drivers.for_row(s.get(BackupProvider, flaky))
        job_id = job.id
    taken = len(driver.restore_points())

    assert execute(world.core, job_id) is Outcome.FAILED
    with world.core.scope(world.admin) as s:
        assert jobs.show(s, job_id).error == error
    assert len(driver.restore_points()) == taken
    assert _point(world, point_id).status is BackupStatus.PARTIALLY_FAILED


def test_an_attempt_that_lost_its_job_records_no_partial_point(world, flaky, settings):
    queued = build_core(settings, db=world.core.db, runner=Held())
    with queued.scope(world.alice) as s:
        job_id = backups.create_backup(s, world.alice_vm2).id
    stale = claim(queued, job_id, "w1")
    assert isinstance(stale, Job)
    hand_over(queued, job_id, "w2")

    with pytest.raises(ProviderError, match="partially failed"):
        queued.handlers[stale.kind].run(queued, stale, lambda _done, _total: None)

    point = _point(world, stale.subject_id)
    assert point.status is not BackupStatus.PARTIALLY_FAILED
    assert point.failed_volumes in (None, [])
