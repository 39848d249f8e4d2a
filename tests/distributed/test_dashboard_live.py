"""The Grafana dashboard and the alert rules against a real Prometheus scraping the product.

Debian's ``prometheus`` runs on loopback and scrapes, every second, the API under gunicorn
(``/metrics`` behind ``BACKUP_METRICS_TOKEN``), a ``backupctl worker`` and a ``backupctl
dispatcher`` while they back up VMs: some succeed, one fails on purpose, one is still
running, one waits on a queue no worker serves past its deadline. Then every query of the
dashboard and every alert rule is evaluated through Prometheus's HTTP API, and each must
parse and return series: a metric or label renamed on one side only fails here.

With ``CI=true`` a missing ``prometheus`` binary fails the run instead of skipping.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy import select, update

from orchestrator.domain.models import Host, Job, JobState, utcnow
from orchestrator.usecases import assignments, backups, inventory, planning, reconciliation
from tests.conftest import IN_CI, GiB, World, add_provider, import_offering
from tests.distributed.conftest import Processes, free_port, job_rows, wait_for

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "backup-orchestrator.json"
SCRAPE_SECONDS = 1
# What Grafana puts in for the dashboard's variables: $__rate_interval is at least four
# scrape intervals, and the selectors' "All" is their allValue.
GRAFANA_VARIABLES = {
    "$__rate_interval": f"{4 * SCRAPE_SECONDS}s",
    "$offering": ".*",
    "$queue": ".*",
}
TOKEN = "live-dashboard-test-token"
# A comparison with a number closing an alert's expression: its threshold.
THRESHOLD = re.compile(r"\s*(?:==|!=|>=|<=|>|<)\s*[0-9.]+\s*$")
ABSENT = re.compile(r"^absent\((?P<inner>.*)\)$", re.DOTALL)


class Prometheus:
    """A Prometheus server of this test, on a free loopback port with its own storage."""

    def __init__(self, binary: str, workdir: Path, targets: dict[str, int]) -> None:
        token_file = workdir / "metrics-token"
        token_file.write_text(TOKEN)
        config = {
            "global": {
                "scrape_interval": f"{SCRAPE_SECONDS}s",
                "scrape_timeout": f"{SCRAPE_SECONDS}s",
                "evaluation_interval": f"{SCRAPE_SECONDS}s",
            },
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                    **({"authorization": {"credentials_file": str(token_file)}} if job == "api" else {}),
                }
                for job, port in targets.items()
            ],
        }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = workdir / "prometheus.log"
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def api(self, path: str, **params: str) -> Any:
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert answer["status"] == "success", f"{path} {params}: {answer}"
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", expr
        return data["result"]

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).ok
        except requests.ConnectionError:
            return False


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        if IN_CI:
            pytest.fail("prometheus is required in CI (apt-get install prometheus)")
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    return binary


@dataclass
class Fleet:
    """The jobs of the scenario, by how they should end up."""

    succeeded: list[str]
    failing: str
    running: str
    stalled: str


def build_fleet(world: World) -> Fleet:
    """Beside the world's gold VMs (pool1): a VM whose provider fails every backup, one whose
    backup takes minutes, and one on a pool no worker serves. Their SLA backups are planned,
    then made due now, the stalled one already past its deadline."""
    core, admin = world.core, world.admin
    failing = import_offering(core, admin, add_provider(core, admin, "broken", fail=["backup"]), "failing")
    slow = import_offering(core, admin, add_provider(core, admin, "slow", duration_s=600.0), "slow")
    with core.scope(admin) as s:
        inventory.create_pool(s, zone="zone1", name="unserved", path="/srv/unserved")
        placed = {
            name: inventory.register_vm(
                s, name=name, account="alice", zone="zone1", host="kvm1",
                volumes=[{"pool": pool, "size": GiB}],
            ).id
            for name, pool in (("fails", "pool1"), ("slow", "pool1"), ("waits", "unserved"))
        }  # fmt: skip
    with core.scope(world.alice) as s:
        assignments.assign(s, placed["fails"], failing)
        assignments.assign(s, placed["slow"], slow)
        assignments.assign(s, placed["waits"], world.gold_id)
    planning.replan(core)
    now = utcnow()
    with core.db.session() as session:
        session.execute(update(Host).values(max_concurrent_backups=10))
        planned = session.execute(
            select(Job.subject_id, Job.id)
            .where(Job.state == JobState.PLANNED)
            .order_by(Job.not_before.desc())
        ).all()
        by_vm = dict(planned)  # each VM's first planned backup (later rows overwrite earlier ones)
        session.execute(
            update(Job)
            .where(Job.id.in_(by_vm.values()))
            .values(not_before=now - timedelta(minutes=1), deadline=now - timedelta(seconds=30))
        )
        session.execute(
            update(Job).where(Job.id == by_vm[placed["waits"]]).values(deadline=now - timedelta(hours=2))
        )
    return Fleet(
        succeeded=[by_vm[world.alice_vm], by_vm[world.bob_vm]],
        failing=by_vm[placed["fails"]],
        running=by_vm[placed["slow"]],
        stalled=by_vm[placed["waits"]],
    )


@pytest.fixture
def scraped(
    prometheus_binary: str, world: World, processes: Processes, tmp_path: Path
) -> Iterator[tuple[Prometheus, str]]:
    """A Prometheus that has scraped the scenario, and the queue no worker serves."""
    fleet = build_fleet(world)
    ports = {"api": free_port(), "worker": free_port(), "dispatcher": free_port()}
    api_metrics = tmp_path / "api-metrics"
    api_metrics.mkdir()
    processes.run(
        "api",
        ["-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{ports['api']}", "api.wsgi:app"],
        env={"BACKUP_METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(api_metrics)},
    )
    metrics = ("--metrics-address", "127.0.0.1", "--metrics-port")
    processes.worker("--pools", "pool1", *metrics, str(ports["worker"]), concurrency=3)
    processes.start(
        "dispatcher", "--deliver-every", "0.3", "--tick", "600", *metrics, str(ports["dispatcher"])
    )
    (tmp_path / "prometheus").mkdir()
    prometheus = Prometheus(prometheus_binary, tmp_path / "prometheus", ports)
    try:
        wait_for(prometheus.ready, timeout=20, what="Prometheus to start")

        def settled() -> bool:
            states = {job.id: job.state for job in job_rows(world.core)}
            return (
                all(states[i] is JobState.SUCCEEDED for i in fleet.succeeded)
                and states[fleet.failing] is JobState.FAILED
                and states[fleet.running] is JobState.RUNNING
                and states[fleet.stalled] is JobState.QUEUED
            )

        wait_for(settled, timeout=45, what="the backups to succeed, fail, run and wait")
        # And an ad-hoc backup once the VM's SLA backup is done (a VM takes one at a time).
        with world.core.scope(world.alice) as s:
            fleet.succeeded.append(backups.create_backup(s, world.alice_vm).id)
        wait_for(settled, timeout=15, what="the ad-hoc backup to succeed")
        with world.core.scope(world.admin) as s:
            reconciliation.reconcile(s, "dummy")
        # Every target up, and enough scrapes since the last job ended for rate() windows.
        wait_for(
            lambda: len(prometheus.query("up == 1")) == len(ports),
            timeout=15,
            what=f"Prometheus to scrape {sorted(ports)}",
        )
        time.sleep(5 * SCRAPE_SECONDS)
        (stalled,) = job_rows(world.core, [fleet.stalled])
        yield prometheus, stalled.queue
    except BaseException:
        print({job.id: (job.kind, job.state, job.queue) for job in job_rows(world.core)}, fleet)
        print(processes.output(), prometheus.log.read_text(errors="replace")[-3000:])
        raise
    finally:
        prometheus.stop()


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target, with Grafana's variables put in."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"panel {panel['title']!r}: a variable the test does not know: {expr}"
            found.append((f"panel {panel['title']!r} {target.get('refId', '')}", expr))
    return found


def variable_queries() -> list[tuple[str, str, str]]:
    """(name, series selector, label) of every ``label_values(selector, label)`` variable."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for variable in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)", variable["query"])
        assert match, variable["query"]
        found.append((variable["name"], match["selector"], match["label"]))
    return found


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def measured(expr: str) -> str:
    """What an alert measures: its expression without the threshold it compares with, and
    ``absent(X)`` as X. That returns series while all is well, when the alert itself is quiet."""
    expr = THRESHOLD.sub("", expr.strip())
    absent = ABSENT.match(expr)
    return measured(absent["inner"]) if absent else expr


def test_dashboard_and_alert_queries_return_series_from_a_live_stack(
    scraped: tuple[Prometheus, str],
) -> None:
    prometheus, stalled_queue = scraped
    empty = [where for where, expr in dashboard_queries() if not prometheus.query(expr)]
    empty += [
        f"alert {rule['alert']}" for rule in alert_rules() if not prometheus.query(measured(rule["expr"]))
    ]
    assert not empty, f"queries that return no series: {empty}"

    for name, selector, label in variable_queries():
        values = prometheus.api(f"label/{label}/values", **{"match[]": selector})
        assert values, f"variable ${name} offers nothing"
    assert "gold" in prometheus.api("label/offering/values")

    # Prometheus loaded every rule and evaluates it without error.
    loaded = {
        rule["name"]: rule
        for group in prometheus.api("rules", type="alert")["groups"]
        for rule in group["rules"]
    }
    assert set(loaded) == {rule["alert"] for rule in alert_rules()}
    assert {name: rule.get("lastError") for name, rule in loaded.items() if rule["health"] != "ok"} == {}

    # The scenario shows where it should: these would be wrong even with series present.
    def value(expr: str) -> float:
        (sample,) = prometheus.query(expr)
        return float(sample["value"][1])

    assert value('max(backup_orchestrator_rpo_vms{offering="gold", state="within"})') == 2
    assert value('max(backup_orchestrator_jobs_past_deadline{offering="gold"})') == 1
    assert value(f'max(backup_orchestrator_queue_depth{{queue="{stalled_queue}"}})') == 1
    assert value('sum(backup_orchestrator_job_attempts_total{kind="backup", outcome="failed"})') == 1
    assert value('sum(backup_orchestrator_jobs{state="running"})') == 1
    assert value('sum(backup_orchestrator_dispatcher_leader{job="dispatcher"})') == 1

    # The overdue backups already make their alert pending (it fires after its 5 minutes).
    pending = {
        (alert["labels"]["alertname"], alert["labels"].get("offering"))
        for alert in prometheus.api("alerts")["alerts"]
        if alert["state"] == "pending"
    }
    assert {("BackupJobsPastDeadline", "gold"), ("BackupJobsPastDeadline", "slow")} <= pending

    # And the check has teeth: a renamed metric returns nothing.
    assert prometheus.query("backup_orchestrator_job_attempt_total") == []
