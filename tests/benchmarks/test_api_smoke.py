"""``benchmarks/api.py --quick --json`` runs end to end and reports positive figures.

It needs PostgreSQL (the suite's ``BACKUP_TEST_POSTGRES_URL``); without it it is skipped,
except with ``CI=true``, where a missing service fails the run.
"""

from __future__ import annotations

import os

import pytest

from tests.benchmarks.quick import positive, run_quick
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.serial  # a benchmark: its figures want the machine to itself

STATES = ("vacuumed", "fresh")
QUERIES = ("by_vm", "by_account", "by_large_account")


@pytest.mark.usefixtures("postgres_ready")
def test_api_benchmark_quick_json() -> None:
    result = run_quick("api.py", {**os.environ, "BACKUP_BENCH_POSTGRES_URL": POSTGRES_URL}, timeout=300)

    assert result["rows"] == 100_000
    assert result["rounds"] >= 3
    assert len(result["order"]) == result["rounds"]
    figures = {f"{s}/{q}" for s in STATES for q in QUERIES} | {"baseline"}
    assert all(set(order) == figures and len(order) == len(figures) for order in result["order"])
    assert len({order[0] for order in result["order"]}) == result["rounds"], result["order"]
    assert {"baseline", *STATES} <= set(result["baselines"])
    for key in ("p50_ms", "p99_ms", "rps", "baseline_rps"):
        figure = result[key]
        assert all(positive(figure[stat]) for stat in ("min", "median", "max")), (key, figure)
        assert figure["min"] <= figure["median"] <= figure["max"], (key, figure)
    assert result["p50_ms"]["median"] <= result["p99_ms"]["median"]
    for size in result["sizes"]:
        # One account holds half of all restore points.
        assert abs(size["large_account_rows"] - size["rows"] / 2) <= 1, size
        assert 0 < size["fresh_rows"] < size["rows"]
        measured = [size[s][q] for s in STATES for q in QUERIES] + [size["baseline"]]
        for figure in measured:
            assert figure["errors"] == 0, (size["rows"], figure)
            assert figure["requests"] > 0, (size["rows"], figure)
