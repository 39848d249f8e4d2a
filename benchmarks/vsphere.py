"""Listing a vCenter's unmanaged VMs with their disks and NICs: the product's discovery against
the per-VM property walk simple scripts do.

Runs govmomi's vCenter simulator (built from Debian's sources by
``tests/peers/vcsim/build.sh``; needs ``golang-go``, ``golang-github-vmware-govmomi-dev`` and
``golang-github-google-uuid-dev``) with one datacenter, one cluster of 10 hosts and N VMs, on a
loopback port over HTTPS (its certificate trusted through ``ca_file``, as in production).

  discover  the product: an ``ingest`` discovery job through the core (embedded SQLite, the
            inline runner, as ``backupctl host rediscover`` runs it), timed from the job's
            creation until its row holds the unmanaged VMs; the host driver reads the inventory
            with the PropertyCollector (``providers/vsphere/inventory.py``: a container view and
            one RetrievePropertiesEx per kind of object, whatever N)
  naive     the baseline, as scripts built on pyVmomi's object model do it: a container view
            of the VMs, then for each VM its ``config``, ``runtime`` and ``guest``, its host's
            name, each disk's datastore name and each network's name, every one of them a
            property fetch (one SOAP round trip) of its own

Then the data path, on a simulator of its own (``benchmarks/vsphere_data.py``): backup and
restore speed of a two-disk VM beside ``cp``, byte-exactness, and the share of a disk an
incremental reads with changed-block tracking after a 2 % change.

Both log in before the clock starts, and both describe the same VMs (checked: names, instance
UUIDs, disk paths). Each figure is the median of the rounds (min and max beside it); every
round runs both, in an order that alternates. ``soap_calls`` counts the SOAP requests of one
round of each. ``--quick --json`` (1,000 VMs) takes well under a minute and prints one JSON
object last (the human-readable lines go to stderr then).

    .venv/bin/python benchmarks/vsphere.py --quick --json   # 1,000 VMs, 3 rounds
    .venv/bin/python benchmarks/vsphere.py                  # 5,000 VMs, 3 rounds
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Python puts a script's directory first on the path, and benchmarks/queue.py would then
# shadow the standard library's ``queue``.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from pyVmomi import vim  # noqa: E402

from benchmarks.vsphere_data import measure as measure_data  # noqa: E402
from orchestrator.bootstrap import build_core  # noqa: E402
from orchestrator.engine.core import Core  # noqa: E402
from orchestrator.infra.config import Settings  # noqa: E402
from orchestrator.usecases import accounts, ingest, inventory, jobs  # noqa: E402
from providers.vsphere.connection import VCenterSettings, sessions  # noqa: E402
from providers.vsphere.host import VSphereHost  # noqa: E402
from tests.peers import vcsim  # noqa: E402

HOSTS = 10
# The job through the core, the host driver's read alone, and the per-VM walk.
MODES = ("discover", "driver", "naive")


def log(message: str) -> None:
    print(message, file=sys.stderr if "--json" in sys.argv else sys.stdout, flush=True)


class SoapCounter:
    """Counts the SOAP requests sent to vCenter (every method call and property fetch, from
    pyVmomi or the product's bulk reads): each is one HTTP POST."""

    def __init__(self) -> None:
        self.calls = 0
        self._request = http.client.HTTPConnection.request

    def __enter__(self) -> SoapCounter:
        counter = self

        def counted(conn: http.client.HTTPConnection, method: str, *args: Any, **kw: Any) -> None:
            counter.calls += method == "POST"
            counter._request(conn, method, *args, **kw)

        http.client.HTTPConnection.request = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        http.client.HTTPConnection.request = self._request  # type: ignore[method-assign]


# -- the product -----------------------------------------------------------------------------------


@contextmanager
def product(sim: vcsim.Vcsim, home: Path) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """A core on an embedded database with vCenter host ``vc1`` connected to ``sim``; yields a
    function that runs one discovery job and returns the unmanaged VMs its row holds."""
    core = build_core(Settings(home=home, database_url=f"sqlite:///{home / 'bench.db'}"))
    accounts.bootstrap(core)
    admin = accounts.admin_actor(core)
    with core.scope(admin) as s:
        inventory.create_zone(s, "zone1")
        inventory.create_host(s, zone="zone1", name="vc1", hypervisor="vmware")
        ingest.set_connection(s, "vc1", sim.connection(datacenter="DC0"))

    def discover() -> list[dict[str, Any]]:
        return run_discovery(core)

    try:
        yield discover
    finally:
        core.db.dispose()


def run_discovery(core: Core) -> list[dict[str, Any]]:
    admin = accounts.admin_actor(core)
    with core.scope(admin) as s:
        job_id = ingest.discover(s, "vc1").id
    with core.scope(admin) as s:
        job = jobs.show(s, job_id)
        if job.result is None:
            raise RuntimeError(f"discovery job {job.id} ended {job.state.value}: {job.error}")
        return list(job.result["unmanaged"])


# -- the baseline ----------------------------------------------------------------------------------


def naive_walk(si: vim.ServiceInstance) -> list[dict[str, Any]]:
    """Every VM with its disks and NICs, one property fetch at a time."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    found = []
    try:
        for vm in view.view:
            config = vm.config
            if config is None or config.template:
                continue
            runtime = vm.runtime
            networks = {net.name for net in vm.network}
            disks = [
                {"path": d.backing.fileName, "datastore": d.backing.datastore.name, "size": d.capacityInKB}
                for d in config.hardware.device
                if isinstance(d, vim.vm.device.VirtualDisk)
            ]
            nics = [
                {"mac": d.macAddress, "type": type(d).__name__}
                for d in config.hardware.device
                if isinstance(d, vim.vm.device.VirtualEthernetCard)
            ]
            found.append(
                {
                    "uuid": config.instanceUuid,
                    "name": vm.name,
                    "power": runtime.powerState,
                    "host": runtime.host.name,
                    "tools": vm.guest.toolsRunningStatus,
                    "cpus": config.hardware.numCPU,
                    "memory_mb": config.hardware.memoryMB,
                    "guest": config.guestFullName,
                    "networks": sorted(networks),
                    "disks": disks,
                    "nics": nics,
                }
            )
    finally:
        view.DestroyView()
    return found


def fingerprint(vms: list[dict[str, Any]]) -> list[tuple[str, str, tuple[str, ...]]]:
    """What both must agree on: each VM's instance UUID, name and disk paths."""
    return sorted((vm["uuid"], vm["name"], tuple(d["path"] for d in vm["disks"])) for vm in vms)


# -- the run ---------------------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 VMs")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--vms", type=int, help="VMs in the simulator (default 5,000, quick 1,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every way (default and least 3)")
    args = parser.parse_args()
    vms = args.vms or (1000 if args.quick else 5000)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3: a min, median and max of fewer say nothing")
    # SIGTERM (a test's timeout) unwinds like Ctrl-C: the simulator is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.perf_counter()
    exe = vcsim.binary()
    with (
        vcsim.running(exe, hosts=HOSTS, vms_per_host=vms) as sim,
        tempfile.TemporaryDirectory(prefix="bo-vsphere-bench-") as home,
        product(sim, Path(home)) as discover,
    ):
        try:
            up = time.perf_counter() - started
            log(f"vcsim: 1 datacenter, 1 cluster of {HOSTS} hosts, {vms} VMs (up in {up:.1f} s)")
            si = sessions.get(VCenterSettings.from_config(sim.connection())).service_instance()
            driver = VSphereHost(sim.connection(datacenter="DC0"))
            ways: dict[str, Callable[[], list[dict[str, Any]]]] = {
                "discover": discover,
                "driver": lambda: list(driver.discover()),  # type: ignore[arg-type]
                "naive": lambda: naive_walk(si),
            }
            ways["discover"]()  # logs the product's session in, as a worker's first job does
            seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
            calls: dict[str, int] = {}
            seen: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {}
            for round_no in range(args.rounds):
                order = MODES if round_no % 2 == 0 else MODES[::-1]
                for mode in order:
                    with SoapCounter() as counter:
                        t0 = time.perf_counter()
                        found = ways[mode]()
                        seconds[mode].append(time.perf_counter() - t0)
                    calls[mode] = counter.calls
                    seen[mode] = fingerprint(found)
                    took, n = seconds[mode][-1], len(found)
                    log(f"{mode:>9} round {round_no + 1}: {took:7.3f} s, {n} VMs, {counter.calls} SOAP calls")
        finally:
            sessions.close_all()
    if len(seen["discover"]) != vms or not seen["discover"] == seen["driver"] == seen["naive"]:
        raise RuntimeError("the product and the per-VM walk did not describe the same VMs")
    figures = {mode: spread(seconds[mode]) for mode in MODES}
    ratio = figures["naive"]["median"] / figures["discover"]["median"]
    log(
        f"discover {figures['discover']['median']:.3f} s (the driver's read alone "
        f"{figures['driver']['median']:.3f} s), naive {figures['naive']['median']:.3f} s: ratio {ratio:.1f} "
        f"(SOAP calls {calls['discover']} vs {calls['naive']})"
    )
    # The data path on a simulator of its own: one VM, two disks (benchmarks/vsphere_data.py).
    with vcsim.running(exe, hosts=1, vms_per_host=1) as sim:
        data = measure_data(sim, args.quick)
    log(", ".join(f"{key} {value}" for key, value in data.items()))
    summary = {
        **data,
        "vms": vms,
        "hosts": HOSTS,
        "rounds": args.rounds,
        "discover_seconds": figures["discover"]["median"],
        "driver_discover_seconds": figures["driver"]["median"],
        "naive_discover_seconds": figures["naive"]["median"],
        "ratio": ratio,
        "spread_s": figures,
        "soap_calls": calls,
        "same_vms": True,
        "seconds": time.perf_counter() - started,
    }
    if args.json:
        print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
