"""backupctl end to end, through click, against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Update, update

from api.cli.main import cli
from orchestrator.domain.models import BackupSchedule, Job, utcnow
from orchestrator.infra.db import Database


@pytest.fixture
def run(database_url: str, tmp_path: Path):
    env = {"BACKUP_HOME": str(tmp_path / "home"), "BACKUP_DATABASE_URL": database_url}
    runner = CliRunner()

    def invoke(*args: str, as_: str | None = None, ok: bool = True, **more_env: str) -> Result:
        argv = (["--as", as_] if as_ else []) + list(args)
        result = runner.invoke(cli, argv, env={**env, **more_env}, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    invoke("init")
    return invoke


def make_due(database_url: str, statement: Update, column: str) -> None:
    """Move a row's time a minute into the past, as if the clock had run on."""
    db = Database(database_url)
    with db.session() as session:
        session.execute(statement.values({column: utcnow() - timedelta(minutes=1)}))
    db.dispose()


def data(result: Result) -> Any:
    return json.loads(result.stdout)


@pytest.fixture
def cloud(run):
    run("zone", "create", "zone-1")
    run("host", "register", "kvm-01", "--zone", "zone-1", "--hypervisor", "kvm")
    run("pool", "register", "pool-a", "--zone", "zone-1", "--bandwidth", "500M")
    run("account", "create", "alice")
    run("account", "create", "bob")
    run("provider", "add", "dummy", "--driver", "dummy", "--config", '{"api_password": "hunter2"}')
    run(
        "offering",
        "import",
        "gold",
        "--zone",
        "zone-1",
        "--provider",
        "dummy",
        "--external-id",
        "dummy-gold",
        "--rpo",
        "1d",
        "--window",
        "20:00-06:00",
        "--blackout",
        "22:00-23:00",
    )
    vm = data(
        run(
            "vm",
            "register",
            "web-01",
            "--account",
            "alice",
            "--zone",
            "zone-1",
            "--host",
            "kvm-01",
            "--volume",
            "pool=pool-a,size=20G",
            "--volume",
            "pool=pool-a,size=1G",
            "--json",
        )
    )
    run("vm", "assign", "web-01", "gold", as_="alice")
    return vm


def test_init_shows_the_admin_secret_only_the_first_time(run):
    again = data(run("init", "--json"))
    assert again["created_admin"] is False
    assert "secretkey" not in again


def test_registered_vm_has_root_and_data_volumes(cloud):
    assert [v["type"] for v in cloud["volumes"]] == ["ROOT", "DATADISK"]
    assert cloud["volumes"][0]["size"] == 20 * 2**30


def test_backup_list_restore_through_the_cli(run, cloud):
    job = data(run("backup", "create", "web-01", "--json", as_="alice"))
    assert job["state"] == "succeeded"
    assert job["result"]["type"] == "FULL"
    listing = data(run("backup", "list", "--vm", "web-01", "--json", as_="alice"))
    assert listing["count"] == 1
    point = listing["backups"][0]
    assert point["status"] == "BackedUp"
    refused = run("restore", "vm", point["id"], as_="alice", ok=False)
    assert refused.exit_code == 4
    assert "virtual machine web-01 is Running" in refused.output
    restored = data(run("restore", "vm", point["id"], "--stop", "--json", as_="alice"))
    assert restored["state"] == "succeeded"
    verified = data(run("backup", "verify", point["id"], "--json", as_="alice"))
    assert (verified["state"], verified["result"]["intact"]) == ("succeeded", True)
    kinds = {j["kind"] for j in data(run("job", "list", "--json", as_="alice"))}
    assert kinds == {"backup", "restore_vm", "verify"}


def test_another_tenant_gets_not_found(run, cloud):
    point = data(run("backup", "create", "web-01", "--json", as_="alice"))["result"]["backup_id"]
    shown = run("backup", "show", point, "--json", as_="bob", ok=False)
    assert shown.exit_code == 3
    assert data(shown)["error"] == "not_found"
    assert data(run("backup", "list", "--json", as_="bob"))["count"] == 0


def test_arguments_that_are_not_utf8_are_refused_naming_them(run, cloud):
    # A shell passes bytes; Python turns the ones that are not UTF-8 into lone surrogates.
    not_utf8 = b"z\xff".decode("utf-8", "surrogateescape")
    for args, field in [
        (("zone", "create", not_utf8), "name"),
        (("zone", "create", "zone-9", "--description", not_utf8), "description"),
        (("vm", "list", "--zone", not_utf8), "zone"),
        (("--as", not_utf8, "vm", "list"), "as"),
        (("provider", "add", "p2", "--driver", "dummy", "--config", '{"k": "\\udfff"}'), "config.k"),
    ]:
        result = run(*args, ok=False)
        assert result.exit_code == 2, result.output
        assert f"error: {field}: not valid Unicode" in result.stderr
    assert "zone-9" not in run("zone", "list").stdout


def test_a_keyword_longer_than_a_name_is_refused(run, cloud):
    result = run("backup", "list", "--keyword", "x" * 256, ok=False)
    assert result.exit_code == 2
    assert "keyword: longer than 255 characters" in result.stderr
    run("backup", "list", "--keyword", "x" * 255)


def test_bad_rpo_is_rejected_with_exit_code_2_and_a_message(run, cloud):
    result = run(
        "offering",
        "import",
        "silver",
        "--zone",
        "zone-1",
        "--provider",
        "dummy",
        "--external-id",
        "dummy-silver",
        "--rpo",
        "2h",
        "--window",
        "20:00-22:00",
        ok=False,
    )
    assert result.exit_code == 2
    assert "rpo" in result.stderr
    assert "Traceback" not in result.output


def test_user_cannot_import_offerings(run, cloud):
    result = run(
        "offering",
        "import",
        "x",
        "--zone",
        "zone-1",
        "--provider",
        "dummy",
        "--external-id",
        "dummy-gold",
        "--rpo",
        "1d",
        "--json",
        as_="alice",
        ok=False,
    )
    assert result.exit_code == 6
    assert data(result)["error"] == "permission_denied"


def test_provider_secrets_are_never_printed(run, cloud):
    out = run("provider", "list", "--json").stdout
    assert "hunter2" not in out
    assert data(run("provider", "list", "--json"))[0]["config"]["api_password"] == "********"


def test_key_create_prints_a_key_pair_for_scripts(run, cloud):
    issued = data(run("key", "create", "--account", "alice", "--json"))
    assert issued["account"] == "alice"
    assert len(issued["secretkey"]) >= 40
    assert issued["secretkey"] not in run("account", "list", "--json").stdout


def test_tick_fires_a_due_schedule_once(run, cloud, database_url):
    sched = data(
        run(
            "schedule",
            "create",
            "web-01",
            "--interval",
            "DAILY",
            "--schedule",
            "30:02",
            "--max-backups",
            "3",
            "--json",
            as_="alice",
        )
    )
    make_due(database_url, update(BackupSchedule).where(BackupSchedule.id == sched["id"]), "next_run_at")
    first = data(run("tick", "--json"))
    assert (first["schedules_fired"], first["jobs_delivered"]) == (1, 0)
    assert data(run("tick", "--json"))["schedules_fired"] == 0
    points = data(run("backup", "list", "--json", as_="alice"))["backups"]
    assert [(p["origin"], p["schedule_id"], p["status"]) for p in points] == [
        ("schedule", sched["id"], "BackedUp")
    ]
    later = data(run("schedule", "list", "--vm", "web-01", "--json", as_="alice"))[0]["next_run"]
    assert later > utcnow().isoformat()


def test_unsupported_delete_exits_5(run, cloud):
    run("provider", "add", "tape", "--driver", "dummy", "--config", '{"capabilities": ["incremental"]}')
    run(
        "offering",
        "import",
        "archive",
        "--zone",
        "zone-1",
        "--provider",
        "tape",
        "--external-id",
        "dummy-bronze",
        "--rpo",
        "1w",
    )
    run("vm", "change-offering", "web-01", "archive", "--forced", as_="alice")
    full = data(run("backup", "create", "web-01", "--json", as_="alice"))["result"]["backup_id"]
    run("backup", "create", "web-01", as_="alice")
    result = run("backup", "delete", full, as_="alice", ok=False)
    assert result.exit_code == 5
    assert "cannot delete" in result.stderr


def test_demo_runs_end_to_end(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--home", str(tmp_path / "demo")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "VM recreated from the restore point" in result.output
    # web-01's incremental: all 70 GiB restorable, a tenth of it stored (the dummy's ratio).
    assert re.search(r"INCREMENTAL restore point \w+ of 70\.0 GiB, 7\.0 GiB stored", result.output)
    assert re.search(r"web-01\s+gold\s+INCREMENTAL\s+BackedUp\s+70\.0 GiB\s+7\.0 GiB", result.output)
    assert result.output.count("refused as expected") == 4
    assert "✘" not in result.output


def test_tables_show_sizes_windows_and_volumes_for_people_and_json_keeps_raw_values(run, cloud):
    run("backup", "create", "web-01", as_="alice")
    run("backup", "create", "web-01", as_="alice")
    table = run("backup", "list", as_="alice").output
    # The incremental restores all 21 GiB and stored a tenth of it (the dummy's ratio).
    assert re.search(r"INCREMENTAL\s+BackedUp\s+21\.0 GiB\s+2\.1 GiB", table), table
    assert re.search(r"FULL\s+BackedUp\s+21\.0 GiB\s+21\.0 GiB", table), table
    assert str(21 * 2**30) not in table
    newest = data(run("backup", "list", "--json", as_="alice"))["backups"][0]
    assert (newest["logical_size"], newest["stored_size"]) == (21 * 2**30, 21 * 2**30 // 10)
    offering = run("offering", "show", "gold").output
    assert re.search(r"windows\s+20:00-06:00\n", offering), offering
    assert re.search(r"blackouts\s+22:00-23:00\n", offering), offering
    vm = run("vm", "show", "web-01").output
    assert "ROOT 20.0 GiB" in vm
    assert '"pool_id"' not in vm
    jobs_table = run("job", "list", as_="alice").output
    assert "100% (21.0 GiB of 21.0 GiB)" in jobs_table


def test_the_demo_uses_backup_home_and_says_where_its_data_is(tmp_path):
    home = tmp_path / "from-env"
    result = CliRunner().invoke(cli, ["demo"], env={"BACKUP_HOME": str(home)}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"Embedded installation in {home}" in result.output
    assert (home / "orchestrator.db").exists()
    # What it suggests shows the chain it deleted (Expunged), as its last table does.
    assert f"BACKUP_HOME={home}" in result.output
    assert "backup list --all" in result.output
    assert "The operator backs up bob's app-01" in result.output
    # A second run refuses a home that holds data instead of mixing two demos.
    again = CliRunner().invoke(cli, ["demo"], env={"BACKUP_HOME": str(home)})
    assert again.exit_code != 0
    assert "already holds data" in again.output


def test_audit_shows_who_did_what_and_users_see_only_their_own(run, cloud):
    run("backup", "create", "web-01", as_="alice")
    admin_view = data(run("audit", "--json"))
    actions = {(e["actor"], e["action"]) for e in admin_view}
    assert {("admin", "zone.create"), ("alice", "vm.assign"), ("alice", "backup.create")} <= actions
    alice_view = data(run("audit", "--json", as_="alice"))
    assert alice_view
    assert {e["actor"] for e in alice_view} == {"alice"}


def test_plan_shows_the_stored_plan_and_fresh_a_dry_one(run, cloud):
    before = run("plan").output
    assert "no SLA backups planned" in before
    assert "--fresh" in before
    dry = data(run("plan", "--fresh", "--json"))
    assert [j["vm_name"] for j in dry["jobs"]] == ["web-01"]
    assert run("job", "list", "--state", "planned", "--json").output.strip() == "[]"  # nothing stored

    run("tick")
    stored = data(run("plan", "--json"))
    assert [j["vm_name"] for j in stored["jobs"]] == ["web-01"]
    assert stored["jobs"][0]["queue"] == f"pool.{cloud['volumes'][0]['pool_id']}"
    table = run("plan").output
    assert "web-01" in table
    assert cloud["id"] not in table
    assert "pool pool-a: 1 job(s), 0 late" in table
    assert cloud["volumes"][0]["pool_id"] not in table
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:00 UTC", table), table


def test_job_tables_name_what_the_jobs_work_on_and_json_keeps_the_ids(run, cloud):
    point = data(run("backup", "create", "web-01", "--json", as_="alice"))["result"]["backup_id"]
    run("restore", "vm", point, "--stop", as_="alice")
    run("tick")  # plans web-01's next SLA backup: a job about the VM itself
    table = run("job", "list").output
    assert re.search(r"backup\s+planned\s+web-01", table), table
    assert re.search(r"backup\s+succeeded\s+web-01", table), table
    assert re.search(r"restore_vm\s+succeeded\s+web-01", table), table
    assert point not in table
    assert cloud["id"] not in table
    listed = data(run("job", "list", "--json"))
    assert {j["subject_id"] for j in listed} == {point, cloud["id"]}
    assert "target" not in listed[0]
    backup_job = next(j for j in listed if j["kind"] == "backup" and j["state"] == "succeeded")
    shown = run("job", "show", backup_job["id"]).output
    # The result as fields, sizes humanized, not a JSON blob.
    result = r"^result\s+backup_id=\S+, .*type=FULL, logical_size=21\.0 GiB, stored_size=21\.0 GiB$"
    assert re.search(result, shown, re.M), shown
    assert re.search(r"^created\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", shown, re.M), shown


def test_tick_plans_sla_backups_and_releases_them_when_due(run, cloud, database_url):
    ticked = data(run("tick", "--json"))
    assert ticked["sla_jobs_planned"] == 1  # web-01 has never been backed up
    assert data(run("tick", "--json"))["sla_jobs_planned"] == 0  # planned jobs keep their time
    planned = data(run("job", "list", "--state", "planned", "--json"))
    assert len(planned) == 1
    assert planned[0]["subject_id"] == cloud["id"]
    assert planned[0]["queue"] == f"pool.{cloud['volumes'][0]['pool_id']}"
    make_due(database_url, update(Job).where(Job.id == planned[0]["id"]), "not_before")
    released = data(run("tick", "--json"))
    assert released["sla_jobs_released"] == 1
    points = data(run("backup", "list", "--json", as_="alice"))["backups"]
    assert [(p["origin"], p["status"]) for p in points] == [("sla", "BackedUp")]
    job = data(run("job", "show", planned[0]["id"], "--json"))
    assert (job["state"], job["subject_id"]) == ("succeeded", points[0]["id"])
    # The next plan starts from that restore point: one job, due a day later.
    replanned = data(run("job", "list", "--state", "planned", "--json"))
    assert len(replanned) == 1
    assert replanned[0]["id"] != planned[0]["id"]


def test_provider_reconcile_counts_untracked_copies(run, cloud):
    run("backup", "create", "web-01", as_="alice")
    result = data(run("provider", "reconcile", "dummy", "--json"))
    assert (result["listed"], result["untracked"], result["in_flight"]) == (1, [], 0)
    assert result["provider"]["untracked_copies"] == 0
    assert "1 copies at the back end, 0 untracked" in run("provider", "reconcile", "dummy").stdout
    assert data(run("provider", "list", "--json"))[0]["untracked_copies"] == 0
    refused = run("provider", "reconcile", "dummy", "--json", as_="alice", ok=False)
    assert data(refused)["error"] == "permission_denied"
