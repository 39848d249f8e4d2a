"""REST providers, offerings and assignments."""

from __future__ import annotations

from tests.api.rest_helpers import clients, error_of


def test_providers_are_for_admins_and_never_show_secrets(server, world):
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    made = admin.ok(
        "post",
        "/providers",
        201,
        body={"name": "vault", "driver": "dummy", "zone": "zone1", "config": {"api_password": "s3cret"}},
    )
    assert made["config"] == {"api_password": "********"}
    assert "restore_volume" in made["capabilities"]
    listing = admin.ok("get", "/providers")
    assert [p["name"] for p in listing["items"]] == ["dummy", "vault"]
    assert "s3cret" not in str(listing)
    assert [p["name"] for p in admin.ok("get", "/providers", params={"keyword": "va"})["items"]] == ["vault"]
    assert admin.ok("get", "/providers", params={"zone": "zone2"})["total"] == 1  # dummy serves every zone
    assert admin.ok("get", f"/providers/{made['id']}")["zone_id"] == world.zone_id
    offered = admin.ok("get", "/providers/dummy/offerings", params={"zone": "zone1", "pagesize": 2})
    assert (offered["total"], len(offered["items"])) == (3, 2)
    assert offered["items"][0] == {
        "external_id": "dummy-gold",
        "name": "Gold policy",
        "description": "hourly, kept 30 days",
    }
    assert admin.ok("patch", "/providers/vault", body={"enabled": False})["enabled"] is False
    error_of(admin.post("/providers", {"name": "vault", "driver": "dummy"}), 409, "conflict")
    body = error_of(admin.post("/providers", {"name": "x", "driver": "tape"}), 400, "invalid_argument")
    assert body["field"] == "driver"
    error_of(admin.get("/providers/nothing"), 404, "not_found")

    for method, path, body in [
        ("get", "/providers", None),
        ("get", f"/providers/{world.provider_id}", None),
        ("get", f"/providers/{world.provider_id}/offerings", None),
        ("post", "/providers", {"name": "mine", "driver": "dummy"}),
        ("patch", f"/providers/{world.provider_id}", {"enabled": False}),
    ]:
        response = alice.get(path) if body is None else getattr(alice, method)(path, body)
        error_of(response, 403, "permission_denied")


def test_offering_lifecycle(server, world):
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    silver = admin.ok(
        "post",
        "/offerings",
        201,
        body={
            "name": "silver",
            "zone": "zone1",
            "provider": "dummy",
            "external_id": "dummy-silver",
            "rpo": "1d",
            "timezone": "Europe/Berlin",
            "windows": [{"start": "20:00", "end": "06:00"}],
            "blackouts": [{"start": "22:00", "end": "23:00", "days": ["sat"]}],
            "retention_count": 7,
            "keep_weekly": 4,
            "allow_user_driven_backups": False,
        },
    )
    assert (silver["rpo"], silver["rpo_seconds"], silver["retention_count"]) == ("1d", 86400, 7)
    assert silver["blackouts"] == [{"start": "22:00", "end": "23:00", "days": ["sat"]}]
    assert silver["allow_user_driven_backups"] is False

    names = [o["name"] for o in alice.ok("get", "/offerings")["items"]]
    assert names == ["bronze", "gold", "silver"]
    assert [o["name"] for o in alice.ok("get", "/offerings", params={"keyword": "ol"})["items"]] == ["gold"]
    assert alice.ok("get", "/offerings", params={"zone": "zone2"})["total"] == 0
    page = alice.ok("get", "/offerings", params={"page": 2, "pagesize": 2})
    assert ([o["name"] for o in page["items"]], page["total"]) == (["silver"], 3)
    assert alice.ok("get", f"/offerings/{silver['id']}")["timezone"] == "Europe/Berlin"

    changed = admin.ok("patch", f"/offerings/{silver['id']}", body={"rpo": "2d", "description": "nightly"})
    assert (changed["rpo"], changed["description"], changed["retention_count"]) == ("2d", "nightly", 7)
    refused = error_of(admin.patch(f"/offerings/{silver['id']}", {"rpo": "5m"}), 400, "invalid_argument")
    assert refused["field"] == "rpo"
    error_of(admin.patch(f"/offerings/{silver['id']}", {"name": "gold"}), 409, "conflict")
    unknown = admin.post(
        "/offerings", {"name": "x", "zone": "zone1", "provider": "dummy", "external_id": "nope", "rpo": "1d"}
    )
    assert error_of(unknown, 400, "invalid_argument")["field"] == "external_id"

    for response in (
        alice.post(
            "/offerings",
            {"name": "x", "zone": "zone1", "provider": "dummy", "external_id": "dummy-gold", "rpo": "1d"},
        ),
        alice.patch(f"/offerings/{silver['id']}", {"description": "mine now"}),
        alice.delete(f"/offerings/{silver['id']}"),
    ):
        error_of(response, 403, "permission_denied")

    in_use = error_of(admin.delete(f"/offerings/{world.gold_id}"), 409, "conflict")
    assert "in use by 2" in in_use["message"]
    assert admin.call("DELETE", f"/offerings/{silver['id']}").status_code == 204
    error_of(alice.get(f"/offerings/{silver['id']}"), 404, "not_found")


def test_assign_change_and_remove_an_offering(server, world):
    api = clients(server)
    alice = api["alice"]
    vm = alice.ok("put", f"/vms/{world.alice_vm2}/offering", body={"offering_id": world.gold_id})
    assert vm["backup_offering_id"] == world.gold_id
    # Same offering again: nothing to do.
    assert alice.ok("put", f"/vms/{world.alice_vm2}/offering", body={"offering_id": world.gold_id}) == vm
    alice.backed_up(world.alice_vm2)
    # The dummy provider deletes a VM's restore points when it leaves: that needs forced.
    refused = error_of(
        alice.put(f"/vms/{world.alice_vm2}/offering", {"offering_id": world.bronze_id}), 409, "conflict"
    )
    assert "forced=true" in refused["message"]
    moved = alice.ok(
        "put", f"/vms/{world.alice_vm2}/offering", body={"offering_id": world.bronze_id, "forced": True}
    )
    assert moved["backup_offering"] == "bronze"
    removed = alice.ok("delete", f"/vms/{world.alice_vm2}/offering")
    assert removed["backup_offering_id"] is None
    error_of(alice.delete(f"/vms/{world.alice_vm2}/offering"), 409, "conflict")
    error_of(alice.put(f"/vms/{world.alice_vm2}/offering", {"offering_id": "no-such"}), 404, "not_found")
    error_of(alice.put(f"/vms/{world.alice_vm2}/offering", {}), 400, "invalid_argument")


def test_plan_and_capacity_over_rest_for_operators_only(server, world):
    api = clients(server)
    dry = api["admin"].ok("get", "/plan", params={"fresh": "true", "hours": 48})
    assert {j["vm_name"] for j in dry["jobs"]} >= {"web1"}
    assert dry["late"] == sum(j["late"] for j in dry["jobs"])
    assert api["admin"].ok("get", "/plan")["jobs"] == []  # nothing stored until the dispatcher runs
    report = api["admin"].ok("get", "/capacity", params={"nights": 2})
    assert len(report["nights"]) == 2
    assert isinstance(report["feasible"], bool)
    error_of(api["alice"].get("/plan"), 403, "permission_denied")
    error_of(api["admin"].get("/plan", params={"hours": 0}), 400, "invalid_argument")


def test_reconcile_counts_what_the_back_end_holds_untracked(server, world):
    admin, alice = clients(server)["admin"], clients(server)["alice"]
    assert admin.ok("get", "/providers/dummy")["untracked_copies"] is None  # never reconciled
    result = admin.ok("post", "/providers/dummy/reconcile")
    assert (result["listed"], result["untracked"], result["in_flight"]) == (0, [], 0)
    assert result["provider"]["untracked_copies"] == 0
    assert admin.ok("get", "/providers/dummy")["reconciled_at"] is not None
    error_of(alice.post("/providers/dummy/reconcile", {}), 403, "permission_denied")
    admin.ok(
        "post", "/providers", 201, body={"name": "blind", "driver": "dummy", "config": {"capabilities": []}}
    )
    error_of(admin.post("/providers/blind/reconcile", {}), 422, "unsupported")
