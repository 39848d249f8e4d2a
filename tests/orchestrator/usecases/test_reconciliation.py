"""Reconcile: the copies a back end holds that no restore point records are counted,
shown on the provider and exported as a metric; nothing is deleted."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from orchestrator.domain.errors import PermissionDenied, Unsupported
from orchestrator.domain.models import Backup, BackupProvider
from orchestrator.infra.telemetry import StateCollector
from orchestrator.usecases import backups, reconciliation
from providers.base import BackupRequest, VMRef
from providers.dummy import DummyProvider
from tests.conftest import World, add_provider


def dummy_of(world: World, provider_id: str) -> DummyProvider:
    with world.core.db.session() as session:
        found = world.core.drivers.for_row(session.get_one(BackupProvider, provider_id))
    assert isinstance(found, DummyProvider)
    return found


def backed_up(world: World) -> Backup:
    with world.core.scope(world.alice) as s:
        point_id = backups.create_backup(s, world.alice_vm).subject_id  # runs inline
    with world.core.scope(world.alice) as s:
        return backups.show(s, point_id)


def untracked_metric(world: World) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(StateCollector(world.core.db))
    return {
        s.labels["provider"]: s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == "backup_orchestrator_untracked_copies"
    }


def test_copies_no_restore_point_records_are_counted_and_kept(world: World) -> None:
    point = backed_up(world)
    dummy = dummy_of(world, world.provider_id)
    vm = VMRef.from_dict(point.vm_metadata)
    stale = dummy.take_backup(BackupRequest(point.id, vm, "dummy-gold", attempt=1), lambda *_: None)
    stray = dummy.take_backup(BackupRequest("never-recorded", vm, "dummy-gold"), lambda *_: None)

    with world.core.scope(world.admin) as s:
        result = reconciliation.reconcile(s, "dummy")

    assert result.listed == 3
    assert result.in_flight == 0
    assert {(u.copy.external_id, u.why) for u in result.untracked} == {
        (stale.external_id, f"its restore point records copy {point.external_id}"),
        (stray.external_id, "no restore point never-recorded is recorded"),
    }
    assert len(dummy.list_restore_points()) == 3  # nothing deleted
    with world.core.scope(world.admin) as s:
        row = s.session.get_one(BackupProvider, world.provider_id)
        assert (row.untracked_copies, row.reconciled_at is not None) == (2, True)
    assert untracked_metric(world) == {"dummy": 2.0}


def test_a_clean_back_end_counts_zero(world: World) -> None:
    backed_up(world)
    with world.core.scope(world.admin) as s:
        result = reconciliation.reconcile(s, world.provider_id)
    assert (result.listed, result.untracked) == (1, [])
    assert untracked_metric(world) == {"dummy": 0.0}


def test_reconcile_is_for_admins(world: World) -> None:
    with world.core.scope(world.alice) as s, pytest.raises(PermissionDenied):
        reconciliation.reconcile(s, "dummy")


def test_a_provider_that_cannot_list_its_points_is_refused(world: World) -> None:
    add_provider(world.core, world.admin, "blind", capabilities=["incremental"])
    with world.core.scope(world.admin) as s, pytest.raises(Unsupported, match="list its restore points"):
        reconciliation.reconcile(s, "blind")


def test_leftovers_of_interrupted_backups_are_released_on_the_vms_hosts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    point = backed_up(world)
    dummy = dummy_of(world, world.provider_id)
    asked: list[tuple[list[str], frozenset[str]]] = []

    def release(hosts, in_flight):  # what a vSphere driver gets: the hosts and running points
        asked.append(([h.id for h in hosts], in_flight))
        return ["VM-1: backup-orchestrator:rp-x"]

    monkeypatch.setattr(dummy, "release_leftovers", release)
    with world.core.scope(world.admin) as s:
        result = reconciliation.reconcile(s, "dummy")

    assert result.released == ["VM-1: backup-orchestrator:rp-x"]
    assert asked == [([VMRef.from_dict(point.vm_metadata).host_id], frozenset())]
