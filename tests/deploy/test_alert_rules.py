"""The alert rules' unit tests (deploy/prometheus/alerts.test.yml) pass under Prometheus's own
``promtool``, and every alert has one that sees it fire and clear.

``promtool`` comes with Debian's ``prometheus`` package; with ``CI=true`` its absence fails
the run instead of skipping.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import IN_CI

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts.test.yml"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if IN_CI:
            pytest.fail("promtool is required in CI (apt-get install prometheus)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path


def _duration_minutes(text: str) -> float:
    units = {"s": 1 / 60, "m": 1, "h": 60}
    return float(text[:-1]) * units[text[-1]]


def test_promtool_accepts_the_rules_and_the_config() -> None:
    promtool = _promtool()
    for args in (["check", "rules", str(ALERTS)], ["check", "config", "prometheus.yml"]):
        done = subprocess.run(
            [promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rule_unit_tests_pass() -> None:
    done = subprocess.run(
        [_promtool(), "test", "rules", RULE_TESTS.name],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_firing_and_then_clearing() -> None:
    alerts = {
        rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    }
    cases: list[dict[str, Any]] = [
        case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]
    ]
    fired: dict[str, float] = {}
    for case in cases:
        if case["exp_alerts"]:
            at = _duration_minutes(case["eval_time"])
            fired[case["alertname"]] = min(fired.get(case["alertname"], at), at)
    cleared = {
        case["alertname"]
        for case in cases
        if not case["exp_alerts"]
        and case["alertname"] in fired
        and _duration_minutes(case["eval_time"]) > fired[case["alertname"]]
    }
    assert alerts - set(fired) == set(), "alerts never seen firing"
    assert alerts - cleared == set(), "alerts never seen clearing after firing"
    assert set(fired) <= alerts, "tests of alerts that do not exist"
