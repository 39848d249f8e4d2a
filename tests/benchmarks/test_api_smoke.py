"""``benchmarks/api.py --quick --json`` runs end to end and reports positive figures.

It needs PostgreSQL (the suite's ``BACKUP_TEST_POSTGRES_URL``); without it it is skipped,
except with ``CI=true``, where a missing service fails the run.
"""

from __future__ import annotations

import os

import pytest

from tests.benchmarks.quick import positive, run_quick
from tests.conftest import POSTGRES_URL


@pytest.mark.usefixtures("postgres_ready")
def test_api_benchmark_quick_json() -> None:
    result = run_quick("api.py", {**os.environ, "BACKUP_BENCH_POSTGRES_URL": POSTGRES_URL})

    assert result["rows"] == 100_000
    for key in ("p50_ms", "p99_ms", "rps", "baseline_rps"):
        assert positive(result[key]), (key, result[key])
    assert result["p50_ms"] <= result["p99_ms"]
    for size in result["sizes"]:
        for name in ("by_vm", "by_account", "baseline"):
            assert size[name]["errors"] == 0, (size["rows"], name, size[name])
