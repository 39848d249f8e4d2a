"""The capacity report over the inventory: bounds per night, binding pool, misses and fixes."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import PermissionDenied
from orchestrator.usecases import assignments, capacity_report, inventory
from tests.conftest import GiB, import_offering


@pytest.fixture
def crowded(world):
    """20 VMs of 10 GiB on a 10 MiB/s pool with a 2 h nightly window: about 5.7 h of reading."""
    with world.core.scope(world.admin) as s:
        inventory.create_pool(s, zone="zone1", name="slow", bandwidth_bytes_per_s=10 * 2**20)
        ids = [
            inventory.register_vm(
                s,
                name=f"big{i}",
                account="alice",
                zone="zone1",
                host="kvm1",
                volumes=[{"pool": "slow", "size": 10 * GiB}],
            ).id
            for i in range(20)
        ]
    night = import_offering(
        world.core,
        world.admin,
        world.provider_id,
        "night",
        rpo="1d",
        windows=[{"start": "01:00", "end": "03:00"}],
    )
    with world.core.scope(world.admin) as s:
        for vm_id in ids:
            assignments.assign(s, vm_id, night)
    return ids


def test_an_overloaded_pool_is_reported_with_its_binding_term_and_fix(world, crowded):
    with world.core.scope(world.admin) as s:
        report = capacity_report.report(s, nights=1)
    assert report.feasible is False
    night = report.nights[0]
    assert night["feasible"] is False
    slow = next(b for b in night["bounds"] if b["name"] == "slow")
    assert slow["fits"] is False
    assert slow["binding_term"] == "bytes/bandwidth"
    assert slow["ratio"] > 2
    assert "bandwidth" in slow["fix"]
    fine = next(b for b in night["bounds"] if b["name"] == "pool1")
    assert fine["fits"] is True


def test_vms_that_will_miss_their_rpo_are_named_with_a_longer_tier(world, crowded):
    with world.core.scope(world.admin) as s:
        report = capacity_report.report(s, nights=1)
    missing = {m["vm_id"] for m in report.misses}
    assert missing
    assert missing <= set(crowded)
    late = [m for m in report.misses if "late_by" in m]
    assert all(m["offering"] == "night" for m in late)
    assert any(m["lower_tier"] == "bronze" for m in late)  # bronze has a 2-day RPO


def test_a_light_fleet_fits(world):
    with world.core.scope(world.admin) as s:
        report = capacity_report.report(s, nights=2)
    assert report.feasible is True
    assert len(report.nights) == 2
    assert {o["name"] for o in report.offerings} == {"gold"}
    assert report.offerings[0]["vms"] == 2


def test_users_cannot_see_the_capacity_report(world):
    with pytest.raises(PermissionDenied), world.core.scope(world.alice) as s:
        capacity_report.report(s)


def test_an_rpo_equal_to_the_windows_spacing_leaves_no_room_to_retry(world, crowded):
    # 1 d on a nightly window: backups 24 h apart, a failed one is late whatever the capacity.
    with world.core.scope(world.admin) as s:
        report = capacity_report.report(s, nights=1)
    night = next(o for o in report.offerings if o["name"] == "night")
    assert night["retry_room"] == "0m"
    assert night["vms_without_retry_room"] == 20
    # Each backup reads 10 GiB at 10 MiB/s (~17 min): two of them and the 15 min wait fit in
    # one more hour.
    assert night["retry_fix"].startswith("an RPO of 25h ")
    assert report.failure_tolerant is False
    assert report.to_dict()["failure_tolerant"] is False


def test_an_rpo_beyond_the_windows_spacing_is_kept_as_room_to_retry(world):
    with world.core.scope(world.admin) as s:
        inventory.create_pool(s, zone="zone1", name="quick", bandwidth_bytes_per_s=100 * 2**20)
        small, big = (
            inventory.register_vm(
                s,
                name=name,
                account="alice",
                zone="zone1",
                host="kvm1",
                volumes=[{"pool": "quick", "size": size}],
            ).id
            for name, size in (("small", GiB), ("big", 600 * GiB))
        )
    # 26 h on a nightly window: 2 h before each deadline stay free for a retry.
    roomy = import_offering(
        world.core,
        world.admin,
        world.provider_id,
        "roomy",
        rpo="26h",
        windows=[{"start": "01:00", "end": "03:00"}],
    )
    with world.core.scope(world.admin) as s:
        assignments.assign(s, small, roomy)
        assignments.assign(s, big, roomy)
        report = capacity_report.report(s, nights=1)
    row = next(o for o in report.offerings if o["name"] == "roomy")
    assert row["retry_room"] == "2h"
    # The big one's backup (~100 min, estimated from its size with no history) cannot fail
    # and run again within 2 h; the small one's can.
    assert row["vms_without_retry_room"] == 1
    assert row["retry_fix"] is not None


def test_backups_longer_than_the_window_are_not_fixed_by_concurrency(world):
    # 12 VMs of 2 TiB on a 01:00-05:00 window: each backup alone takes ~5h50m at the
    # 100 MiB/s a VM never backed up is estimated at, longer than the 4 h window.
    with world.core.scope(world.admin) as s:
        inventory.create_pool(s, zone="zone1", name="bulk")
        ids = [
            inventory.register_vm(
                s,
                name=f"huge{i}",
                account="alice",
                zone="zone1",
                host="kvm1",
                volumes=[{"pool": "bulk", "size": 2048 * GiB}],
            ).id
            for i in range(12)
        ]
    early = import_offering(
        world.core,
        world.admin,
        world.provider_id,
        "early",
        rpo="1d",
        windows=[{"start": "01:00", "end": "05:00"}],
    )
    with world.core.scope(world.admin) as s:
        for vm_id in ids:
            assignments.assign(s, vm_id, early)
        report = capacity_report.report(s, nights=1)

    assert report.feasible is False
    bounds = {b["name"]: b for b in report.nights[0]["bounds"] if not b["fits"]}
    assert set(bounds) == {"bulk", "kvm1"}
    for row in bounds.values():
        fix = row["fix"]
        assert "no concurrency fixes" in fix, fix
        assert fix.startswith(
            "one backup takes 5 hours and 50 minutes, longer than the 4 hours it can run in"
        )
        assert "widen the window to at least 5 hours and 50 minutes" in fix, fix
        assert "or make one backup move at least 146 MiB/s" in fix, fix
    # Then 12 backups at once, each filling the wider window (not the 18 that the 4 h window
    # would ask of the host if a backup could be shorter than it).
    assert bounds["kvm1"]["fix"].endswith(
        "with that window also allow 12 concurrent backups on the host (from 2)"
    )
    assert bounds["bulk"]["fix"].endswith(
        "with that window also allow 12 concurrent backups on the pool (from 4)"
    )
    # The VMs' own reasons agree: longer than the window.
    assert {m["vm_id"] for m in report.misses} == set(ids)
    assert all("longer than any open part of its windows" in m["reason"] for m in report.misses)
