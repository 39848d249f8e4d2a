"""Inventory input that would be stored and then mean nothing is refused when it is given."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import InvalidArgument
from orchestrator.usecases import backup_providers, inventory
from tests.conftest import GiB


def test_a_relative_volume_path_is_refused(world):
    with (
        pytest.raises(InvalidArgument, match="not an absolute path") as err,
        world.core.scope(world.admin) as s,
    ):
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


def _register(world, path: str):
    with world.core.scope(world.admin) as s:
        vm = inventory.register_vm(
            s,
            name="placed",
            account="alice",
            zone="zone1",
            host="kvm1",
            volumes=[{"pool": "pool1", "size": GiB, "path": path}],
        )
        return [v.path for v in vm.live_volumes]


@pytest.mark.parametrize(
    "path", ["/etc/shadow", "/srv/pool1/../../etc/passwd", "/srv/pool1", "/srv/pool10/x"]
)
def test_a_volume_outside_its_pool_is_refused(world, path):
    with pytest.raises(InvalidArgument, match="is not inside storage pool 'pool1'") as err:
        _register(world, path)
    assert err.value.field == "path"


def test_a_volume_path_is_normalised(world):
    assert _register(world, "/srv//pool1/./images/../web.qcow2") == ["/srv/pool1/web.qcow2"]


def test_a_volume_of_a_pool_without_a_path_may_lie_anywhere_absolute(world):
    with world.core.scope(world.admin) as s:
        inventory.create_pool(s, zone="zone1", name="lvm", path="")
        vm = inventory.register_vm(
            s,
            name="raw",
            account="alice",
            zone="zone1",
            volumes=[{"pool": "lvm", "size": GiB, "path": "/dev/vg0/raw"}],
        )
        assert [v.path for v in vm.live_volumes] == ["/dev/vg0/raw"]


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("../../etc", "not an absolute path"),
        ("srv/pool", "not an absolute path"),
        ("/", "must not be the root directory"),
        ("/srv/..", "must not be the root directory"),
    ],
)
def test_a_pool_path_must_be_an_absolute_folder_below_the_root(world, path, says):
    with pytest.raises(InvalidArgument, match=says) as err, world.core.scope(world.admin) as s:
        inventory.create_pool(s, zone="zone1", name="odd", path=path)
    assert err.value.field == "path"


def test_a_pool_path_is_stored_normalised(world):
    with world.core.scope(world.admin) as s:
        assert (
            inventory.create_pool(s, zone="zone1", name="tidy", path="/srv/tidy/./a/../").path == "/srv/tidy"
        )


@pytest.mark.parametrize(
    ("repository", "says"),
    [
        ("/", "must not be the root directory"),
        ("/srv/x/../..", "must not be the root directory"),
        ("/srv/pool1", "inside storage pool 'pool1'"),
        ("/srv/pool1/backups", "inside storage pool 'pool1'"),
        ("/srv/pool2/../pool1/backups", "inside storage pool 'pool1'"),
    ],
)
def test_a_nas_repository_at_the_root_or_inside_a_pool_is_refused(world, tmp_path, repository, says):
    with pytest.raises(InvalidArgument, match=says) as err, world.core.scope(world.admin) as s:
        backup_providers.add(s, name="nas1", driver="nas", config={"repository": repository})
    assert err.value.field == "config.repository"


def test_a_nas_repository_beside_the_pools_is_taken(world, tmp_path):
    with world.core.scope(world.admin) as s:
        row = backup_providers.add(
            s, name="nas1", driver="nas", config={"repository": str(tmp_path / "repo")}
        )
        assert row.config["repository"] == str(tmp_path / "repo")
