"""The SLA planner against the classic ways of scheduling backups, in a simulated fleet.

Every fleet is simulated once per strategy per round, the same fleet, the same overruns and
the same failures (``benchmarks/sim.py``). A strategy only decides when each backup is
submitted; the runtime is the same for all of them:

  herd           every due backup submitted when its segment opens (cron at the window's
                 start), in random order
  fifo           the same, always in the same order; the caps bound the concurrency
                 (Bacula's Maximum Concurrent Jobs)
  jitter_hashed  cron at a stable hashed offset per VM into the window less the job's length,
                 moved before the deadline where the deadline comes first (Jenkins ``H``,
                 systemd's ``RandomizedDelaySec`` with ``FixedRandomDelay=true``): what a
                 competent operator sets up
  jitter_random  a new random delay over the window every night, blind to the deadline: a
                 strawman, kept only to show what a naive jitter does
  planner        ``plan(...)`` every virtual hour from the actual state, each job submitted
                 at its planned start

Every strategy gets the runtime's retry: a failed job runs again at the first open instant
after a 15-minute backoff at which it still fits in the open part, across a blackout or to
the next window if need be. A job moves what its VM changed since its last restore point
(change rate x elapsed time, capped at the VM's size), so a late backup is a bigger one
for every strategy alike. Waits are measured from when the VM became due (the segment start
at which a cron would submit it), the same reference for every strategy, never from a
strategy's own submission.

Each round is another seed (another fleet, other failures); the strategies run in an order
rotated by one each round, and every figure is reported as min, median and max over the
rounds.

Fleets: 1k, 20k and 100k VMs (500 VMs per pool, 40 per host), and the 20k fleet with three
times the change rate, so that its busiest pool has more bytes to move than its window
allows (``load``): there every strategy has to choose between running outside the windows
and leaving VMs beyond their RPO, and the table shows both. ``--quick`` simulates 1k and 5k
(and 5k x3) for 2 days, to stay a CI smoke test, and plans the 20k fleet without simulating
it. The targets are read on the fleet of ``--overload`` VMs and its overloaded twin. Each
fleet's capacity is checked with ``capacity.lower_bounds`` per night. Planning time is
measured apart too: one full plan of the fleet at the first window opening (best of three,
once per round in ``--quick``), to fit its growth with the fleet's size.

The tiers (``sim.default_offerings``: gold 16 h, silver 30 h, bronze 54 h) leave room to
retry a failed backup beyond the spacing their windows need, which the planner keeps free
(``planner.retry_room``). A fleet's ``feasible`` is what the capacity report would say:
capacity for every night and, since backups fail here, room for every VM's retry
(``capacity_feasible`` and ``vms_without_retry_room`` apart).

    .venv/bin/python benchmarks/planner.py --quick --json    # 1k, 5k, 5k x3; 2 days; 3 seeds
    .venv/bin/python benchmarks/planner.py                   # 1k, 20k, 20k x3, 100k; 7 days; 3 seeds
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# benchmarks/queue.py shares its name with the standard library's ``queue``, and Python puts a
# script's directory first on the path: keep it off, so ``import queue`` finds the real one.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from benchmarks import sim  # noqa: E402
from orchestrator.planner import planner as planner_module  # noqa: E402
from orchestrator.planner.planner import plan  # noqa: E402

STRATEGIES = ("herd", "fifo", "jitter_hashed", "jitter_random", "planner")
# The baselines a skeptical operator would accept; jitter_random is the labelled strawman.
FAIR_BASELINES = ("herd", "fifo", "jitter_hashed")
MAKERS: dict[str, Callable[[], sim.Strategy]] = {
    "herd": sim.herd,
    "fifo": sim.fifo,
    "jitter_hashed": sim.jitter_hashed,
    "jitter_random": sim.jitter_random,
    "planner": sim.PlannerStrategy,
}
HOUR = 3600.0
# (key, title, format, scale, ranged): the table shows each figure's median over the rounds,
# and for the ranged ones its min-max beside it.
COLUMNS = (
    ("rpo_misses", "RPO misses", "{:.0f}", 1.0, True),
    ("rpo_misses_after_failure", "after failure", "{:.0f}", 1.0, False),
    ("vm_hours_beyond_rpo", "VM-h beyond RPO", "{:.0f}", 1.0, True),
    ("hours_outside_windows", "h outside windows", "{:.1f}", 1.0, True),
    ("wait_from_due_p95_s", "wait from due p95 h", "{:.1f}", HOUR, False),
    ("deadline_slack_p5_s", "deadline slack p5 h", "{:.1f}", HOUR, False),
    ("peak_backlog", "peak backlog", "{:.0f}", 1.0, False),
    ("peak_submitted_ratio", "submitted/limit", "{:.1f}", 1.0, False),
    ("utilisation_vs_bound", "util/bound", "{:.3f}", 1.0, False),
    ("tb_moved", "TB moved", "{:.1f}", 1.0, False),
    ("plan_seconds", "plan s", "{:.1f}", 1.0, False),
)
# Figures compared between the planner and the best fair baseline, and which way is better.
COMPARED = {
    "rpo_misses": "lower",
    "vm_hours_beyond_rpo": "lower",
    "hours_outside_windows": "lower",
    "deadline_slack_p5_s": "higher",
    "peak_submitted_ratio": "lower",
}

# Overloaded, the windows kept against the exposure.
TRADEOFF = ("hours_outside_windows", "vm_hours_beyond_rpo", "rpo_misses", "utilisation_vs_bound")


def log(message: str) -> None:
    print(message, file=sys.stderr if "--json" in sys.argv else sys.stdout, flush=True)


def baselines(spec: sim.FleetSpec) -> dict[str, Any]:
    """What each compared strategy is and how it is set, and the runtime they all share."""
    planner = sim.PlannerStrategy()
    cron = "at every segment start of the offering (its window opening; 06:00 too for gold)"
    return {
        "runtime": {
            "applies_to": list(STRATEGIES),
            "retry": "first open instant at or after the backoff at which the job's estimated "
            "length fits in the open part (next open instant if no part is that long)",
            "retry_backoff_s": spec.retry_backoff,
            "failure_rate": spec.failure_rate,
            "bytes": "change rate x time since the last restore point, capped at the VM's size, "
            "x lognormal overrun"
            if spec.bytes_grow
            else "fixed: change over one RPO x overrun",
            "overrun": {"median": spec.overrun_median, "sigma": spec.overrun_sigma},
            "limits": {"host_slots": spec.host_slots, "pool_slots": spec.pool_slots},
        },
        "herd": {
            "submits": f"{cron}, every VM due by the next one, all at once in random order",
            "models": "many cron entries at the window's opening",
        },
        "fifo": {
            "submits": f"{cron}, every VM due by the next one, all at once in a fixed order",
            "models": "Bacula's Maximum Concurrent Jobs",
        },
        "jitter_hashed": {
            "submits": f"{cron}, every VM due by the next one, each at a stable hashed offset "
            "into the segment's open parts shortened by the job's estimated length; a VM whose "
            "offset lies past its deadline goes at the same share of the open time before it",
            "models": "Jenkins H, systemd RandomizedDelaySec with FixedRandomDelay=true",
            "offset": "sim.unit(seed, vm, 0, 5): one per VM for the whole run",
        },
        "jitter_random": {
            "submits": f"{cron}, every VM due by the next one, each at a new uniformly random "
            "time over the segment's open parts shortened by the job's length, blind to the deadline",
            "models": "a strawman: random delay drawn anew every night",
            "strawman": True,
        },
        "planner": {
            "submits": "each job at its planned start, from plan(...) re-run on the actual state",
            "replan_every_s": planner.every,
            "horizon_h": planner.horizon.total_seconds() / HOUR,
            "freeze_s": planner.freeze,
            "overrun_hold": planner.hold,
            "retry_room": "planner.retry_room, kept before every deadline",
            "retry_after_s": planner_module.RETRY_AFTER.total_seconds(),
            # Conservative: a nightly backup of a 30 h RPO moves about 24/30 of it.
            "estimate": "each VM's bytes as its change over one RPO (sim est_bytes)",
        },
    }


def plan_seconds(fleet: sim.Fleet, repeat: int = 3) -> tuple[float, float]:
    """One full plan of the whole fleet at its first window opening: (wall, CPU) seconds, best
    of ``repeat``. CPU time is what the growth is fitted on: on a shared machine wall time
    also counts the other processes."""
    vms = fleet.planner_vms()
    now = fleet.at(min(s for cal in fleet.calendars for s, _, _, _ in cal.segments if s >= 0))
    wall = cpu = math.inf
    for _ in range(repeat):
        clock, cpu_clock = time.perf_counter(), time.process_time()
        plan(vms, fleet.hosts, fleet.pools, fleet.offerings, now)
        wall = min(wall, time.perf_counter() - clock)
        cpu = min(cpu, time.process_time() - cpu_clock)
    return wall, cpu


def rotation(rounds: int) -> list[list[str]]:
    """The order the strategies run in each round: rotated by one every round, so that none
    always runs first (or last) on a machine whose load drifts."""
    n = len(STRATEGIES)
    return [[STRATEGIES[(r + i) % n] for i in range(n)] for r in range(rounds)]


def run_round(spec: sim.FleetSpec, label: str, order: list[str], repeat: int) -> dict[str, Any]:
    clock = time.perf_counter()
    fleet = sim.make_fleet(spec)
    report = sim.assess(fleet)
    pool_id, pool_bound = report.worst_pool
    host_id, host_bound = report.worst_host
    log(
        f"{label} seed {spec.seed}: {spec.vms} VMs, {spec.n_hosts} hosts, {spec.n_pools} pools, "
        f"{spec.days} days, load x{spec.load:g}: {'feasible' if report.feasible else 'INFEASIBLE'}, "
        f"{report.vms_without_retry_room} VMs without room to retry "
        f"(worst pool {pool_id} LB/window {pool_bound.ratio:.2f} by {pool_bound.term}, "
        f"worst host {host_id} {host_bound.ratio:.2f} by {host_bound.term}; "
        f"busiest pool's bytes {report.busiest_ratio:.2f} of its window)"
    )
    out: dict[str, Any] = {
        "seed": spec.seed,
        "order": order,
        # What the capacity report would say: capacity for every night and, where backups
        # fail, room for every VM to retry before its deadline.
        "feasible": report.feasible and (spec.failure_rate == 0 or report.vms_without_retry_room == 0),
        "capacity_feasible": report.feasible,
        "vms_without_retry_room": report.vms_without_retry_room,
        "capacity": {
            "worst_pool": {"id": pool_id, "ratio": round(pool_bound.ratio, 4), "term": pool_bound.term},
            "worst_host": {"id": host_id, "ratio": round(host_bound.ratio, 4), "term": host_bound.term},
            "busiest_pool_bytes_ratio": round(report.busiest_ratio, 4),
            "demand_exceeds_window": report.busiest_ratio > 1,
        },
        "strategies": {},
    }
    wall, cpu = plan_seconds(fleet, repeat)
    out["full_plan_seconds"], out["full_plan_cpu_seconds"] = round(wall, 4), round(cpu, 4)
    for name in order:
        started = time.perf_counter()
        result = sim.simulate(fleet, MAKERS[name](), report)
        metrics = result.metrics()
        if name == "planner":
            calls = result.strategy.call_seconds  # type: ignore[attr-defined]
            metrics["plan_call_max_s"] = round(max(calls, default=0.0), 4)
        metrics["sim_seconds"] = round(time.perf_counter() - started, 2)
        out["strategies"][name] = metrics
        log(f"  {name:13s} {metrics['sim_seconds']:6.1f}s  {metrics['jobs']} jobs")
    out["seconds"] = round(time.perf_counter() - clock, 1)
    return out


def spread(values: list[Any]) -> dict[str, Any] | None:
    """min, median and max over the rounds (None where a round has no figure)."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    return {"min": min(known), "median": statistics.median(known), "max": max(known), "values": values}


def summarise(spec: sim.FleetSpec, label: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One fleet over its rounds: every figure as min, median and max."""
    strategies = {}
    for name in STRATEGIES:
        runs = [r["strategies"][name] for r in rounds]
        strategies[name] = {
            key: spread([m.get(key) for m in runs])
            for key, value in runs[0].items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
    capacity = {
        "busiest_pool_bytes_ratio": spread([r["capacity"]["busiest_pool_bytes_ratio"] for r in rounds]),
        "worst_pool_ratio": spread([r["capacity"]["worst_pool"]["ratio"] for r in rounds]),
        "worst_host_ratio": spread([r["capacity"]["worst_host"]["ratio"] for r in rounds]),
        "demand_exceeds_window": all(r["capacity"]["demand_exceeds_window"] for r in rounds),
    }
    return {
        "label": label,
        "vms": spec.vms,
        "hosts": spec.n_hosts,
        "pools": spec.n_pools,
        "days": spec.days,
        "load": spec.load,
        "failure_rate": spec.failure_rate,
        "seeds": [r["seed"] for r in rounds],
        "feasible": all(r["feasible"] for r in rounds),
        "feasible_rounds": sum(r["feasible"] for r in rounds),
        "capacity_feasible": all(r["capacity_feasible"] for r in rounds),
        "vms_without_retry_room": spread([r["vms_without_retry_room"] for r in rounds]),
        "capacity": capacity,
        "full_plan_seconds": spread([r["full_plan_seconds"] for r in rounds]),
        "full_plan_cpu_seconds": spread([r["full_plan_cpu_seconds"] for r in rounds]),
        "strategies": strategies,
        "rounds": rounds,
        "seconds": round(sum(r["seconds"] for r in rounds), 1),
    }


def median(fleet: dict[str, Any], name: str, key: str) -> Any:
    figure = fleet["strategies"][name].get(key)
    return None if figure is None else figure["median"]


def cell(figure: dict[str, Any] | None, fmt: str, scale: float, ranged: bool) -> str:
    if figure is None:
        return "-"
    text = fmt.format(figure["median"] / scale)
    if ranged and figure["min"] != figure["max"]:
        text += f" ({fmt.format(figure['min'] / scale)}-{fmt.format(figure['max'] / scale)})"
    return text


def table(fleets: list[dict[str, Any]]) -> str:
    head = ["fleet", "strategy"] + [title for _, title, *_ in COLUMNS]
    rows = []
    for f in fleets:
        for name in STRATEGIES:
            m = f["strategies"][name]
            rows.append(
                [f["label"], name]
                + [cell(m.get(key), fmt, scale, ranged) for key, _, fmt, scale, ranged in COLUMNS]
            )
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            lines.append("")
        previous = row[0]
        lines.append("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def growth(timings: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Fit full-plan CPU time ~ n^k over the nominal fleets, simulated or planned only (median
    over the rounds); n log n over the same range for scale."""
    points = sorted({t["vms"]: t["full_plan_cpu_seconds"]["median"] for t in timings}.items())
    if len(points) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    k = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    (n0, t0), (n1, t1) = points[0], points[-1]
    nlogn = (n1 * math.log(n1)) / (n0 * math.log(n0))
    return {
        "points": [{"vms": n, "seconds": t} for n, t in points],
        "exponent": round(k, 3),
        "n_log_n_exponent": round(math.log(nlogn) / math.log(n1 / n0), 3),
        "time_ratio": round(t1 / t0, 1),
        "n_log_n_ratio": round(nlogn, 1),
    }


def against_baselines(fleet: dict[str, Any]) -> dict[str, Any]:
    """Per figure: the planner's median, the best fair baseline's, and whether the planner's is
    better — a comparison that can come out either way."""
    out = {}
    for key, better in COMPARED.items():
        values = {name: median(fleet, name, key) for name in FAIR_BASELINES}
        known = {name: v for name, v in values.items() if v is not None}
        ours = median(fleet, "planner", key)
        if not known or ours is None:
            continue
        pick = min if better == "lower" else max
        best = pick(known, key=lambda name: known[name])
        out[key] = {
            "planner": ours,
            "best_baseline": best,
            "best_baseline_value": known[best],
            "better": better,
            "planner_better": ours < known[best] if better == "lower" else ours > known[best],
            "planner_no_worse": ours <= known[best] if better == "lower" else ours >= known[best],
        }
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b where both are positive; None otherwise (no floor on the denominator)."""
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return round(a / b, 2)


def targets(
    fleets: list[dict[str, Any]], timings: list[dict[str, Any]], fit: dict[str, Any] | None, size: int
) -> dict[str, Any]:
    """The issue's targets on the fleet of ``size`` VMs and its overloaded twin, each one a
    check that can fail; None where a run does not tell. Medians over the rounds unless named
    otherwise."""
    nominal = next((f for f in fleets if f["vms"] == size and f["load"] == 1), None)
    heavy = next((f for f in fleets if f["vms"] == size and f["capacity"]["demand_exceeds_window"]), None)
    out: dict[str, Any] = {}
    if nominal:
        p = nominal["strategies"]["planner"]
        out["fleet"] = nominal["label"]
        out["feasible"] = nominal["feasible"]
        out["rpo_misses"] = {name: nominal["strategies"][name]["rpo_misses"] for name in STRATEGIES}
        out["zero_rpo_misses"] = p["rpo_misses"]["max"] == 0 if nominal["feasible"] else None
        not_after_failure = [
            r["strategies"]["planner"]["rpo_misses"] - r["strategies"]["planner"]["rpo_misses_after_failure"]
            for r in nominal["rounds"]
        ]
        out["planner_rpo_misses_not_after_a_failure"] = spread(not_after_failure)
        out["zero_rpo_misses_not_after_a_failure"] = (
            max(not_after_failure) == 0 if nominal["feasible"] else None
        )
        for key in ("wait_from_due_p95_s", "deadline_slack_p5_s", "hours_outside_windows"):
            out[key] = {name: median(nominal, name, key) for name in STRATEGIES}
        out["peak_backlog_herd_over_planner"] = ratio(
            median(nominal, "herd", "peak_backlog"), median(nominal, "planner", "peak_backlog")
        )
        out["peak_backlog_jitter_hashed_over_planner"] = ratio(
            median(nominal, "jitter_hashed", "peak_backlog"), median(nominal, "planner", "peak_backlog")
        )
        out["planner_vs_best_baseline"] = against_baselines(nominal)
    if heavy:
        # Overloaded, every strategy trades windows kept against exposure: both, side by side.
        out["overloaded_fleet"] = heavy["label"]
        out["overload_tradeoff"] = {
            name: {key: median(heavy, name, key) for key in TRADEOFF} for name in STRATEGIES
        }
        util = {name: median(heavy, name, "utilisation_vs_bound") for name in FAIR_BASELINES}
        best = max((v for v in util.values() if v is not None), default=None)
        ours = median(heavy, "planner", "utilisation_vs_bound")
        out["utilisation_when_overloaded"] = ours
        out["utilisation_best_baseline_when_overloaded"] = best
        out["utilisation_no_lower_than_best_baseline"] = (
            None if ours is None or best is None else ours >= best
        )
        out["planner_vs_best_baseline_overloaded"] = against_baselines(heavy)
    plan_20k = next((t for t in timings if t["vms"] == 20000), None)
    if plan_20k:
        out["full_plan_20k_seconds"] = plan_20k["full_plan_seconds"]
        out["plan_20k_under_2s"] = plan_20k["full_plan_seconds"]["max"] < 2
    if fit:
        out["growth_exponent"] = fit["exponent"]
        out["growth_no_worse_than_n_log_n"] = fit["exponent"] <= fit["n_log_n_exponent"]
    return out


def plan_only(n: int, seeds: list[int], failure_rate: float) -> dict[str, Any]:
    """A full plan of a fleet not simulated (``--plan-sizes``), once per round."""
    wall, cpu = [], []
    for seed in seeds:
        fleet = sim.make_fleet(sim.FleetSpec(vms=n, seed=seed, failure_rate=failure_rate))
        w, c = plan_seconds(fleet, 1)
        wall.append(round(w, 4))
        cpu.append(round(c, 4))
    log(f"{n // 1000}k: plan only, {', '.join(f'{w:.3f}' for w in wall)} s")
    return {"vms": n, "full_plan_seconds": spread(wall), "full_plan_cpu_seconds": spread(cpu)}


def sizes_arg(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1k and 5k fleets (and the overloaded 5k), 2 days; the 20k fleet planned only",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--days", type=int, help="virtual days per fleet (default 7, quick 2)")
    parser.add_argument("--seed", type=int, default=1, help="the first round's seed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, one seed each (at least 3)")
    parser.add_argument("--failure-rate", type=float, default=0.02, help="share of attempts that fail")
    parser.add_argument(
        "--sizes", type=sizes_arg, help="VMs per simulated fleet (default 1000,20000,100000; quick 1000,5000)"
    )
    parser.add_argument(
        "--overload",
        type=int,
        help="VMs of the fleet also run at three times the change rate, and whose figures are "
        "the targets (default 20000; quick 5000; 0: none)",
    )
    parser.add_argument("--no-overload", action="store_true", help="same as --overload 0")
    parser.add_argument(
        "--plan-sizes",
        type=sizes_arg,
        help="VMs per fleet only planned, not simulated, for the planning time (default none; quick 20000)",
    )
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3: min, median and max need three")
    days = args.days or (2 if args.quick else 7)
    sizes = args.sizes or ([1000, 5000] if args.quick else [1000, 20000, 100000])
    size = args.overload if args.overload is not None else (5000 if args.quick else 20000)
    plan_sizes = args.plan_sizes if args.plan_sizes is not None else ([20000] if args.quick else [])
    specs = [
        (f"{n / 1000:g}k", sim.FleetSpec(vms=n, days=days, failure_rate=args.failure_rate)) for n in sizes
    ]
    if size and not args.no_overload:
        heavy = (
            f"{size / 1000:g}k x3",
            sim.FleetSpec(vms=size, days=days, failure_rate=args.failure_rate, load=3),
        )
        at = sizes.index(size) + 1 if size in sizes else len(specs)
        specs.insert(at, heavy)
    seeds = [args.seed + r for r in range(args.rounds)]
    order = rotation(args.rounds)
    # Quick: one full plan per round (three rounds already give min, median and max).
    repeat = 1 if args.quick else 3
    clock = time.perf_counter()
    fleets = []
    for label, spec in specs:
        rounds = [
            run_round(dataclasses.replace(spec, seed=seed), label, order[r], repeat)
            for r, seed in enumerate(seeds)
        ]
        fleets.append(summarise(spec, label, rounds))
    timings = [
        {k: f[k] for k in ("vms", "full_plan_seconds", "full_plan_cpu_seconds")}
        for f in fleets
        if f["load"] == 1
    ]
    timings += [plan_only(n, seeds, args.failure_rate) for n in plan_sizes if n not in sizes]
    fit = growth(timings)
    summary = {
        "quick": args.quick,
        "rounds": args.rounds,
        "seeds": seeds,
        "order": order,
        "baselines": baselines(specs[0][1]),
        "fleets": fleets,
        "plan_timings": timings,
        "plan_growth": fit,
        "targets": targets(fleets, timings, fit, size),
    }
    log("")
    log(
        f"median over {args.rounds} rounds (seeds {', '.join(map(str, seeds))}); "
        "(min-max) beside the marked figures:"
    )
    log(table(fleets))
    log("")
    for t in sorted(timings, key=lambda t: t["vms"]):
        wall, cpu = t["full_plan_seconds"], t["full_plan_cpu_seconds"]
        log(
            f"one full plan of {t['vms']} VMs in {wall['median']:.3f} s "
            f"({wall['min']:.3f}-{wall['max']:.3f}; {cpu['median']:.3f} s CPU)"
        )
    if fit:
        log(
            f"planning CPU time grows as n^{fit['exponent']} from {fit['points'][0]['vms']} to "
            f"{fit['points'][-1]['vms']} VMs (x{fit['time_ratio']}); n log n would be "
            f"n^{fit['n_log_n_exponent']} (x{fit['n_log_n_ratio']})"
        )
    for key, value in summary["targets"].items():
        log(f"  {key}: {json.dumps(value, sort_keys=True)}")
    log(f"total {time.perf_counter() - clock:.1f} s")
    if args.json:
        print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
