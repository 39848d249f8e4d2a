"""``job logs``, ``db upgrade``, and what ``worker`` says when it cannot start."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from orchestrator.infra.db import MIGRATIONS
from tests.cli.test_backupctl import cloud, data, run  # noqa: F401  (fixtures)


def test_job_logs_tell_what_happened(run, cloud):  # noqa: F811
    job = data(run("backup", "create", "web-01", "--json", as_="alice"))
    text = run("job", "logs", job["id"], as_="alice").stdout
    assert "attempt 1 started on inline" in text
    assert "attempt 1 succeeded" in text
    as_json = data(run("job", "logs", job["id"], "--json", as_="alice"))
    assert [e["level"] for e in as_json] == ["info", "info"]
    other = run("job", "logs", job["id"], "--json", as_="bob", ok=False)
    assert other.exit_code == 3


def test_db_upgrade_reports_the_revision(run):  # noqa: F811
    newest = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert newest is not None
    assert data(run("db", "upgrade", "--json"))["revision"] == newest


def test_worker_needs_a_broker(run):  # noqa: F811
    refused = run("worker", "--all", ok=False)
    assert refused.exit_code == 2
    assert "BACKUP_BROKER_URL is not set" in refused.output


def test_worker_names_an_unknown_pool(run, monkeypatch):  # noqa: F811
    monkeypatch.setenv("BACKUP_BROKER_URL", "redis://127.0.0.1:1/0")
    refused = run("worker", "--pools", "no-such-pool", ok=False)
    assert refused.exit_code == 3
    assert "no storage pool 'no-such-pool' in the inventory" in refused.output
