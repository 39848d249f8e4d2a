"""What the metrics say and how they are named: Prometheus's conventions, series that exist
at 0 before anything happened, overdue backups counted whether planned or released, and no
label that names a tenant."""

from __future__ import annotations

import re
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from orchestrator.domain.models import BackupStatus, Job, JobState, utcnow
from orchestrator.engine.core import Core
from orchestrator.infra import telemetry
from orchestrator.usecases import backups, planning
from tests.conftest import World

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# The labels the product's series may carry: the operator's things, never a tenant's.
OPERATOR_LABELS = {
    "kind",
    "queue",
    "outcome",
    "state",
    "status",
    "offering",
    "host",
    "pool",
    "provider",
    "reason",
}


def scrape(core: Core) -> tuple[list[str], Samples]:
    """Families (name, type) and samples of what the API's /metrics shows."""
    registry = telemetry.registry(core.db)
    text = telemetry.exposition(registry).decode()
    families = list(text_string_to_metric_families(text))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return [f"{f.name}:{f.type}" for f in families], samples


def test_names_follow_prometheus_conventions(world: World) -> None:
    families, samples = scrape(world.core)
    names = {family.split(":")[0] for family in families}
    for family in families:
        name, kind = family.split(":")
        if name.endswith("_created") and name.removesuffix("_created") in names:
            # The text format gives a histogram or summary with observations (made by any
            # earlier test in this process) a ``<name>_created`` gauge family of its own.
            continue
        assert name.startswith("backup_orchestrator_"), name
        assert re.fullmatch(r"[a-z_]+", name), name
        # Base units only, spelled out, last in the name.
        assert not re.search(r"_(ms|milliseconds|minutes|hours|days|kb|mb|gb|kib|mib|gib)(_|$)", name), name
        for unit in ("seconds", "bytes"):
            if unit in name:
                assert name.endswith(f"_{unit}"), f"{name}: the unit goes last (before _total)"
        if "timestamp" in name:
            assert name.endswith("_timestamp_seconds"), name
        if kind == "counter":
            of_family = {sample for sample, _ in samples if sample.startswith(f"{name}_")}
            assert of_family <= {f"{name}_total", f"{name}_created"}, name
    # And metric_names(), which the dashboard and alert checks trust, lists every sample.
    assert {sample for sample, _ in samples if not sample.endswith("_created")} <= telemetry.metric_names()


def test_known_series_start_at_zero(world: World) -> None:
    # Nothing has run yet: the offerings, the statuses and the reasons are known all the same.
    _, samples = scrape(world.core)
    for offering in ("gold", "bronze"):
        for state in telemetry.RPO_STATES:
            key = (("offering", offering), ("state", state))
            expected = 2 if (offering, state) == ("gold", "never") else 0  # web1 and app1
            assert samples["backup_orchestrator_rpo_vms", key] == expected
        for status in BackupStatus:
            assert (
                samples[
                    "backup_orchestrator_restore_points", (("offering", offering), ("status", status.value))
                ]
                == 0
            )
        assert samples["backup_orchestrator_jobs_past_deadline", (("offering", offering),)] == 0
    for reason in telemetry.REDELIVERY_REASONS:
        assert ("backup_orchestrator_jobs_redelivered_total", (("reason", reason),)) in samples


def test_no_label_names_a_tenant(world: World) -> None:
    with world.core.scope(world.alice) as s:
        backups.create_backup(s, world.alice_vm)
    _, samples = scrape(world.core)
    assert samples["backup_orchestrator_rpo_vms", (("offering", "gold"), ("state", "within"))] == 1
    tenants = {"alice", "bob", world.alice_vm, world.bob_vm, world.alice_vm2, "web1", "app1", "db1"}
    for name, labels in samples:
        assert {label for label, _ in labels} - {"le"} <= OPERATOR_LABELS, name
        assert not {value for _, value in labels} & tenants, (name, labels)


def test_overdue_backups_count_whether_planned_or_released(world: World, deferred: Core) -> None:
    planning.replan(deferred)
    now = utcnow()
    with deferred.db.session() as session:
        firsts = dict(
            session.execute(
                select(Job.subject_id, Job.id)
                .where(Job.state == JobState.PLANNED)
                .order_by(Job.not_before.desc())
            ).all()
        )
        # web1's first backup is due and overdue; app1's is overdue but not yet released.
        session.execute(
            update(Job)
            .where(Job.id == firsts[world.alice_vm])
            .values(not_before=now - timedelta(hours=1), deadline=now - timedelta(minutes=5))
        )
        session.execute(
            update(Job).where(Job.id == firsts[world.bob_vm]).values(deadline=now - timedelta(minutes=5))
        )
    planning.release_due(deferred)
    with deferred.db.session() as session:
        released = session.get(Job, firsts[world.alice_vm])
        assert released is not None
        assert released.state is JobState.QUEUED
        assert released.subject_type == "backup"  # its subject is now the restore point
    _, samples = scrape(deferred)
    assert samples["backup_orchestrator_jobs_past_deadline", (("offering", "gold"),)] == 2
