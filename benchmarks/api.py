"""listBackups latency and throughput over many restore points in PostgreSQL.

For each size (restore points in the table) it fills a fresh PostgreSQL schema with
generated rows, starts the API as the distributed mode deploys it (gunicorn, ``--workers``
sync worker processes, ``api.wsgi``) in a subprocess, and drives it with N concurrent
clients spread over a few processes, each client on its own connection (opened again when a
sync worker closes it after a response): listBackups filtered by VM, listBackups for
a whole account (both paged, signed as CloudStack clients sign), and a trivial endpoint on
the same server as the baseline. It prints p50 / p99 / requests per second and the ratio to
the baseline. ``--quick --json`` runs two small sizes and prints one JSON object last.

    python benchmarks/api.py [--quick] [--json] [--sizes 10000,1000000] [--clients 16] [--workers 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
# benchmarks/queue.py shares its name with the standard library's ``queue``, and Python puts a
# script's directory first on the path: keep it off, so ``import queue`` finds the real one.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from concurrent.futures import ProcessPoolExecutor  # noqa: E402 - it imports ``queue``

import sqlalchemy as sa  # noqa: E402

ROOT = HERE.parent

from api.auth import EXPIRES_FORMAT, sign  # noqa: E402
from orchestrator.bootstrap import build_core  # noqa: E402
from orchestrator.infra.config import Settings  # noqa: E402
from orchestrator.usecases import accounts  # noqa: E402

POSTGRES = os.environ.get("BACKUP_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
# Client threads share a process per this many: one process for all of them would make
# them wait on each other's interpreter lock, and count that wait as server latency.
THREADS_PER_LOAD_PROCESS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(url: str, home: Path, rows: int, vms: int, tenants: int) -> tuple[dict, list[str]]:
    """Schema, an admin key, and ``rows`` restore points spread over ``vms`` VMs of ``tenants`` accounts."""
    core = build_core(Settings(home=home, database_url=url))
    issued = accounts.bootstrap(core)
    assert issued is not None
    engine = core.db.engine
    with engine.begin() as c:
        zone, provider, offering = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        now = datetime.now(UTC)
        c.execute(
            sa.text("INSERT INTO zones (id, name, description, created_at) VALUES (:i, 'z', '', :t)"),
            {"i": zone, "t": now},
        )
        c.execute(
            sa.text(
                "INSERT INTO backup_providers (id, name, driver, config, enabled, created_at) "
                "VALUES (:i, 'dummy', 'dummy', '{}', true, :t)"
            ),
            {"i": provider, "t": now},
        )
        c.execute(
            sa.text(
                "INSERT INTO backup_offerings (id, name, description, zone_id, provider_id, external_id,"
                " rpo_seconds,"
                " windows, blackouts, timezone, allow_user_driven_backups, created_at) VALUES (:i, 'gold',"
                " '', :z, :p,"
                " 'dummy-gold', 86400, '[]', '[]', 'UTC', true, :t)"
            ),
            {"i": offering, "z": zone, "p": provider, "t": now},
        )
        c.execute(
            sa.text(
                "INSERT INTO accounts (id, name, role, created_at) SELECT 'acct-' || g, 'tenant' || g,"
                " 'user', :t"
                " FROM generate_series(1, :n) g"
            ),
            {"n": tenants, "t": now},
        )
        c.execute(
            sa.text(
                "INSERT INTO virtual_machines (id, name, account_id, zone_id, state, backup_offering_id,"
                " details,"
                " created_at) SELECT lpad(g::text, 36, '0'), 'vm' || g, 'acct-' || (g % :a + 1), :z,"
                " 'Running', :o,"
                " '{}', :t FROM generate_series(1, :n) g"
            ),
            {"a": tenants, "z": zone, "o": offering, "n": vms, "t": now},
        )
        c.execute(
            sa.text(
                "INSERT INTO backups (id, vm_id, vm_name, account_id, zone_id, vm_metadata, offering_id,"
                " provider_id,"
                " origin, external_id, backup_type, size, protected_size, status, created_at, volumes)"
                " SELECT md5(g::text)::uuid::text, lpad((g % :v + 1)::text, 36, '0'), 'vm' || (g % :v + 1),"
                " 'acct-' || ((g % :v + 1) % :a + 1), :z, '{}', :o, :p, 'sla', 'x' || g, 'FULL', 1073741824,"
                " 10737418240, 'BackedUp', :t - (g || ' seconds')::interval, '[]' FROM generate_series(1,"
                " :n) g"
            ),
            {"v": vms, "a": tenants, "z": zone, "o": offering, "p": provider, "t": now, "n": rows},
        )
    # As autovacuum leaves tables that were written to: statistics, and the visibility map
    # that lets counts read the index alone. (Only these: the database has other schemas.)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("VACUUM ANALYZE accounts, api_keys, virtual_machines, backups"))
    core.db.dispose()
    return {"apikey": issued.apikey, "secret": issued.secretkey}, [f"acct-{i}" for i in range(1, tenants + 1)]


def signed(keys: dict, **params: str) -> str:
    params = {
        "response": "json",
        "apikey": keys["apikey"],
        "signatureversion": "3",
        "expires": (datetime.now(UTC) + timedelta(hours=1)).strftime(EXPIRES_FORMAT),
        **params,
    }
    params["signature"] = sign(params, keys["secret"])
    return "/client/api?" + urlencode(params)


def _load(
    port: int, paths: list[str], first: int, threads: int, seconds: float
) -> tuple[list[float], int, float, float]:
    """One load process: ``threads`` clients, each on its own connection, for ``seconds``.
    Returns the latencies, the errors, and when the clients started and stopped."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    started = time.monotonic()
    stop = started + seconds

    def client(offset: int) -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, bad, i = [], 0, offset
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            conn.request("GET", paths[i % len(paths)])
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - t0)
            bad += response.status != 200
            i += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    clients = [threading.Thread(target=client, args=(first + n,)) for n in range(threads)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    return latencies, errors, started, time.monotonic()


def drive(port: int, paths: list[str], clients: int, seconds: float) -> dict:
    shares = [
        (first, min(THREADS_PER_LOAD_PROCESS, clients - first))
        for first in range(0, clients, THREADS_PER_LOAD_PROCESS)
    ]
    with ProcessPoolExecutor(len(shares), mp_context=multiprocessing.get_context("fork")) as pool:
        done = [f.result() for f in [pool.submit(_load, port, paths, *share, seconds) for share in shares]]
    latencies = sorted(x for d in done for x in d[0])
    # From the first client's start to the last one's end: process start-up is not counted.
    elapsed = max(d[3] for d in done) - min(d[2] for d in done)
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "rps": round(len(latencies) / elapsed, 1),
        "errors": sum(d[1] for d in done),
    }


def run_size(rows: int, clients: int, workers: int, seconds: float) -> dict:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    home = Path(tempfile.mkdtemp(prefix=f"{schema}-"))
    server = None
    try:
        t0 = time.monotonic()
        vms = max(10, rows // 100)
        keys, tenants = fill(url, home, rows, vms, tenants=max(2, vms // 100))
        fill_s = time.monotonic() - t0
        port = free_port()
        env = {**os.environ, "BACKUP_HOME": str(home), "BACKUP_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen(  # noqa: S603 - our own interpreter and gunicorn
            [
                sys.executable,
                *("-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}"),
                *("--log-level", "warning"),
                "benchmarks._api_app:app",
            ],
            env=env,
            cwd=ROOT,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        by_vm = [
            signed(keys, command="listBackups", virtualmachineid=str(v).zfill(36), pagesize="50")
            for v in range(1, vms + 1, max(1, vms // 200))
        ]
        by_account = [
            signed(keys, command="listBackups", account=a, listall="true", pagesize="50")
            for a in tenants[:50]
        ]
        # Every worker process boots, connects and compiles its statements before the clock.
        drive(port, [*by_vm, *by_account, "/bench/noop"], clients, 2.0)
        result = {
            "rows": rows,
            "fill_s": round(fill_s, 1),
            "by_vm": drive(port, by_vm, clients, seconds),
            "by_account": drive(port, by_account, clients, seconds),
            "baseline": drive(port, ["/bench/noop"], clients, seconds),
        }
        return result
    finally:
        if server:
            server.terminate()
            server.wait(timeout=10)
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sizes", help="comma-separated row counts")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes (as deployed)")
    args = parser.parse_args()
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    )
    seconds = 4.0 if args.quick else 10.0
    results = [run_size(rows, args.clients, args.workers, seconds) for rows in sizes]
    print(f"{'rows':>9} {'query':>10} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'÷ baseline':>10}")
    for r in results:
        for name in ("by_vm", "by_account", "baseline"):
            m = r[name]
            ratio = m["rps"] / r["baseline"]["rps"]
            print(f"{r['rows']:>9} {name:>10} {m['p50_ms']:>8} {m['p99_ms']:>8} {m['rps']:>8} {ratio:>10.2f}")
    last = results[-1]
    summary = {
        "rows": last["rows"],
        "p50_ms": last["by_vm"]["p50_ms"],
        "p99_ms": max(last["by_vm"]["p99_ms"], last["by_account"]["p99_ms"]),
        "rps": last["by_vm"]["rps"],
        "baseline_rps": last["baseline"]["rps"],
        "clients": args.clients,
        "workers": args.workers,
        "sizes": results,
    }
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
