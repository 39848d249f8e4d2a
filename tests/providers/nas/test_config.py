"""Configuration is checked in the constructor, with errors naming the field."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import InvalidArgument, ProviderError
from providers.nas import NasProvider
from tests.providers.nas.conftest import make_raw, take, vm_of, volume


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "repository"),
        ({"repository": "relative/repo"}, "repository"),
        ({"repository": 5}, "repository"),
        ({"chunk_size": 3 * 2**20}, "chunk_size"),
        ({"chunk_size": 1024}, "chunk_size"),
        ({"chunk_size": "1M"}, "chunk_size"),
        ({"compression_level": 30}, "compression_level"),
        ({"compression_level": -5}, "compression_level"),
        ({"snapshot": "lvm"}, "snapshot"),
        ({"snapshot": "command"}, "snapshot_command"),
        ({"snapshot_command": []}, "snapshot_command"),
        ({"freeze_command": "virsh domfsfreeze"}, "thaw_command"),
        ({"io_timeout_s": 0}, "io_timeout_s"),
        ({"io_timeout_s": True}, "io_timeout_s"),
        ({"gc_grace_s": -1}, "gc_grace_s"),
        ({"threads": 0}, "threads"),
        ({"fsync": "yes"}, "fsync"),
        ({"offerings": []}, "offerings"),
        ({"offerings": [{"id": "a"}, {"id": "a"}]}, "offerings"),
        ({"retention": {"keep_daily": -1}}, "retention"),
        ({"retention": {"keep_forever": 1}}, "retention"),
        ({"repositry": "/typo"}, "config"),
    ],
)
def test_bad_settings_are_refused_with_their_field(tmp_path, config, field):
    settings = {"repository": str(tmp_path / "repo"), **config}
    if "repository" in config or config == {}:
        settings = dict(config)
    with pytest.raises(InvalidArgument) as err:
        NasProvider("nas", settings, tmp_path)
    assert err.value.field in (f"config.{field}", field)


def test_constructor_does_not_touch_the_repository(tmp_path):
    NasProvider("nas", {"repository": str(tmp_path / "missing" / "repo")}, tmp_path)
    assert not (tmp_path / "missing").exists()


def test_missing_mount_is_an_error_not_a_local_repository(nas, disks, tmp_path):
    provider = nas(repository=str(tmp_path / "unmounted" / "repo"))
    with pytest.raises(ProviderError, match="does not exist"):
        take(provider, vm_of(volume(make_raw(disks / "root.raw"))), "rp-1")
    assert not (tmp_path / "unmounted").exists()


def test_a_foreign_directory_is_not_turned_into_a_repository(nas, disks, repo):
    repo.mkdir()
    (repo / "somebody's.data").write_text("keep")
    with pytest.raises(ProviderError, match="not empty and holds no repository"):
        take(nas(), vm_of(volume(make_raw(disks / "root.raw"))), "rp-1")


def test_chunk_size_is_fixed_when_the_repository_is_made(nas, disks):
    vm = vm_of(volume(make_raw(disks / "root.raw")))
    take(nas(), vm, "rp-1")
    with pytest.raises(ProviderError, match="chunk_size 1048576 in the configuration differs"):
        take(nas(chunk_size=2**20), vm, "rp-2")


def test_missing_source_disk_is_a_clear_error(nas, disks):
    vm = vm_of(volume(make_raw(disks / "root.raw")))
    (disks / "root.raw").unlink()
    with pytest.raises(ProviderError, match=r"disk image .*root.raw does not exist"):
        take(nas(), vm, "rp-1")
