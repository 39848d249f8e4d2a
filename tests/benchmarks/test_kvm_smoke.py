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


@pytest.mark.usefixtures("kvm_ready")
def test_kvm_benchmark_quick_json() -> None:
    result = run_quick("kvm.py")

    for key in ("group_seconds", "sequential_seconds", "sequential_skew_s", "sequential_vs_group_seconds"):
        assert positive(result[key]), (key, result[key])
    # One atomic snapshot: one instant fits every disk's image. One snapshot per disk: the
    # last disk was frozen seconds after the first, and its image shows it.
    assert result["group_skew_s"] == 0, result
    assert result["group_one_instant"] is True, result
    assert result["sequential_one_instant"] is False, result
    assert result["sequential_skew_s"] > result["group_skew_s"], result
    assert result["sequential_skew_generations"] > 1, result
    assert result["params"]["disks"] == 4
