"""``benchmarks/datapath.py --quick --json`` runs end to end and reports sane figures.

It needs restic and borg (Debian ``restic``, ``borgbackup``) for the baselines: without
them it is skipped — except with ``CI=true``, where that fails the run. Throughput is not
held to its targets here (a shared CI machine is too noisy for that); sizes are, and so is
the shape of the JSON the README's figures come from (rounds, rotation, min/median/max,
each baseline's version and flags, start-up times, ratios against our encrypted run).
"""

from __future__ import annotations

import shutil

import pytest

from tests.benchmarks.quick import positive, require, run_quick

pytestmark = pytest.mark.serial  # a benchmark: its figures want the machine to itself

TOOLS = ("this", "this_encrypted", "restic", "borg", "cp")


@pytest.fixture
def baselines_installed() -> None:
    missing = [tool for tool in ("restic", "borg") if shutil.which(tool) is None]
    problem = f"{', '.join(missing)} not found (apt-get install restic borgbackup)" if missing else None
    require(problem, "the data-path benchmark's baselines")


def spread_ok(figure: dict[str, float]) -> bool:
    return positive(figure["min"]) and figure["min"] <= figure["median"] <= figure["max"]


@pytest.mark.usefixtures("baselines_installed")
def test_datapath_benchmark_quick_json() -> None:
    result = run_quick("datapath.py")

    # At least three rounds, the tools' order rotating between them.
    rounds, order = result["rounds"], result["order"]
    assert rounds >= 3, result["rounds"]
    assert len(order) == rounds, order
    assert all(sorted(names) == sorted(TOOLS) for names in order), order
    assert len({names[0] for names in order}) == rounds, order
    for tool in TOOLS:
        for key in ("full_mb_s", "incremental_mb_s", "restore_mb_s", "full_repo_bytes", "startup_s"):
            assert spread_ok(result[tool][key]), (tool, key, result[tool][key])
        # Every tool's restore is checked, so a misconfigured baseline cannot look fast.
        assert result[tool]["restore_byte_exact"] is True, (tool, result[tool])
        assert result["baselines"][tool]["version"], result["baselines"]
    for tool in ("this", "restic", "borg"):
        assert spread_ok(result["startup_s"][tool]), result["startup_s"]
    create, extract = result["borg"]["flags"]["create"], result["borg"]["flags"]["extract"]
    assert "fixed,524288" in create, create
    assert "--sparse" in create, create
    assert "--sparse" in extract, extract
    assert "--compression" in result["baselines"]["restic"]["flags"]["backup"], result["baselines"]

    ratios = result["ratios"]
    for key in ("full_vs_restic_encrypted", "incremental_vs_restic_encrypted", "full_vs_cp"):
        assert spread_ok(ratios[key]), (key, ratios)
        assert key + "_startup_subtracted" in ratios, ratios
    # Fixed-size chunks store a 2 % scattered change in less than content-defined chunking
    # and far less than a copy; clones share their template's chunks.
    added = {tool: result[tool]["incremental_added_bytes"]["median"] for tool in TOOLS}
    assert added["this"] < added["restic"], added
    assert added["this"] < added["cp"] / 4, added
    assert ratios["clones_vs_one_image"] <= 1.2, ratios
    for tool in ("restic", "borg", "cp"):
        assert positive(result[tool]["clones_vs_one_image"]), result[tool]
    assert set(result["targets_met"]) >= {"full >= 0.8x cp", "full >= 1.0x restic"}
    assert result["params"]["images"] == 2
