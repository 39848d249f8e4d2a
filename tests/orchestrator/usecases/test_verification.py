"""Verifying a restore point: intact, damaged (the point becomes Error), or unreachable."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import Conflict, NotFound, Unsupported
from orchestrator.domain.models import BackupStatus, JobState
from orchestrator.usecases import assignments, backups, jobs, restores, verification
from tests.conftest import add_provider, import_offering


def _point_on(world, offering=None):
    if offering is not None:
        with world.core.scope(world.alice) as s:
            assignments.assign(s, world.alice_vm2, offering)
    vm = world.alice_vm2 if offering is not None else world.alice_vm
    with world.core.scope(world.alice) as s:
        job_id = backups.create_backup(s, vm).id
    with world.core.scope(world.alice) as s:
        job = jobs.show(s, job_id)
        assert job.state is JobState.SUCCEEDED, job.error
        return job.subject_id


def _verify(world, point_id):
    with world.core.scope(world.alice) as s:
        job_id = verification.verify_backup(s, point_id).id
    with world.core.scope(world.alice) as s:
        return jobs.show(s, job_id), backups.show(s, point_id)


def test_an_intact_point_stays_backed_up(world):
    point_id = _point_on(world)

    job, point = _verify(world, point_id)

    assert job.state is JobState.SUCCEEDED, job.error
    assert job.result == {"backup_id": point_id, "intact": True, "damage": None}
    assert point.status is BackupStatus.BACKED_UP


def test_a_point_gone_from_its_back_end_becomes_error_and_is_not_restorable(world):
    point_id = _point_on(world)
    with world.core.scope(world.admin) as s:
        stored = backups.show(s, point_id)
        driver = s.driver(stored.provider)
        external_id = stored.external_id
    (driver.data_dir / "points" / f"{external_id}.json").unlink()

    job, point = _verify(world, point_id)

    assert job.state is JobState.SUCCEEDED, job.error
    assert job.result["intact"] is False
    assert external_id in job.result["damage"]
    assert point.status is BackupStatus.ERROR
    assert "verify found it damaged" in point.error
    assert external_id in point.error
    with world.core.scope(world.alice) as s, pytest.raises(Conflict, match="only BackedUp points"):
        restores.restore_vm(s, point_id)


def test_an_unreachable_back_end_fails_the_job_and_leaves_the_point(world):
    provider = add_provider(world.core, world.admin, "flaky", fail=["verify"])
    point_id = _point_on(world, import_offering(world.core, world.admin, provider, "flaky-gold"))

    job, point = _verify(world, point_id)

    # Retried (a transient error), then given up on; the point itself is not judged.
    assert job.state in (JobState.QUEUED, JobState.FAILED)
    assert "told to fail verify" in job.error
    assert point.status is BackupStatus.BACKED_UP


def test_a_provider_that_cannot_verify_is_refused(world):
    provider = add_provider(world.core, world.admin, "plain", capabilities=["incremental"])
    point_id = _point_on(world, import_offering(world.core, world.admin, provider, "plain-gold"))

    with world.core.scope(world.alice) as s, pytest.raises(Unsupported, match="cannot verify"):
        verification.verify_backup(s, point_id)


def test_another_tenants_point_is_not_found(world):
    point_id = _point_on(world)

    with world.core.scope(world.bob) as s, pytest.raises(NotFound):
        verification.verify_backup(s, point_id)
