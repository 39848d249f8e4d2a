"""Releasing planned SLA backups: earliest first, in batches, within a time budget."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from orchestrator.domain.models import Job, JobState, utcnow
from orchestrator.usecases import assignments, inventory, planning, rounds
from tests.conftest import GiB, import_offering


def plan_vms(world, count: int) -> None:
    with world.core.scope(world.admin) as s:
        ids = [
            inventory.register_vm(
                s,
                name=f"rel{i}",
                account="alice",
                zone="zone1",
                host="kvm1",
                volumes=[{"pool": "pool1", "size": GiB}],
            ).id
            for i in range(count)
        ]
    offering = import_offering(world.core, world.admin, world.provider_id, "relay", rpo="6h")
    with world.core.scope(world.admin) as s:
        for vm_id in ids:
            assignments.assign(s, vm_id, offering)
    planning.replan(world.core)


def states(world) -> dict[JobState, int]:
    with world.core.db.session() as session:
        jobs = session.scalars(select(Job)).all()
        out: dict[JobState, int] = {}
        for job in jobs:
            out[job.state] = out.get(job.state, 0) + 1
        return out


def test_a_time_budget_stops_after_a_batch_and_leaves_the_rest_due(world, monkeypatch):
    plan_vms(world, 5)
    later = utcnow() + timedelta(days=1)
    planned = states(world)[JobState.PLANNED]
    assert planned >= 5
    monkeypatch.setattr(planning, "RELEASE_BATCH", 2)
    first = planning.release_due(world.core, later, max_seconds=0)
    assert len(first) == 2  # one batch, then out of time
    assert planning.any_due(world.core, later)
    rest = planning.release_due(world.core, later)
    assert len(rest) == planned - 2
    assert set(first).isdisjoint(rest)
    assert not planning.any_due(world.core, later)
    assert JobState.PLANNED not in states(world)


def test_a_round_with_release_still_pending_says_so_and_leaves_the_plan_alone(world, monkeypatch):
    plan_vms(world, 4)
    with world.core.db.session() as session:
        for job in session.scalars(select(Job).where(Job.state == JobState.PLANNED)):
            job.not_before = utcnow() - timedelta(minutes=1)
    monkeypatch.setattr(planning, "RELEASE_BATCH", 1)
    monkeypatch.setattr(rounds, "RELEASE_SECONDS", 0.0)
    round_ = rounds.tick(world.core)
    assert round_["sla_jobs_released"] == 1
    assert round_["sla_release_pending"] is True
    assert round_["sla_jobs_planned"] == 0  # re-planning waits until the release caught up
    while round_["sla_release_pending"]:
        round_ = rounds.tick(world.core)
    assert not planning.any_due(world.core)
