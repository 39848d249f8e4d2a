"""The vsphere driver's data path against the vCenter simulator: backup and restore speed of
a VM with two disks, beside ``cp`` of the same files, and how little an incremental reads
with changed-block tracking.

The VM gets two disks of ``size`` bytes of random (incompressible, never deduplicated)
data, written through the datastore HTTP interface. Then:

  backup_mb_s       a full backup (``VSphereProvider.take_backup``: snapshot, ranged GETs of
                    both ``-flat.vmdk`` files by the NAS mover, chunks hashed, compressed and
                    stored, snapshot removed), MB (10^6 bytes) of disk per second
  cp_mb_s           ``cp`` of the same two data files to another folder of the datastore (the
                    simulator's datastores are local folders): the file system's own speed
  restore_mb_s      an in-place restore of the incremental below (power off, HTTP PUT of both
                    data files, power on)
  restore_byte_exact  the disks hold, byte for byte, what they held at that backup
  incremental_read_fraction  bytes an incremental read over bytes it protects, after the
                    guest rewrote 2 % of each disk (1 MiB writes at random 4 KiB-aligned
                    offsets), reading only the areas ``QueryChangedDiskAreas`` reports. The
                    simulator lacks that call and gives no change ids: they are answered at
                    the SOAP layer as vCenter answers them (tests/providers/vsphere/cbt_fake.py)

The repository is on the same disk as the simulator's datastores.

    .venv/bin/python benchmarks/vsphere_data.py --quick --json    # 2 x 64 MiB
    .venv/bin/python benchmarks/vsphere_data.py                   # 2 x 256 MiB
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Python puts a script's directory first on the path, and benchmarks/queue.py would then
# shadow the standard library's ``queue`` (which the NAS driver imports).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from providers.base import BackupRequest, RestorePointRef  # noqa: E402
from providers.vsphere.connection import VCenterSettings, sessions  # noqa: E402
from providers.vsphere.driver import VSphereProvider  # noqa: E402
from tests.peers import vcsim  # noqa: E402
from tests.providers.vsphere import cbt_fake  # noqa: E402
from tests.providers.vsphere.simvm import MiB, Sim  # noqa: E402

MB = 1e6
CHANGE = 0.02
WRITE = 1 * MiB


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _ignore(done: int, total: int) -> None:
    pass


def _flat(path: str) -> str:
    return path.removesuffix(".vmdk") + "-flat.vmdk"


def measure(sim: vcsim.Vcsim, quick: bool, size: int | None = None) -> dict[str, Any]:
    """The figures for one VM of the simulator (its first), with two disks of ``size``."""
    size = size or (64 if quick else 256) * MiB
    work = Path(tempfile.mkdtemp(prefix="vsphere-data-", dir="/var/tmp"))
    look = Sim(sim)
    tracking = cbt_fake.ChangeTracking()
    undo = cbt_fake.install(
        sessions.get(VCenterSettings.from_config(sim.connection())).service_instance()._stub, tracking
    )
    try:
        # The simulator's first VM: its other VMs (a thousand, for the discovery figures) stay.
        machine = look.vm("DC0_C0_RP0_VM0")
        look.add_disk(machine, size)
        rng = random.Random(1)
        disks = [bytearray(os.urandom(size)) for _ in range(2)]
        paths = look.disk_paths(machine)
        look.fill(machine, {path: bytes(data) for path, data in zip(paths, disks, strict=True)})
        vm = look.ref(machine)
        total = sum(v.size for v in vm.volumes)
        provider = VSphereProvider("bench", {"repository": str(work / "repo"), "fsync": False}, work)

        started = time.perf_counter()
        full = provider.take_backup(BackupRequest("rp-full", vm, "daily"), _ignore)
        backup_s = time.perf_counter() - started
        _log(f"backup: {total / MB:.0f} MB in {backup_s:.2f} s")

        copies = look.datastore_dir() / "cp-bench"
        copies.mkdir()
        started = time.perf_counter()
        files = [str(look.local(_flat(p))) for p in paths]
        subprocess.run(["/bin/cp", *files, str(copies)], check=True)  # noqa: S603 - fixed tool, our files
        cp_s = time.perf_counter() - started
        shutil.rmtree(copies)
        _log(f"cp: {total / MB:.0f} MB in {cp_s:.2f} s")

        # The guest rewrites 2 % of each disk; vCenter would report those areas as changed.
        previous = tracking.change_id
        tracking.change_id = previous.replace("/1", "/2")
        keys = {d["path"]: d["key"] for d in vm.details["disks"]}
        for data, path in zip(disks, paths, strict=True):
            changed = tracking.changed[(previous, keys[path])] = []
            for _ in range(int(size * CHANGE) // WRITE):
                start = rng.randrange(0, (size - WRITE) // 4096) * 4096
                data[start : start + WRITE] = rng.randbytes(WRITE)
                changed.append((start, WRITE))
            look.put(_flat(path), bytes(data))
        parent = RestorePointRef("rp-full", full.external_id, full.backup_type, vm)
        incremental = provider.take_backup(BackupRequest("rp-incr", vm, "daily", parent=parent), _ignore)
        stats = next(m for m in provider.nas.list_points() if m.restore_point_id == "rp-incr").stats
        fraction = stats["read_bytes"] / stats["protected_bytes"]
        _log(f"incremental after a {CHANGE:.0%} change read {fraction:.3f} of the disks")

        for path in paths:
            look.put(_flat(path), bytes(size))
        point = RestorePointRef("rp-incr", incremental.external_id, incremental.backup_type, vm)
        started = time.perf_counter()
        provider.restore_vm(point, vm, _ignore)
        restore_s = time.perf_counter() - started
        exact = [look.local(_flat(p)).read_bytes() for p in paths] == [bytes(d) for d in disks]
        _log(f"restore: {total / MB:.0f} MB in {restore_s:.2f} s, byte-exact: {exact}")
        return {
            "disk_bytes": size,
            "disks": 2,
            "backup_mb_s": round(total / MB / backup_s, 1),
            "restore_mb_s": round(total / MB / restore_s, 1),
            "cp_mb_s": round(total / MB / cp_s, 1),
            "restore_byte_exact": exact,
            "incremental_read_fraction": round(fraction, 4),
        }
    finally:
        undo()
        look.close()
        sessions.close_all()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 x 64 MiB disks")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--size", type=int, help="bytes per disk (default 256 MiB, quick 64 MiB)")
    args = parser.parse_args()
    with vcsim.running(vcsim.binary(), hosts=1, vms_per_host=1) as sim:
        figures = measure(sim, args.quick, args.size)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
