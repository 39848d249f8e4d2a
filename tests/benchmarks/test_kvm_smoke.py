"""``benchmarks/kvm.py --quick --json`` runs end to end and reports sane figures.

It needs libvirtd with QEMU (Debian ``libvirt-daemon-system``, ``qemu-system-x86``,
``qemu-utils``): one answering on qemu:///system, or root to start one. Without them it is
skipped — except with ``CI=true``, where that fails the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.benchmarks.quick import positive, run_quick
from tests.conftest import IN_CI

# May start and stop the system's libvirtd; a benchmark wants the machine to itself.
pytestmark = pytest.mark.serial

TOOLS = ("virsh", "libvirtd", "virtlogd", "qemu-system-x86_64", "qemu-img", "qemu-io", "stdbuf")


def _libvirt_answers() -> bool:
    try:
        probe = subprocess.run(
            ["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.fixture
def kvm_ready() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    problem = None
    if missing:
        problem = (
            f"{', '.join(missing)} not found "
            "(apt-get install libvirt-daemon-system qemu-system-x86 qemu-utils)"
        )
    elif os.geteuid() != 0 and not _libvirt_answers():
        problem = "no libvirtd answers on qemu:///system and starting one needs root"
    if problem:
        if IN_CI:
            pytest.fail(f"libvirtd with QEMU is required in CI: {problem}")
        pytest.skip(problem)


MODES = ("group", "back_to_back", "sequential")


def spread_ok(figure: dict[str, float]) -> bool:
    return figure["min"] <= figure["median"] <= figure["max"]


@pytest.mark.usefixtures("kvm_ready")
def test_kvm_benchmark_quick_json() -> None:
    result = run_quick("kvm.py")

    assert result["rounds"] >= 3
    assert len(result["order"]) == result["rounds"]
    assert all(sorted(order) == sorted(MODES) for order in result["order"]), result["order"]
    # Rotated: every way goes first in some round.
    assert {order[0] for order in result["order"]} == set(MODES), result["order"]
    for mode in MODES:
        assert {"libvirt", "qemu", "snapshot", "merge"} <= set(result["baselines"][mode]), mode
        for key in ("seconds", "skew_s", "skew_max_s", "freeze_spread_s"):
            assert spread_ok(result[f"{mode}_{key}"]), (mode, key, result[f"{mode}_{key}"])
    for key in (
        "group_seconds",
        "back_to_back_seconds",
        "sequential_seconds",
        "sequential_skew_s",
        "sequential_vs_group_seconds",
        "back_to_back_vs_group_seconds",
        "back_to_back_freeze_spread_s",
    ):
        assert all(positive(result[key][stat]) for stat in ("min", "median", "max")), (key, result[key])
    # One atomic snapshot: one instant fits every disk's image, in every round. One snapshot
    # per disk after the previous one was read: the last disk was frozen seconds after the first.
    assert result["group_skew_s"]["max"] == 0, result
    assert result["group_one_instant"] is True, result
    assert result["sequential_one_instant"] is False, result
    assert result["sequential_skew_generations"]["min"] > 1, result
    # Snapshots back to back: apart by the snapshot calls only, far less than sequential.
    assert result["back_to_back_skew_s"]["min"] >= 0, result
    assert result["back_to_back_skew_s"]["median"] < result["sequential_skew_s"]["median"], result
    assert result["params"]["disks"] == 4
