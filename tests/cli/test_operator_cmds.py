"""backupctl's operator lifecycle: update and remove providers, pools and hosts (refused
while in use, exit code 4), and list, disable, enable and delete keys and accounts."""

from __future__ import annotations

from click.testing import CliRunner

from api.cli.main import cli
from tests.cli.test_backupctl import cloud, data, run  # noqa: F401  (fixtures)

CONFLICT = 4
NOT_FOUND = 3


def test_provider_update_keeps_a_redacted_secret_and_never_shows_it(run, cloud):  # noqa: F811
    shown = data(run("provider", "list", "--json"))[0]
    assert shown["config"] == {"api_password": "********"}

    config = '{"api_password": "********", "duration_s": 0}'
    updated = run("provider", "update", "dummy", "--name", "dummy-1", "--config", config, "--json")
    assert data(updated)["name"] == "dummy-1"
    assert data(updated)["config"] == {"api_password": "********", "duration_s": 0}
    assert "hunter2" not in updated.output


def test_provider_update_with_a_non_object_config_is_a_usage_error(run, cloud):  # noqa: F811
    result = run("provider", "update", "dummy", "--config", "[1]", ok=False)
    assert result.exit_code == 2
    assert "--config must be a JSON object" in result.stderr


def test_provider_in_use_is_not_removed(run, cloud):  # noqa: F811
    result = run("provider", "remove", "dummy", ok=False)
    assert result.exit_code == CONFLICT
    assert "backup provider 'dummy' is in use: 1 offering" in result.stderr

    run("provider", "add", "spare", "--driver", "dummy")
    assert data(run("provider", "remove", "spare", "--json"))["name"] == "spare"
    assert [p["name"] for p in data(run("provider", "list", "--json"))] == ["dummy"]


def test_pool_update_and_remove(run, cloud):  # noqa: F811
    pool = data(
        run("pool", "update", "pool-a", "--max-concurrent-backups", "8", "--bandwidth", "1G", "--json")
    )
    assert (pool["max_concurrent_backups"], pool["bandwidth_bytes_per_s"]) == (8, 2**30)
    pool = data(run("pool", "update", "pool-a", "--no-bandwidth-limit", "--json"))
    assert pool["bandwidth_bytes_per_s"] is None

    refused = run("pool", "remove", "pool-a", ok=False)
    assert refused.exit_code == CONFLICT
    assert "is in use: 2 volumes" in refused.stderr

    run("pool", "register", "pool-b", "--zone", "zone-1")
    run("pool", "remove", "pool-b")
    assert [p["name"] for p in data(run("pool", "list", "--json"))] == ["pool-a"]


def test_host_update_and_remove(run, cloud):  # noqa: F811
    host = data(run("host", "update", "kvm-01", "--max-concurrent-backups", "3", "--json"))
    assert host["max_concurrent_backups"] == 3

    refused = run("host", "remove", "kvm-01", ok=False)
    assert refused.exit_code == CONFLICT
    assert "host 'kvm-01' is in use: 1 virtual machine" in refused.stderr

    run("vm", "destroy", "web-01")
    run("host", "remove", "kvm-01")
    assert data(run("host", "list", "--json")) == []


def test_tenants_cannot_change_the_inventory(run, cloud):  # noqa: F811
    result = run("pool", "update", "pool-a", "--max-concurrent-backups", "1", as_="alice", ok=False)
    assert result.exit_code == 6


def test_key_list_disable_enable_delete(run, cloud):  # noqa: F811
    alices = data(run("key", "create", "--account", "alice", "--json"))
    bobs = data(run("key", "create", "--account", "bob", "--json"))

    listed = run("key", "list", "--json", as_="alice")
    assert [(k["id"], k["account"], k["state"]) for k in data(listed)] == [(alices["id"], "alice", "active")]
    assert alices["secretkey"] not in listed.output
    assert alices["apikey"] not in listed.output
    assert {k["id"] for k in data(run("key", "list", "--json"))} >= {alices["id"], bobs["id"]}

    assert data(run("key", "disable", alices["id"], "--json", as_="alice"))["state"] == "disabled"
    assert data(run("key", "enable", alices["apikey"], "--json", as_="alice"))["state"] == "active"
    run("key", "delete", alices["id"], as_="alice")
    assert data(run("key", "list", "--json", as_="alice")) == []


def test_a_tenant_cannot_touch_another_tenants_keys(run, cloud):  # noqa: F811
    bobs = data(run("key", "create", "--account", "bob", "--json"))

    assert run("key", "list", "--account", "bob", as_="alice", ok=False).exit_code == NOT_FOUND
    for action in ("disable", "enable", "delete"):
        assert run("key", action, bobs["id"], as_="alice", ok=False).exit_code == NOT_FOUND
    assert data(run("key", "list", "--account", "bob", "--json"))[0]["state"] == "active"


def test_account_disable_enable_and_delete(run, cloud):  # noqa: F811
    assert data(run("account", "disable", "bob", "--json"))["state"] == "disabled"
    states = {a["name"]: a["state"] for a in data(run("account", "list", "--json"))}
    assert states == {"admin": "enabled", "alice": "enabled", "bob": "disabled"}
    assert data(run("account", "enable", "bob", "--json"))["state"] == "enabled"

    refused = run("account", "delete", "alice", ok=False)
    assert refused.exit_code == CONFLICT
    assert "account 'alice' is in use: 1 virtual machine" in refused.stderr
    assert data(run("account", "delete", "bob", "--json"))["name"] == "bob"
    assert "bob" not in [a["name"] for a in data(run("account", "list", "--json"))]


def test_an_admin_cannot_lock_itself_out(run, cloud):  # noqa: F811
    result = run("account", "disable", "admin", ok=False)
    assert result.exit_code == CONFLICT
    assert "own account" in result.stderr


def test_new_commands_say_what_they_refuse() -> None:
    for args, said in (
        (["provider", "remove"], "Refused while it has offerings"),
        (["pool", "remove"], "Refused while it holds volumes"),
        (["host", "remove"], "Refused while it runs live VMs"),
        (["account", "delete"], "Refused while it owns VMs"),
        (["key", "list"], "Secrets are never shown"),
    ):
        result = CliRunner().invoke(cli, [*args, "--help"], catch_exceptions=False)
        assert said in " ".join(result.output.split()), args


def test_a_vm_marked_stopped_restores_in_place_without_stop(run, cloud):  # noqa: F811
    run("backup", "create", "web-01", as_="alice")
    point = data(run("backup", "list", "--vm", "web-01", "--json", as_="alice"))["backups"][0]
    refused = run("vm", "update", "web-01", "--state", "Stopped", as_="alice", ok=False)
    assert refused.exit_code == 6  # only admins: a restore in place trusts the state

    stopped = data(run("vm", "update", "web-01", "--state", "Stopped", "--json"))

    assert stopped["state"] == "Stopped"
    restored = data(run("restore", "vm", point["id"], "--json", as_="alice"))
    assert restored["state"] == "succeeded"
    run("vm", "update", "web-01", "--state", "Running")
    again = run("restore", "vm", point["id"], as_="alice", ok=False)
    assert "virtual machine web-01 is Running" in again.output
    bad = run("vm", "update", "web-01", "--state", "Destroyed", ok=False)
    assert bad.exit_code == 2
