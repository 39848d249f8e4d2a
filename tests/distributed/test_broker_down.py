"""A broker that cannot be reached when a job is made loses nothing and fails nobody: the job
is committed as queued, the caller gets it (REST: 202, not 500), and the reconciler sends it
once the broker answers again."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from api.app import create_app
from orchestrator.bootstrap import build_core
from orchestrator.domain.models import JobState
from orchestrator.engine.core import Core
from orchestrator.infra.config import Settings
from orchestrator.usecases import accounts, backups, jobs
from tests.migrated import MigratedSchema
from workers.runner import celery_runner

# Nothing listens on port 1: every connection is refused at once.
DEAD_BROKER = "redis://127.0.0.1:1/13"


@pytest.fixture
def core(settings: Settings, migrated: MigratedSchema) -> Iterator[Core]:
    """The world's core publishes to a broker that is down."""
    down = replace(settings, broker_url=DEAD_BROKER)
    db = migrated.database(down.database_url)
    yield build_core(down, db=db, runner=celery_runner(down))
    db.dispose()


def test_a_backup_asked_for_while_the_broker_is_down_is_kept_queued(world) -> None:
    with world.core.scope(world.alice) as s:
        job_id = backups.create_backup(s, world.alice_vm).id
    with world.core.scope(world.alice) as s:
        job = jobs.show(s, job_id)
        assert job.state is JobState.QUEUED
        assert backups.show(s, job.subject_id).status.value == "Queued"


def test_rest_answers_202_with_the_queued_job(world) -> None:
    app = create_app(world.core)
    with world.core.scope(world.admin) as s:
        issued = accounts.create_key(s, "alice")
    response = app.test_client().post(
        "/api/v1/backups",
        json={"vm_id": world.alice_vm},
        headers={"X-Api-Key": issued.apikey, "X-Api-Secret": issued.secretkey},
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["state"] == "queued"
