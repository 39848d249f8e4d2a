"""REST: changing and removing providers, pools and hosts (409 while in use), and managing
API keys and accounts, with tenants kept to their own keys."""

from __future__ import annotations

from orchestrator.usecases import accounts, backup_providers, inventory
from tests.api.rest_helpers import Rest, clients, error_of


def _driver_config(world, name):
    with world.core.scope(world.admin) as s:
        return s.driver(backup_providers.find(s, name)).config


def test_provider_update_keeps_secrets_sealed_and_hidden(server, world):
    admin = clients(server)["admin"]
    body = {"name": "vault", "driver": "dummy", "config": {"api_token": "t0ken"}}
    admin.ok("post", "/providers", 201, body=body)

    change = {"name": "vault2", "config": {"api_token": "********", "region": "eu"}}
    updated = admin.ok("patch", "/providers/vault", body=change)
    assert (updated["name"], updated["config"]) == ("vault2", {"api_token": "********", "region": "eu"})
    assert "t0ken" not in admin.get("/providers").text
    assert _driver_config(world, "vault2") == {"api_token": "t0ken", "region": "eu"}

    error_of(admin.patch("/providers/vault2", {"config": {"fail": ["nope"]}}), 400, "invalid_argument")
    error_of(admin.patch("/providers/vault2", {"name": "dummy"}), 409, "conflict")
    assert admin.ok("patch", "/providers/vault2", body={"enabled": False})["enabled"] is False


def test_provider_in_use_is_not_removed(server, world):
    admin = clients(server)["admin"]
    body = error_of(admin.delete(f"/providers/{world.provider_id}"), 409, "conflict")
    assert body["message"] == "backup provider 'dummy' is in use: 2 offerings; it cannot be removed"

    admin.ok("post", "/providers", 201, body={"name": "spare", "driver": "dummy"})
    admin.ok("delete", "/providers/spare", 204)
    error_of(admin.get("/providers/spare"), 404, "not_found")


def test_pool_update_and_remove(server, world):
    admin = clients(server)["admin"]
    pool = admin.ok(
        "patch", "/pools/pool1", body={"max_concurrent_backups": 7, "bandwidth_bytes_per_s": 10**9}
    )
    assert (pool["max_concurrent_backups"], pool["bandwidth_bytes_per_s"]) == (7, 10**9)
    pool = admin.ok("patch", f"/pools/{world.pool_id}", body={"bandwidth_bytes_per_s": None})
    assert (pool["max_concurrent_backups"], pool["bandwidth_bytes_per_s"]) == (7, None)
    error_of(admin.patch("/pools/pool1", {"max_concurrent_backups": 0}), 400, "invalid_argument")

    body = error_of(admin.delete("/pools/pool1"), 409, "conflict")
    assert "6 volumes" in body["message"]
    admin.ok("delete", "/pools/pool2", 204)
    assert [p["name"] for p in admin.ok("get", "/pools")["items"]] == ["pool1"]


def test_host_update_and_remove(server, world):
    admin = clients(server)["admin"]
    host = admin.ok("patch", "/hosts/kvm1", body={"max_concurrent_backups": 4, "address": "10.1.1.1"})
    assert (host["max_concurrent_backups"], host["address"]) == (4, "10.1.1.1")

    body = error_of(admin.delete("/hosts/kvm1"), 409, "conflict")
    assert "3 virtual machines" in body["message"]
    admin.ok("delete", "/hosts/kvm2", 204)
    assert [h["name"] for h in admin.ok("get", "/hosts")["items"]] == ["kvm1"]


def test_tenants_may_not_change_providers_pools_hosts_or_accounts(server, world):
    alice = clients(server)["alice"]
    for method, path, body in [
        ("patch", "/providers/dummy", {"enabled": False}),
        ("delete", "/providers/dummy", None),
        ("patch", "/pools/pool1", {"max_concurrent_backups": 1}),
        ("delete", "/pools/pool2", None),
        ("patch", "/hosts/kvm1", {"max_concurrent_backups": 1}),
        ("delete", "/hosts/kvm2", None),
        ("patch", "/accounts/bob", {"enabled": False}),
        ("delete", "/accounts/bob", None),
    ]:
        response = alice.call(method.upper(), path, json=body)
        error_of(response, 403, "permission_denied")


def test_keys_are_listed_without_secrets_and_tenants_see_their_own(server, world):
    api = clients(server)
    mine = api["alice"].ok("get", "/keys")
    assert [(k["account"], k["state"]) for k in mine["items"]] == [("alice", "active")]
    assert set(mine["items"][0]) == {"id", "account", "account_id", "state", "created"}
    assert server.keys["alice"].secretkey not in api["alice"].get("/keys").text
    everyone = api["admin"].ok("get", "/keys")
    assert {k["account"] for k in everyone["items"]} == {"admin", "alice", "bob"}
    assert api["admin"].ok("get", "/keys", params={"account": "bob"})["total"] == 1
    error_of(api["alice"].get("/keys", params={"account": "bob"}), 404, "not_found")


def test_a_tenant_cannot_disable_or_delete_another_tenants_key(server, world):
    api = clients(server)
    bobs = api["bob"].ok("get", "/keys")["items"][0]["id"]

    error_of(api["alice"].patch(f"/keys/{bobs}", {"enabled": False}), 404, "not_found")
    error_of(api["alice"].delete(f"/keys/{bobs}"), 404, "not_found")
    assert api["bob"].ok("get", "/keys")["items"][0]["state"] == "active"


def test_a_disabled_key_is_refused_until_enabled_and_a_deleted_one_for_good(server, world):
    with world.core.scope(world.alice) as s:
        spare = accounts.create_key(s, "alice")
    api = clients(server)
    alices = api["alice"].ok("get", "/keys")["items"][0]["id"]

    assert api["alice"].ok("patch", f"/keys/{alices}", body={"enabled": False})["state"] == "disabled"
    error_of(api["alice"].get("/vms"), 401, "authentication_failed")

    # Her other key still works: she re-enables the first with it.
    other = Rest(server, None)
    other.headers = {"X-Api-Key": spare.apikey, "X-Api-Secret": spare.secretkey}
    assert other.ok("patch", f"/keys/{alices}", body={"enabled": True})["state"] == "active"
    api["alice"].ok("get", "/vms")

    other.ok("delete", f"/keys/{alices}", 204)
    error_of(api["alice"].get("/vms"), 401, "authentication_failed")


def test_a_disabled_accounts_keys_are_refused(server, world):
    api = clients(server)
    listed = api["admin"].ok("get", "/accounts")
    assert {a["name"]: a["state"] for a in listed["items"]} == {
        "admin": "enabled",
        "alice": "enabled",
        "bob": "enabled",
    }
    assert api["alice"].ok("get", "/accounts")["total"] == 1

    assert api["admin"].ok("patch", "/accounts/bob", body={"enabled": False})["state"] == "disabled"
    error_of(api["bob"].get("/vms"), 401, "authentication_failed")
    api["alice"].ok("get", "/vms")
    api["admin"].ok("patch", "/accounts/bob", body={"enabled": True})
    api["bob"].ok("get", "/vms")

    error_of(api["admin"].patch("/accounts/admin", {"enabled": False}), 409, "conflict")


def test_an_account_is_deleted_only_once_it_owns_nothing(server, world):
    admin = clients(server)["admin"]
    body = error_of(admin.delete("/accounts/bob"), 409, "conflict")
    assert "1 virtual machine" in body["message"]

    with world.core.scope(world.admin) as s:
        inventory.destroy_vm(s, world.bob_vm)
    body = error_of(admin.delete("/accounts/bob"), 409, "conflict")
    assert "1 destroyed virtual machine" in body["message"]

    with world.core.scope(world.admin) as s:
        accounts.create_account(s, "carol")
    admin.ok("delete", "/accounts/carol", 204)
    assert "carol" not in [a["name"] for a in admin.ok("get", "/accounts")["items"]]


def test_the_openapi_document_lists_the_new_routes(server, world):
    spec = clients(server)["admin"].ok("get", "/openapi.json")
    paths = spec["paths"]
    for path, methods in {
        "/api/v1/providers/{provider}": {"patch", "delete"},
        "/api/v1/pools/{pool_id}": {"patch", "delete"},
        "/api/v1/hosts/{host_id}": {"patch", "delete"},
        "/api/v1/accounts": {"get"},
        "/api/v1/accounts/{account}": {"patch", "delete"},
        "/api/v1/keys": {"get"},
        "/api/v1/keys/{key}": {"patch", "delete"},
    }.items():
        assert methods <= set(paths[path]), path
    assert "409" in paths["/api/v1/pools/{pool_id}"]["delete"]["responses"]
    assert "secretkey" not in spec["components"]["schemas"]["ApiKey"]["properties"]
