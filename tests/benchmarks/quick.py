"""Running a benchmark script the way its smoke test does: ``--quick --json``, bounded."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120


def require(problem: str | None, what: str) -> None:
    """Skip the test for a missing prerequisite, except in CI, where that fails the run."""
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI: {problem}")
    pytest.skip(problem)


def positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def run_quick(
    script: str, env: dict[str, str] | None = None, *args: str, timeout: float = TIMEOUT
) -> dict[str, Any]:
    """The JSON object ``benchmarks/<script> --quick --json [args]`` prints last. On a timeout
    the script gets SIGTERM first, so it can stop what it started, then SIGKILL."""
    proc = subprocess.Popen(
        [sys.executable, f"benchmarks/{script}", "--quick", "--json", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        pytest.fail(f"benchmarks/{script} --quick took over {timeout}s:\n{out[-4000:]}")
    assert proc.returncode == 0, out[-4000:]
    return json.loads(out.strip().splitlines()[-1])
