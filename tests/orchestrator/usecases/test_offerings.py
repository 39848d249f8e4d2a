"""SLA offerings: import, list, update and delete."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from sqlalchemy import select

from orchestrator.domain.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from orchestrator.domain.models import BackupStatus, Job, JobState, utcnow
from orchestrator.usecases import assignments, backups, jobs, offerings, planning, restores
from tests.conftest import add_provider, import_offering

DAILY_2AM = [{"start": "01:00", "end": "03:00"}]


def _import(world, name="silver", **kw):
    return import_offering(world.core, world.admin, world.provider_id, name, **kw)


def _show(world, offering_id):
    with world.core.scope(world.admin) as s:
        return offerings.show(s, offering_id)


# -- import ------------------------------------------------------------------------------------


def test_import_stores_sla_and_provider_policy(world):
    offering_id = _import(
        world,
        external_id="dummy-silver",
        rpo="6h",
        description="every 6 hours",
        timezone="Europe/Paris",
        retention_count=7,
    )

    got = _show(world, offering_id)
    assert got.name == "silver"
    assert got.external_id == "dummy-silver"
    assert got.provider_id == world.provider_id
    assert got.zone_id == world.zone_id
    assert got.rpo_seconds == 6 * 3600
    assert got.timezone == "Europe/Paris"
    assert got.retention_count == 7
    assert got.description == "every 6 hours"


def test_import_normalises_windows(world):
    offering_id = _import(world, rpo="24h", windows=DAILY_2AM)

    windows = _show(world, offering_id).windows
    assert len(windows) == 1
    assert windows[0]["start"] == "01:00"
    assert windows[0]["end"] == "03:00"
    assert "days" not in windows[0]  # every day: stored without a day list


def test_import_unknown_external_id_is_invalid(world):
    with pytest.raises(InvalidArgument, match="external_id") as err:
        _import(world, external_id="no-such-policy")
    assert err.value.field == "external_id"
    assert "no-such-policy" in err.value.message


def test_import_duplicate_name_in_zone_conflicts(world):
    with pytest.raises(Conflict, match="gold") as err:
        _import(world, name="gold")
    assert err.value.field == "name"


def test_import_same_name_in_other_zone_is_allowed(world):
    offering_id = _import(world, name="gold", zone="zone2")

    assert _show(world, offering_id).zone_id == world.zone2_id


@pytest.mark.parametrize("rpo", ["abc", "5m", 0, -3600, "10s"])
def test_import_bad_rpo_is_invalid(world, rpo):
    with pytest.raises(InvalidArgument, match="rpo") as err:
        _import(world, rpo=rpo)
    assert err.value.field == "rpo"


def test_import_zero_length_window_is_invalid(world):
    with pytest.raises(InvalidArgument, match=r"windows\[0\].*zero length"):
        _import(world, windows=[{"start": "02:00", "end": "02:00"}])


def test_import_blackout_covering_whole_window_is_invalid(world):
    with pytest.raises(InvalidArgument, match="blackout") as err:
        _import(world, windows=DAILY_2AM, blackouts=[{"start": "00:30", "end": "04:00"}])
    assert err.value.field == "blackouts"


def test_import_unknown_time_zone_is_invalid(world):
    with pytest.raises(InvalidArgument, match="timezone") as err:
        _import(world, timezone="Mars/Olympus_Mons")
    assert "Mars/Olympus_Mons" in err.value.message


def test_import_rpo_shorter_than_gap_between_windows_is_invalid(world):
    # A two-hour window a day leaves 22 hours without backups: a 6h RPO can never be met.
    with pytest.raises(InvalidArgument, match=r"rpo: 6h can never be met") as err:
        _import(world, rpo="6h", windows=DAILY_2AM)
    assert "22h" in err.value.message


def test_import_rpo_shorter_than_weekend_without_windows_is_invalid(world):
    weekdays = [{"start": "01:00", "end": "03:00", "days": ["mon", "tue", "wed", "thu", "fri"]}]

    with pytest.raises(InvalidArgument, match=r"rpo: 1d can never be met.*70h"):
        _import(world, rpo="1d", windows=weekdays)


def test_import_rpo_covering_gap_between_windows_is_accepted(world):
    offering_id = _import(world, rpo="1d", windows=DAILY_2AM)

    assert _show(world, offering_id).rpo_seconds == 86400


def test_import_negative_retention_is_invalid(world):
    with pytest.raises(InvalidArgument, match="keep_daily"):
        _import(world, keep_daily=-1)


def test_import_by_user_is_denied(world):
    with pytest.raises(PermissionDenied, match="admin"):
        import_offering(world.core, world.alice, world.provider_id, "mine")


def test_failed_import_stores_nothing(world):
    with pytest.raises(InvalidArgument):
        _import(world, name="broken", rpo="abc")

    with world.core.scope(world.admin) as s:
        names = [o.name for o in offerings.list_offerings(s).items]
    assert "broken" not in names


# -- list ----------------------------------------------------------------------------------------


def test_list_returns_live_offerings_by_name(world):
    with world.core.scope(world.alice) as s:
        page = offerings.list_offerings(s)

    assert [o.name for o in page.items] == ["bronze", "gold"]
    assert page.total == 2


def test_list_pages(world):
    for name in ("a1", "a2", "a3"):
        _import(world, name=name)

    with world.core.scope(world.admin) as s:
        first = offerings.list_offerings(s, pagesize=2, page=1)
        second = offerings.list_offerings(s, pagesize=2, page=2)
        third = offerings.list_offerings(s, pagesize=2, page=3)

    assert first.total == second.total == 5
    assert [o.name for o in first.items] == ["a1", "a2"]
    assert [o.name for o in second.items] == ["a3", "bronze"]
    assert [o.name for o in third.items] == ["gold"]


def test_list_bad_page_is_invalid(world):
    with world.core.scope(world.admin) as s, pytest.raises(InvalidArgument, match="pagesize"):
        offerings.list_offerings(s, pagesize=0)


def test_list_filters_by_zone_and_keyword(world):
    _import(world, name="gold-z2", zone="zone2")

    with world.core.scope(world.admin) as s:
        zone2 = offerings.list_offerings(s, zone="zone2").items
        gold = offerings.list_offerings(s, keyword="gold").items

    assert [o.name for o in zone2] == ["gold-z2"]
    assert [o.name for o in gold] == ["gold", "gold-z2"]


# -- update --------------------------------------------------------------------------------------


def _planned(world, vm_ids) -> list:
    with world.core.db.session() as session:
        return list(
            session.scalars(select(Job).where(Job.state == JobState.PLANNED, Job.subject_id.in_(vm_ids)))
        )


def test_changing_the_window_replans_the_offerings_vms_at_once(world):
    # No window yet: the first plan spreads gold's VMs over the next 24 hours.
    now = utcnow()
    vms = [world.alice_vm, world.bob_vm]
    planning.replan(world.core, now)
    before = _planned(world, vms)
    assert {j.subject_id for j in before} == set(vms)

    def inside(job, opens) -> bool:
        return opens <= job.not_before.replace(tzinfo=UTC) < opens + timedelta(hours=2)

    # A two-hour window later today that none of the planned jobs falls in.
    hour = now.replace(minute=0, second=0, microsecond=0)
    opens = next(
        hour + timedelta(hours=h)
        for h in range(2, 22)
        if not any(inside(j, hour + timedelta(hours=h)) for j in before)
    )
    window = [{"start": f"{opens:%H}:00", "end": f"{opens + timedelta(hours=2):%H}:00"}]
    with world.core.scope(world.admin) as s:
        offerings.update_offering(s, world.gold_id, windows=window)

    # No round ran: the update itself placed them inside the new window.
    after = _planned(world, vms)
    assert {j.subject_id for j in after} == set(vms)
    assert all(inside(j, opens) for j in after), (opens, [j.not_before for j in after])
    with world.core.db.session() as session:
        old = [session.get(Job, j.id) for j in before]
        assert all(j.state is JobState.CANCELLED for j in old)
        assert all("offering 'gold' changed its SLA" in j.error for j in old)


def test_a_refused_update_leaves_the_plan_alone(world):
    planning.replan(world.core)
    before = {j.id for j in _planned(world, [world.alice_vm])}
    with pytest.raises(InvalidArgument), world.core.scope(world.admin) as s:
        offerings.update_offering(
            s, world.gold_id, windows=[{"start": "01:00", "end": "03:00"}], rpo="nonsense"
        )

    assert {j.id for j in _planned(world, [world.alice_vm])} == before


def test_update_name_and_description(world):
    with world.core.scope(world.admin) as s:
        offerings.update_offering(s, world.gold_id, name="platinum", description="the best")

    got = _show(world, world.gold_id)
    assert got.name == "platinum"
    assert got.description == "the best"


def test_update_name_to_taken_name_conflicts(world):
    with pytest.raises(Conflict, match="bronze"), world.core.scope(world.admin) as s:
        offerings.update_offering(s, world.gold_id, name="bronze")

    assert _show(world, world.gold_id).name == "gold"


def test_update_rpo(world):
    with world.core.scope(world.admin) as s:
        offerings.update_offering(s, world.gold_id, rpo="12h")

    assert _show(world, world.gold_id).rpo_seconds == 12 * 3600


def test_update_windows_keeps_rpo(world):
    with world.core.scope(world.admin) as s:
        offerings.update_offering(s, world.gold_id, windows=DAILY_2AM)

    got = _show(world, world.gold_id)
    assert [(w["start"], w["end"]) for w in got.windows] == [("01:00", "03:00")]
    assert got.rpo_seconds == 24 * 3600


def test_update_user_driven_flag_takes_effect(world):
    with world.core.scope(world.admin) as s:
        offerings.update_offering(s, world.gold_id, allow_user_driven_backups=False)

    assert _show(world, world.gold_id).allow_user_driven_backups is False
    with pytest.raises(PermissionDenied, match="gold"), world.core.scope(world.alice) as s:
        backups.create_backup(s, world.alice_vm)


def test_invalid_update_changes_nothing(world):
    # Windows on Mondays only leave almost a week without backups: the 24h RPO breaks.
    monday = [{"start": "01:00", "end": "03:00", "days": ["mon"]}]
    with pytest.raises(InvalidArgument, match="rpo"), world.core.scope(world.admin) as s:
        offerings.update_offering(s, world.gold_id, name="renamed", description="x", windows=monday)

    got = _show(world, world.gold_id)
    assert got.name == "gold"
    assert got.description == ""
    assert got.windows == []


def test_update_unknown_field_is_invalid(world):
    with pytest.raises(InvalidArgument, match="provider_id"), world.core.scope(world.admin) as s:
        offerings.update_offering(s, world.gold_id, provider_id="other")


def test_update_by_user_is_denied(world):
    with pytest.raises(PermissionDenied), world.core.scope(world.alice) as s:
        offerings.update_offering(s, world.gold_id, name="mine")

    assert _show(world, world.gold_id).name == "gold"


# -- delete --------------------------------------------------------------------------------------


def test_delete_refused_while_vm_assigned(world):
    with pytest.raises(Conflict, match=r"'gold' is in use by 2"), world.core.scope(world.admin) as s:
        offerings.delete_offering(s, world.gold_id)

    assert _show(world, world.gold_id).removed_at is None


def test_delete_allowed_after_unassign(world):
    with world.core.scope(world.alice) as s:
        assignments.remove(s, world.alice_vm)
    with world.core.scope(world.bob) as s:
        assignments.remove(s, world.bob_vm)

    with world.core.scope(world.admin) as s:
        offerings.delete_offering(s, world.gold_id)

    with pytest.raises(NotFound, match="backup offering"):
        _show(world, world.gold_id)
    with world.core.scope(world.admin) as s:
        assert [o.name for o in offerings.list_offerings(s).items] == ["bronze"]


def test_delete_by_user_is_denied(world):
    with pytest.raises(PermissionDenied), world.core.scope(world.alice) as s:
        offerings.delete_offering(s, world.bronze_id)


def test_deleted_offering_name_can_be_reused(world):
    with world.core.scope(world.admin) as s:
        offerings.delete_offering(s, world.bronze_id)

    new_id = _import(world, name="bronze", external_id="dummy-bronze", rpo="2d")

    assert new_id != world.bronze_id
    assert _show(world, new_id).name == "bronze"


def test_deleted_offering_cannot_be_assigned(world):
    with world.core.scope(world.admin) as s:
        offerings.delete_offering(s, world.bronze_id)

    with pytest.raises(NotFound, match="backup offering"), world.core.scope(world.alice) as s:
        assignments.assign(s, world.alice_vm2, world.bronze_id)


def test_restore_points_of_deleted_offering_stay_restorable(world):
    # A provider that keeps restore points when the VM leaves the offering.
    provider = add_provider(world.core, world.admin, "keeper", capabilities=["restore_volume"])
    offering_id = import_offering(world.core, world.admin, provider, "kept")
    with world.core.scope(world.alice) as s:
        assignments.assign(s, world.alice_vm2, offering_id)
    with world.core.scope(world.alice) as s:
        backup_job = backups.create_backup(s, world.alice_vm2).id
    with world.core.scope(world.alice) as s:
        assignments.remove(s, world.alice_vm2)
    with world.core.scope(world.admin) as s:
        offerings.delete_offering(s, offering_id)

    with world.core.scope(world.alice) as s:
        point_id = jobs.show(s, backup_job).subject_id
        restore_job = restores.restore_vm(s, point_id).id

    with world.core.scope(world.alice) as s:
        assert jobs.show(s, restore_job).state is JobState.SUCCEEDED
        point = backups.show(s, point_id)
        assert point.status is BackupStatus.BACKED_UP
        assert point.offering_id == offering_id
