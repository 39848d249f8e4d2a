"""Inventory input that would be stored and then mean nothing is refused when it is given."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import InvalidArgument
from orchestrator.usecases import inventory
from tests.conftest import GiB


def test_a_relative_volume_path_is_refused(world):
    with pytest.raises(InvalidArgument, match="not absolute") as err, world.core.scope(world.admin) as s:
        inventory.register_vm(
            s,
            name="rel",
            account="alice",
            zone="zone1",
            host="kvm1",
            volumes=[{"pool": "pool1", "size": GiB, "path": "images/rel.qcow2"}],
        )
    assert err.value.field == "path"


def test_an_absolute_volume_path_is_kept(world):
    with world.core.scope(world.admin) as s:
        vm = inventory.register_vm(
            s,
            name="abs",
            account="alice",
            zone="zone1",
            host="kvm1",
            volumes=[{"pool": "pool1", "size": GiB, "path": "/srv/pool1/abs.qcow2"}],
        )
        assert [v.path for v in vm.live_volumes] == ["/srv/pool1/abs.qcow2"]
