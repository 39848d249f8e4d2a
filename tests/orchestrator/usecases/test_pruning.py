"""Retention in force: offering keep rules and schedule max_backups, through real jobs."""

from datetime import timedelta

from orchestrator.domain.models import Backup, BackupStatus, BackupType
from orchestrator.usecases import assignments, backups, offerings, pruning
from tests.conftest import add_provider, import_offering


def _backup(world, vm):
    with world.core.scope(world.admin) as s:
        return backups.create_backup(s, vm).subject_id


def _age(world, point_id, days):
    """Pretend a point was taken ``days`` ago (retention counts calendar periods)."""
    with world.core.db.session() as s:
        s.get(Backup, point_id).created_at -= timedelta(days=days)


def _status(world, point_id):
    with world.core.db.session() as s:
        return s.get(Backup, point_id).status


def _setup(world, retention, **caps):
    provider = add_provider(world.core, world.admin, "kept", **caps)
    offering = import_offering(
        world.core, world.admin, provider, "kept-gold", external_id="dummy-gold", **retention
    )
    with world.core.scope(world.alice) as s:
        assignments.assign(s, world.alice_vm2, offering)
    return offering


def test_offering_retention_count_expunges_the_oldest_after_each_backup(world):
    _setup(world, {"retention_count": 2}, capabilities=["delete_single_restore_point"])
    ids = [_backup(world, world.alice_vm2) for _ in range(4)]
    assert [_status(world, i) for i in ids] == [
        BackupStatus.EXPUNGED,
        BackupStatus.EXPUNGED,
        BackupStatus.BACKED_UP,
        BackupStatus.BACKED_UP,
    ]


def test_the_new_root_of_a_pruned_chain_is_full_and_keeps_its_sizes(world):
    _setup(world, {"retention_count": 2}, capabilities=["incremental", "delete_single_restore_point"])
    ids = [_backup(world, world.alice_vm2) for _ in range(3)]
    with world.core.db.session() as s:
        points = [s.get(Backup, i) for i in ids]
        shown = [(p.status, p.backup_type, p.parent_id) for p in points]
        sizes = [(p.protected_size, p.size) for p in points[1:]]
    assert shown == [
        (BackupStatus.EXPUNGED, BackupType.FULL, None),
        # The first incremental lost its parent: it restores alone now, as a full.
        (BackupStatus.BACKED_UP, BackupType.FULL, None),
        (BackupStatus.BACKED_UP, BackupType.INCREMENTAL, ids[1]),
    ]
    # What it restores is the VM's 12 GiB; what it stored, the increment it was taken as.
    assert sizes == [(12 * 2**30, 12 * 2**30 // 10)] * 2


def test_a_full_needed_by_a_kept_incremental_survives_retention(world):
    _setup(world, {"retention_count": 1}, capabilities=["incremental"])
    full, inc = _backup(world, world.alice_vm2), _backup(world, world.alice_vm2)
    assert _status(world, full) is BackupStatus.BACKED_UP
    assert _status(world, inc) is BackupStatus.BACKED_UP
    with world.core.scope(world.admin) as s:
        assert pruning.prune(s, dry_run=True) == []


def test_keep_daily_by_calendar_day_and_dry_run_deletes_nothing(world):
    offering = _setup(world, {}, capabilities=["delete_single_restore_point"])
    ids = []
    for age in (3, 2, 1, 0):
        ids.append(_backup(world, world.alice_vm2))
        _age(world, ids[-1], age)
    with world.core.scope(world.admin) as s:
        offerings.update_offering(s, offering, keep_daily=2)
    with world.core.scope(world.admin) as s:
        planned = pruning.prune(s, vm_id=world.alice_vm2, dry_run=True)
    assert [sorted(d.expire) for d in planned] == [sorted(ids[:2])]
    assert all(_status(world, i) is BackupStatus.BACKED_UP for i in ids)
    with world.core.scope(world.admin) as s:
        pruning.prune(s, vm_id=world.alice_vm2)
    assert [_status(world, i) for i in ids] == [
        BackupStatus.EXPUNGED,
        BackupStatus.EXPUNGED,
        BackupStatus.BACKED_UP,
        BackupStatus.BACKED_UP,
    ]


def test_users_prune_only_their_own_vms(world):
    _setup(world, {"retention_count": 1}, capabilities=["delete_single_restore_point"])
    with world.core.scope(world.bob) as s:
        assert pruning.prune(s, dry_run=True) == []
