"""Operations endpoints: health for load balancers, metrics for Prometheus."""

from __future__ import annotations

from dataclasses import replace

import requests
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.infra.config import Settings
from tests.api.rest_helpers import clients


def test_healthz_checks_the_database(server):
    answer = requests.get(server.url + "/healthz", timeout=10)
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_metrics_show_queues_restore_points_and_rpo(server, world):
    alice = clients(server)["alice"]
    alice.backed_up(world.alice_vm)

    answer = requests.get(server.url + "/metrics", timeout=10)

    assert answer.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    assert samples["backup_orchestrator_restore_points", (("offering", "gold"), ("status", "BackedUp"))] == 1
    assert samples["backup_orchestrator_rpo_vms", (("offering", "gold"), ("state", "within"))] == 1
    attempts = [
        value
        for (name, labels), value in samples.items()
        if name == "backup_orchestrator_job_attempts_total" and ("outcome", "succeeded") in labels
    ]
    assert sum(attempts) >= 1
    assert world.alice_vm not in answer.text  # VM ids are the tenants': no series names one


def test_metrics_can_require_a_token(server, world, monkeypatch):
    monkeypatch.setattr(world.core, "settings", replace(world.core.settings, metrics_token="s3cret"))
    refused = requests.get(server.url + "/metrics", timeout=10)
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"
    wrong = requests.get(server.url + "/metrics", headers={"Authorization": "Bearer guess"}, timeout=10)
    assert wrong.status_code == 401
    allowed = requests.get(server.url + "/metrics", headers={"Authorization": "Bearer s3cret"}, timeout=10)
    assert allowed.status_code == 200


def test_the_token_setting_is_read_from_the_environment():
    assert Settings.from_env({"BACKUP_METRICS_TOKEN": "s3cret"}).metrics_token == "s3cret"
    assert Settings.from_env({}).metrics_token is None
