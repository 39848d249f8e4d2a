"""listBackups latency and throughput over many restore points in PostgreSQL.

For each size (restore points in the table) it fills two fresh PostgreSQL schemas with the
same generated rows -- half of them in one large account, the other half over small accounts,
and the points per VM skewed (from about half the mean to sqrt(VMs) times it) -- in two
states: ``vacuumed`` (VACUUM ANALYZE after the last insert) and ``fresh`` (the last 1/6 of the
rows, 20% of the rest, inserted after the last VACUUM ANALYZE, with autovacuum off for the
tables: the most a default autovacuum lets pile up). On each it starts the API as the
distributed mode deploys it (gunicorn, ``--workers`` sync worker processes, ``api.wsgi``) in
a subprocess, and drives it with N concurrent clients spread over a few processes, each
client on its own connection (opened again when a sync worker closes it after a response):
listBackups filtered by VM, for small accounts, and for the large account (all paged, signed
as CloudStack clients sign), and a trivial endpoint on the same server as the baseline.
Every round measures each of these once, in an order rotated from round to round; it prints
p50 / p99 / requests per second (medians over the rounds) and the ratio to the baseline, and
the JSON gives min, median and max of each. ``--quick --json`` runs two small sizes and
prints one JSON object last.

    python benchmarks/api.py [--quick] [--json] [--sizes 10000,1000000] [--clients 16] [--workers 4]
                             [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any
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


# The share of restore points inserted after the last VACUUM in the "fresh" state: default
# autovacuum vacuums a table for inserts only once they reach 20% of its rows
# (autovacuum_vacuum_insert_scale_factor), so up to this much is not all-visible in practice.
FRESH_SHARE = 0.2
LARGE_ACCOUNT = "acct-large"
TABLES = "accounts, api_keys, virtual_machines, backups"


@dataclass(frozen=True)
class Layout:
    """Who owns what: half of the VMs (and half of the restore points) belong to one large
    account, the rest to ``tenants`` small ones; within each half the points per VM are skewed
    (the first VM of a half gets about sqrt(VMs) times the mean, the last half the mean), so
    neither result sets nor counts are constant."""

    rows: int
    vms: int
    tenants: int

    @property
    def large_vms(self) -> int:
        return self.vms // 2

    @property
    def fresh_rows(self) -> int:
        # rows = base + FRESH_SHARE * base: the fresh batch is FRESH_SHARE of what was vacuumed.
        return self.rows - round(self.rows / (1 + FRESH_SHARE))

    def params(self) -> dict[str, Any]:
        """What the inserts bind: the account of VM number vm is the large one for vm <= :vl
        (its VMs come first), else acct-<vm % :tenants + 1>."""
        return {"vl": self.large_vms, "tenants": self.tenants, "large": LARGE_ACCOUNT}


def create(url: str, home: Path, layout: Layout) -> tuple[dict[str, str], dict[str, str]]:
    """Schema, an admin key, zone, provider, offering, accounts and VMs; the key and the ids."""
    core = build_core(Settings(home=home, database_url=url))
    issued = accounts.bootstrap(core)
    assert issued is not None
    ids = {"z": str(uuid.uuid4()), "p": str(uuid.uuid4()), "o": str(uuid.uuid4())}
    with core.db.engine.begin() as c:
        now = datetime.now(UTC)
        c.execute(
            sa.text("INSERT INTO zones (id, name, description, created_at) VALUES (:i, 'z', '', :t)"),
            {"i": ids["z"], "t": now},
        )
        c.execute(
            sa.text(
                "INSERT INTO backup_providers (id, name, driver, config, enabled, created_at) "
                "VALUES (:i, 'dummy', 'dummy', '{}', true, :t)"
            ),
            {"i": ids["p"], "t": now},
        )
        c.execute(
            sa.text(
                "INSERT INTO backup_offerings (id, name, description, zone_id, provider_id, external_id,"
                " rpo_seconds,"
                " windows, blackouts, timezone, allow_user_driven_backups, created_at) VALUES (:i, 'gold',"
                " '', :z, :p,"
                " 'dummy-gold', 86400, '[]', '[]', 'UTC', true, :t)"
            ),
            {"i": ids["o"], "z": ids["z"], "p": ids["p"], "t": now},
        )
        c.execute(
            sa.text(
                "INSERT INTO accounts (id, name, role, created_at) SELECT 'acct-' || g, 'tenant' || g,"
                " 'user', :t FROM generate_series(1, :n) g"
                " UNION ALL SELECT :large, 'large', 'user', :t"
            ),
            {"n": layout.tenants, "t": now, "large": LARGE_ACCOUNT},
        )
        c.execute(
            sa.text(
                "INSERT INTO virtual_machines (id, name, account_id, zone_id, state, backup_offering_id,"
                " details, created_at) SELECT lpad(vm::text, 36, '0'), 'vm' || vm,"
                " CASE WHEN vm <= :vl THEN :large ELSE 'acct-' || (vm % :tenants + 1) END,"
                " :z, 'Running', :o, '{}', :t FROM generate_series(1, :n) vm"
            ),
            {"z": ids["z"], "o": ids["o"], "n": layout.vms, "t": now, **layout.params()},
        )
    core.db.dispose()
    return {"apikey": issued.apikey, "secret": issued.secretkey}, ids


def insert_points(engine: sa.Engine, layout: Layout, ids: dict[str, str], first: int, count: int) -> None:
    """Restore points ``first`` .. ``first + count - 1`` (numbered across batches, so ids stay
    unique), the later ones newer: even positions go to the large account's VMs, odd ones to
    the small accounts', each half skewed over its VMs by the square of the position."""
    with engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO backups (id, vm_id, vm_name, account_id, zone_id, vm_metadata, offering_id,"
                " provider_id, origin, external_id, backup_type, size, protected_size, status, created_at,"
                " volumes) SELECT md5(n::text)::uuid::text, lpad(vm::text, 36, '0'), 'vm' || vm,"
                " CASE WHEN vm <= :vl THEN :large ELSE 'acct-' || (vm % :tenants + 1) END"
                ", :z, '{}', :o, :p, 'sla', 'x' || n, 'FULL', 1073741824, 10737418240, 'BackedUp',"
                " :t + (n || ' seconds')::interval, '[]' FROM (SELECT :first + i AS n, (CASE WHEN i % 2 = 0"
                " THEN floor(:vl * power((i / 2)::float8 / :half, 2)) + 1"
                " ELSE :vl + floor(:vs * power((i / 2)::float8 / :half, 2)) + 1 END)::int AS vm"
                " FROM generate_series(0, :count - 1) i) s"
            ),
            {
                **ids,
                **layout.params(),
                "vs": layout.vms - layout.large_vms,
                "half": (count + 1) // 2,
                "t": datetime.now(UTC) - timedelta(days=30),
                "first": first,
                "count": count,
            },
        )


def vacuum(engine: sa.Engine) -> None:
    """As autovacuum leaves tables once it has caught up: statistics, and the visibility map
    that lets counts read the index alone. (Only these tables: the database has other schemas.)"""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text(f"VACUUM ANALYZE {TABLES}"))


def fill(url: str, home: Path, layout: Layout, state: str) -> dict[str, str]:
    """A schema holding ``layout.rows`` restore points in one of two states, the same rows in
    both: ``vacuumed`` -- VACUUM ANALYZE after the last insert; ``fresh`` -- VACUUM ANALYZE,
    then autovacuum switched off for the tables (so it cannot tidy up during the measurement)
    and the last ``FRESH_SHARE`` inserted: their pages not all-visible, the statistics stale."""
    keys, ids = create(url, home, layout)
    engine = sa.create_engine(url)
    base = layout.rows - layout.fresh_rows
    try:
        insert_points(engine, layout, ids, 1, base)
        if state == "fresh":
            vacuum(engine)
            with engine.begin() as c:
                for table in TABLES.split(", "):
                    c.execute(sa.text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
        insert_points(engine, layout, ids, base + 1, layout.fresh_rows)
        if state == "vacuumed":
            vacuum(engine)
    finally:
        engine.dispose()
    return keys


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
        "requests": len(latencies),
        "errors": sum(d[1] for d in done),
    }


STATES = ("vacuumed", "fresh")
QUERIES = ("by_vm", "by_account", "by_large_account")
# Every figure a round measures, each driven alone; rounds rotate this order.
FIGURES = (*(f"{state}/{query}" for state in STATES for query in QUERIES), "baseline")


def rotation(round_no: int, rounds: int) -> list[str]:
    """Round r starts r/rounds of the way through ``FIGURES``: no figure is always measured
    first (the coldest) or right after the same neighbour."""
    shift = round_no * len(FIGURES) // rounds
    return [*FIGURES[shift:], *FIGURES[:shift]]


@contextlib.contextmanager
def served(
    admin: sa.Engine, layout: Layout, state: str, workers: int
) -> Iterator[tuple[dict[str, str], int]]:
    """A fresh schema filled in ``state``, and the API on it as deployed (gunicorn, ``workers``
    sync workers); its admin key and port. Both go away on exit."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    home = Path(tempfile.mkdtemp(prefix=f"{schema}-"))
    server = None
    try:
        keys = fill(url, home, layout, state)
        port = free_port()
        env = {
            **os.environ,
            "BACKUP_HOME": str(home),
            "BACKUP_DATABASE_URL": url,
            "PYTHONPATH": str(ROOT),
            # The URLs are signed once, before the rounds, to time the server, not the signing.
            "BACKUP_SIGNATURE_MAX_LIFETIME_SECONDS": "3600",
        }
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
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn on port {port} did not start") from None
                time.sleep(0.1)
        yield keys, port
    finally:
        if server:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def queries(keys: dict[str, str], layout: Layout) -> dict[str, list[str]]:
    """The signed requests of each query: VMs sampled over both halves (the busiest and the
    quietest), up to 50 small accounts, the large one."""
    step = max(1, layout.vms // 200)
    return {
        "by_vm": [
            signed(keys, command="listBackups", virtualmachineid=str(v).zfill(36), pagesize="50")
            for v in range(1, layout.vms + 1, step)
        ],
        "by_account": [
            signed(keys, command="listBackups", account=f"acct-{a}", listall="true", pagesize="50")
            for a in range(1, min(layout.tenants, 50) + 1)
        ],
        "by_large_account": [
            signed(keys, command="listBackups", account=LARGE_ACCOUNT, listall="true", pagesize="50")
        ],
    }


def spread(values: list[float], digits: int = 2) -> dict[str, float]:
    """One figure over the rounds."""
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def run_size(
    admin: sa.Engine, rows: int, order: list[list[str]], clients: int, workers: int, seconds: float
) -> dict[str, Any]:
    vms = max(10, rows // 100)
    layout = Layout(rows, vms, tenants=max(2, vms // 100))
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        targets: dict[str, tuple[int, list[str]]] = {}
        for state in STATES:
            keys, port = stack.enter_context(served(admin, layout, state, workers))
            for query, paths in queries(keys, layout).items():
                targets[f"{state}/{query}"] = (port, paths)
            # Every worker process boots, connects and compiles its statements before the clock.
            drive(port, [p for q in queries(keys, layout).values() for p in q], clients, min(2.0, seconds))
        targets["baseline"] = (targets["vacuumed/by_vm"][0], ["/bench/noop"])
        setup_s = time.monotonic() - t0
        runs: dict[str, list[dict[str, Any]]] = {figure: [] for figure in FIGURES}
        for figure_order in order:
            for figure in figure_order:
                runs[figure].append(drive(*targets[figure], clients, seconds))
    baseline = [r["rps"] for r in runs["baseline"]]
    figures: dict[str, Any] = {}
    for figure, measured in runs.items():
        figures[figure] = {
            **{key: spread([r[key] for r in measured]) for key in ("p50_ms", "p99_ms", "rps")},
            # Paired by round: both ran in the same round, under the same neighbours' load.
            "vs_baseline_rps": spread([r["rps"] / b for r, b in zip(measured, baseline, strict=True)]),
            "requests": sum(r["requests"] for r in measured),
            "errors": sum(r["errors"] for r in measured),
        }
    return {
        "rows": rows,
        "vms": vms,
        "small_accounts": layout.tenants,
        "large_account_rows": (layout.rows - layout.fresh_rows + 1) // 2 + (layout.fresh_rows + 1) // 2,
        "fresh_rows": layout.fresh_rows,
        "setup_s": round(setup_s, 1),
        "runs": runs,
        **{state: {q: figures[f"{state}/{q}"] for q in QUERIES} for state in STATES},
        "baseline": figures["baseline"],
    }


def describe_baselines(admin: sa.Engine, clients: int, workers: int) -> dict[str, Any]:
    """What each compared setup is, with versions and flags."""
    with admin.connect() as c:
        postgres = c.scalar(sa.text("SHOW server_version"))
    server = {
        "server": f"gunicorn {metadata.version('gunicorn')} --workers {workers} (sync), "
        f"Flask {metadata.version('flask')}, Python {platform.python_version()}",
        "database": f"PostgreSQL {postgres} through SQLAlchemy {sa.__version__}, "
        f"psycopg2 {metadata.version('psycopg2-binary')}",
        "clients": f"{clients} concurrent http.client keep-alive clients, "
        f"{THREADS_PER_LOAD_PROCESS} threads per process",
    }
    return {
        "baseline": {
            **server,
            "what": "GET /bench/noop on the same server: a Flask route returning {ok: true}, "
            "no authentication, no database",
        },
        "vacuumed": {
            **server,
            "what": "listBackups (signed, pagesize 50) after VACUUM ANALYZE of "
            f"{TABLES} following the last insert: what autovacuum leaves once it has caught up",
        },
        "fresh": {
            **server,
            "what": f"the same rows; VACUUM ANALYZE after the first {1 / (1 + FRESH_SHARE):.4g} of them, "
            "then ALTER TABLE ... SET (autovacuum_enabled = false) and the rest inserted "
            f"({FRESH_SHARE:.0%} of the vacuumed rows, the most default autovacuum lets pile up): "
            "those pages not all-visible, the statistics stale",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sizes", help="comma-separated row counts")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes (as deployed)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every figure (default and least 3)")
    parser.add_argument("--seconds", type=float, help="seconds per figure and round (quick 1, else 5)")
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3: a min, median and max of fewer say nothing")
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    )
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    order = [rotation(round_no, args.rounds) for round_no in range(args.rounds)]
    admin = sa.create_engine(POSTGRES)
    try:
        baselines = describe_baselines(admin, args.clients, args.workers)
        results = [run_size(admin, rows, order, args.clients, args.workers, seconds) for rows in sizes]
    finally:
        admin.dispose()
    print(f"medians of {args.rounds} rounds, {seconds:g} s each; req/s min-max in brackets")
    print(f"{'rows':>9} {'figure':>27} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>21} {'÷ baseline':>10}")
    for r in results:
        for figure in FIGURES:
            state, _, query = figure.rpartition("/")
            m = r[state][query] if state else r["baseline"]
            rps = f"{m['rps']['median']} [{m['rps']['min']}-{m['rps']['max']}]"
            print(
                f"{r['rows']:>9} {figure:>27} {m['p50_ms']['median']:>8} {m['p99_ms']['median']:>8} "
                f"{rps:>21} {m['vs_baseline_rps']['median']:>10.2f}"
            )
    last = results[-1]
    listings = [f for f in FIGURES if f != "baseline"]
    summary = {
        "rows": last["rows"],
        "rounds": args.rounds,
        "order": order,
        "seconds_per_figure": seconds,
        # By VM on vacuumed tables, as before; p99 the worst listing of each round.
        "p50_ms": last["vacuumed"]["by_vm"]["p50_ms"],
        "p99_ms": spread([max(last["runs"][f][i]["p99_ms"] for f in listings) for i in range(args.rounds)]),
        "rps": last["vacuumed"]["by_vm"]["rps"],
        "baseline_rps": last["baseline"]["rps"],
        "clients": args.clients,
        "workers": args.workers,
        "fresh_share": FRESH_SHARE,
        "baselines": baselines,
        "sizes": [{k: v for k, v in r.items() if k != "runs"} for r in results],
    }
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
