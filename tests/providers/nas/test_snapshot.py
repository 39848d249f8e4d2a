"""All volumes are frozen as one group before they are read."""

from __future__ import annotations

import errno
import json
import shutil
import sys

import pytest

from orchestrator.domain.errors import ProviderError
from providers.nas import NasProvider, snapshot
from tests.providers.nas.conftest import ignore, make_raw, sha256, take, vm_of, volume


def _no_reflink(src, dst):
    raise OSError(errno.EOPNOTSUPP, "Operation not supported")


def _fake_reflink(src, dst):
    """What FICLONE gives: an independent copy of the file as it is now."""
    shutil.copyfile(src, dst)


@pytest.fixture
def no_reflink(monkeypatch):
    monkeypatch.setattr(snapshot, "reflink", _no_reflink)


@pytest.fixture
def fake_reflink(monkeypatch):
    monkeypatch.setattr(snapshot, "reflink", _fake_reflink)


def _script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return str(path)


def test_running_vm_without_a_way_to_freeze_it_is_refused(nas, disks, no_reflink):
    disk = make_raw(disks / "root.raw")
    with pytest.raises(ProviderError, match="cannot take a point-in-time copy of running VM") as err:
        take(nas(snapshot="auto"), vm_of(volume(disk)), "rp-1")
    assert "snapshot_command" in err.value.message
    assert not err.value.retryable


def test_stopped_vm_is_read_in_place(nas, disks, no_reflink):
    disk = make_raw(disks / "root.raw")
    provider = nas(snapshot="auto")
    take(provider, vm_of(volume(disk), state="Stopped"), "rp-1")
    assert provider.list_points()[0].consistency == "direct"


def test_strict_reflink_mode_says_why_it_cannot(nas, disks, no_reflink):
    disk = make_raw(disks / "root.raw")
    with pytest.raises(ProviderError, match="snapshot: reflink is configured, but no reflink on"):
        take(nas(snapshot="reflink"), vm_of(volume(disk)), "rp-1")


def test_reflink_clones_every_volume_inside_one_freeze(nas, disks, tmp_path, fake_reflink):
    root = make_raw(disks / "root.raw", seed=1)
    data = make_raw(disks / "data.raw", seed=2)
    frozen = {root: sha256(root), data: sha256(data)}
    log = tmp_path / "hooks.log"
    freeze = _script(tmp_path, "freeze", f"open({str(log)!r}, 'a').write('freeze\\n')")
    # The VM resumes writing as soon as it is thawed, before the clones are read.
    thaw = _script(
        tmp_path,
        "thaw",
        f"open({str(log)!r}, 'a').write('thaw\\n')\n"
        f"for p in ({str(root)!r}, {str(data)!r}):\n"
        f"    f = open(p, 'r+b'); f.write(b'written after the snapshot'); f.close()\n",
    )
    vm = vm_of(volume(root, 0), volume(data, 1))
    provider = nas(snapshot="auto", freeze_command=freeze, thaw_command=thaw)
    _, point = take(provider, vm, "rp-1")

    assert log.read_text() == "freeze\nthaw\n"
    assert provider.list_points()[0].consistency == "reflink+freeze"
    assert sorted(p.name for p in disks.iterdir()) == ["data.raw", "root.raw"]  # clones removed
    provider.restore_vm(point, vm, ignore)
    assert {root: sha256(root), data: sha256(data)} == frozen


def test_snapshot_command_gives_the_images_and_release_drops_them(nas, disks, tmp_path, no_reflink):
    root = make_raw(disks / "root.raw", seed=1)
    expected = sha256(root)
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    take_snap = _script(
        tmp_path,
        "snap",
        "import json, os, shutil, sys\n"
        "vm = json.load(sys.stdin)\n"
        f"out = {{}}\n"
        "for v in vm['volumes']:\n"
        f"    dst = os.path.join({str(snaps)!r}, os.environ['NAS_POINT_ID'] + '-' + v['id'])\n"
        "    shutil.copyfile(v['path'], dst)\n"
        "    open(v['path'], 'r+b').write(b'the VM goes on writing')\n"
        "    out[v['id']] = {'path': dst, 'format': v['format']}\n"
        "print(json.dumps({'volumes': out}))\n",
    )
    release = _script(
        tmp_path,
        "release",
        "import json, os, sys\nfor v in json.load(sys.stdin)['volumes'].values(): os.unlink(v['path'])\n",
    )
    vm = vm_of(volume(root))
    provider = nas(snapshot="auto", snapshot_command=take_snap, release_command=release)
    _, point = take(provider, vm, "rp-1")

    assert list(snaps.iterdir()) == []
    assert provider.list_points()[0].consistency == "command"
    provider.restore_vm(point, vm, ignore)
    assert sha256(root) == expected


def test_a_failing_hook_fails_the_backup_with_its_message(nas, disks, tmp_path):
    disk = make_raw(disks / "root.raw")
    bad = _script(tmp_path, "bad", "import sys\nsys.stderr.write('pool is read-only')\nsys.exit(3)\n")
    with pytest.raises(ProviderError, match="exit status 3: pool is read-only"):
        take(nas(snapshot="command", snapshot_command=bad), vm_of(volume(disk)), "rp-1")


def test_snapshot_command_must_name_every_volume(nas, disks, tmp_path):
    disk = make_raw(disks / "root.raw")
    silent = _script(tmp_path, "silent", f"print({json.dumps(json.dumps({'volumes': {}}))})")
    with pytest.raises(ProviderError, match="must be JSON naming every volume id"):
        take(nas(snapshot="command", snapshot_command=silent), vm_of(volume(disk)), "rp-1")


class FrozenByHypervisor(snapshot.SnapshotSource):
    """How a KVM driver plugs in: its own capture, e.g. a libvirt disk-only snapshot."""

    def __init__(self, copies):
        self.copies = copies
        self.released = False

    def capture(self, vm, point_id, *, quiesce=False):
        import contextlib

        @contextlib.contextmanager
        def frozen():
            try:
                yield snapshot.Capture(
                    {v.id: snapshot.SourceImage(str(self.copies[v.id]), v.format) for v in vm.volumes},
                    "libvirt",
                )
            finally:
                self.released = True

        return frozen()


def test_a_hypervisor_driver_can_supply_its_own_snapshots(tmp_path, repo, disks):
    root = make_raw(disks / "root.raw", seed=1)
    copy = make_raw(tmp_path / "frozen.raw", seed=4)
    source = FrozenByHypervisor({"vol-0": copy})
    provider = NasProvider("kvm-nas", {"repository": str(repo)}, tmp_path / "data", snapshot_source=source)
    vm = vm_of(volume(root))
    _, point = take(provider, vm, "rp-1")

    assert source.released
    assert provider.list_points()[0].consistency == "libvirt"
    provider.restore_vm(point, vm, ignore)
    assert sha256(root) == sha256(copy)
