"""``benchmarks/planner.py --quick --json`` runs end to end: three rounds in rotating order,
every compared strategy described, every figure as min, median and max, and the figures that
compare strategies on a common clock (wait from due, slack to the deadline) per strategy."""

from __future__ import annotations

import pytest

from tests.benchmarks.quick import positive, run_quick

pytestmark = pytest.mark.serial  # a benchmark: its figures want the machine to itself

STRATEGIES = {"herd", "fifo", "jitter_hashed", "jitter_random", "planner"}


def test_planner_benchmark_quick_json() -> None:
    result = run_quick("planner.py")

    assert result["quick"] is True
    assert result["rounds"] >= 3
    assert len(result["seeds"]) == result["rounds"]
    order = result["order"]
    assert len(order) == result["rounds"]
    assert all(set(o) == STRATEGIES for o in order)
    assert len({tuple(o) for o in order}) == len(order)  # rotated, not repeated
    assert set(result["baselines"]) >= STRATEGIES
    assert result["baselines"]["jitter_random"]["strawman"] is True
    assert set(result["baselines"]["runtime"]["applies_to"]) == STRATEGIES

    assert result["fleets"]
    for fleet in result["fleets"]:
        assert len(fleet["rounds"]) == result["rounds"]
        assert set(fleet["strategies"]) == STRATEGIES
        for name, figures in fleet["strategies"].items():
            for key in ("wait_from_due_p95_s", "deadline_slack_p5_s", "rpo_misses", "jobs"):
                figure = figures[key]
                assert figure["min"] <= figure["median"] <= figure["max"], (fleet["label"], name, key)
                assert len(figure["values"]) == result["rounds"]
            assert positive(figures["jobs"]["min"])
            assert positive(figures["wait_from_due_p95_s"]["max"])

    targets = result["targets"]
    assert "peak_concurrency_within_limits" not in targets  # it could not fail
    assert set(targets["overload_tradeoff"]) == STRATEGIES
    assert isinstance(targets["utilisation_no_lower_than_best_baseline"], bool)
    assert set(targets["planner_vs_best_baseline"]) >= {"rpo_misses", "hours_outside_windows"}
    assert positive(targets["full_plan_20k_seconds"]["median"])
