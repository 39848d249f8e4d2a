"""Tenants over HTTP: a user cannot see, restore, delete or schedule another user's VMs and
backups (their objects are 404, as if they did not exist); an admin acts on any tenant."""

from __future__ import annotations

from tests.api.rest_helpers import clients, error_of


def test_a_user_cannot_touch_another_users_vms(server, world):
    api = clients(server)
    alice, bob = api["alice"], api["bob"]
    assert world.bob_vm not in {v["id"] for v in alice.ok("get", "/vms")["items"]}
    own_point = alice.backed_up(world.alice_vm)
    schedule = {"vm_id": world.bob_vm, "interval_type": "DAILY", "schedule": "0:1"}
    for response in (
        alice.get(f"/vms/{world.bob_vm}"),
        alice.get(f"/vms/{world.bob_vm}/volumes"),
        alice.put(f"/vms/{world.bob_vm}/offering", {"offering_id": world.bronze_id}),
        alice.delete(f"/vms/{world.bob_vm}/offering"),
        alice.post("/backups", {"vm_id": world.bob_vm}),
        alice.post("/schedules", schedule),
        alice.get("/schedules", params={"vm_id": world.bob_vm}),
        # Restoring her own volume onto his VM.
        alice.post(
            f"/backups/{own_point['id']}/restore-volume",
            {"volume_id": own_point["volumes"][1]["id"], "vm_id": world.bob_vm},
        ),
    ):
        body = error_of(response, 404, "not_found")
        assert world.bob_vm in body["message"]
    assert alice.ok("get", "/backups", params={"vm_id": world.bob_vm})["total"] == 0
    his = bob.ok("get", f"/vms/{world.bob_vm}")
    assert (his["backup_offering_id"], len(his["volumes"])) == (world.gold_id, 2)
    assert bob.ok("get", "/schedules")["total"] == 0


def test_a_user_cannot_touch_another_users_backups_schedules_and_jobs(server, world):
    api = clients(server)
    admin, alice, bob = api["admin"], api["alice"], api["bob"]
    point = bob.backed_up(world.bob_vm)
    job_id = bob.ok("get", "/jobs", params={"subject_id": point["id"]})["items"][0]["id"]
    schedule = bob.ok(
        "post", "/schedules", 201, body={"vm_id": world.bob_vm, "interval_type": "HOURLY", "schedule": "5"}
    )
    assert alice.ok("get", "/backups")["total"] == 0
    assert alice.ok("get", "/schedules")["total"] == 0
    assert alice.ok("get", "/jobs")["total"] == 0
    assert alice.ok("get", "/jobs", params={"subject_id": point["id"]})["total"] == 0
    for response in (
        alice.get(f"/backups/{point['id']}"),
        alice.post(f"/backups/{point['id']}/restore"),
        alice.post(
            f"/backups/{point['id']}/restore-volume",
            {"volume_id": point["volumes"][1]["id"], "vm_id": world.alice_vm},
        ),
        alice.delete(f"/backups/{point['id']}"),
        alice.delete(f"/backups/{point['id']}", params={"forced": "true"}),
        alice.get(f"/schedules/{schedule['id']}"),
        alice.patch(f"/schedules/{schedule['id']}", {"max_backups": 1}),
        alice.delete(f"/schedules/{schedule['id']}"),
        alice.get(f"/jobs/{job_id}"),
        alice.post(f"/jobs/{job_id}/cancel"),
    ):
        body = error_of(response, 404, "not_found")
        assert "not found" in body["message"]
    # Nothing of his changed.
    assert bob.ok("get", f"/backups/{point['id']}")["status"] == "BackedUp"
    assert bob.ok("get", f"/schedules/{schedule['id']}")["max_backups"] == 0
    assert bob.ok("get", "/jobs")["total"] == 1

    # The admin sees every tenant and acts for them.
    assert admin.ok("get", f"/backups/{point['id']}")["account_id"] == world.bob.account_id
    assert admin.ok("get", "/schedules")["total"] == 1
    restore = admin.wait(admin.ok("post", f"/backups/{point['id']}/restore", 202, body={"stop": True})["id"])
    assert (restore["state"], restore["account_id"]) == ("succeeded", world.bob.account_id)
    assert {j["kind"] for j in bob.ok("get", "/jobs")["items"]} == {"backup", "restore_vm"}
    assert admin.ok("get", "/jobs", params={"kind": "restore_vm"})["total"] == 1
