"""REST backups, restores, schedules and jobs: long operations answer 202 with a job."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.api.rest_helpers import PREFIX, clients, error_of


def _chain_provider(admin, world, capabilities: list[str]) -> str:
    """A provider that chains incrementals and cannot delete one point in the middle."""
    admin.ok(
        "post",
        "/providers",
        201,
        body={"name": "chainy", "driver": "dummy", "config": {"capabilities": capabilities}},
    )
    offering = admin.ok(
        "post",
        "/offerings",
        201,
        body={
            "name": "chain",
            "zone": "zone1",
            "provider": "chainy",
            "external_id": "dummy-gold",
            "rpo": "1d",
        },
    )
    return offering["id"]


def test_backup_answers_202_with_a_job_that_ends_with_progress_and_a_restore_point(server, world):
    alice = clients(server)["alice"]
    response = alice.post("/backups", {"vm_id": world.alice_vm})
    assert response.status_code == 202
    job = response.json()
    assert response.headers["Location"] == f"{PREFIX}/jobs/{job['id']}"
    assert (job["kind"], job["state"], job["subject_type"]) == ("backup", "queued", "backup")
    done = alice.wait(job["id"])
    assert done["state"] == "succeeded", done
    assert done["progress"]["total"] > 0
    assert done["progress"]["done"] == done["progress"]["total"]
    assert done["result"]["backup_id"] == job["subject_id"]
    assert done["started"]
    assert done["finished"]
    point = alice.ok("get", f"/backups/{job['subject_id']}")
    assert (point["status"], point["type"], point["vm_name"], point["origin"]) == (
        "BackedUp",
        "FULL",
        "web1",
        "adhoc",
    )
    assert len(point["volumes"]) == 2
    jobs = alice.ok("get", "/jobs", params={"kind": "backup", "subject_id": point["id"]})
    assert [j["id"] for j in jobs["items"]] == [job["id"]]
    assert alice.ok("get", "/jobs", params={"state": "failed"})["total"] == 0
    # The same idempotency key answers the same job instead of a second backup.
    first = alice.ok("post", "/backups", 202, body={"vm_id": world.alice_vm, "idempotency_key": "k-1"})
    again = alice.ok("post", "/backups", 202, body={"vm_id": world.alice_vm, "idempotency_key": "k-1"})
    assert again["id"] == first["id"]


def test_backups_are_filtered_and_paged(server, world):
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    mine = [alice.backed_up(world.alice_vm)["id"] for _ in range(2)]
    bobs = api["bob"].backed_up(world.bob_vm)["id"]
    listing = alice.ok("get", "/backups")
    assert [b["id"] for b in listing["items"]] == mine[::-1]  # newest first
    assert listing["items"][0]["type"] == "INCREMENTAL"
    # Both restore the VM's 12 GiB; the incremental stored a tenth of it (the dummy's ratio).
    sizes = [(b["logical_size"], b["stored_size"]) for b in listing["items"]]
    assert sizes == [(12 * 2**30, 12 * 2**30 // 10), (12 * 2**30, 12 * 2**30)]
    assert alice.ok("get", "/backups", params={"vm_id": world.bob_vm})["total"] == 0
    page = alice.ok("get", "/backups", params={"page": 2, "pagesize": 1})
    assert ([b["id"] for b in page["items"]], page["total"]) == ([mine[0]], 2)
    assert admin.ok("get", "/backups")["total"] == 3
    assert [b["id"] for b in admin.ok("get", "/backups", params={"account": "bob"})["items"]] == [bobs]
    assert [b["id"] for b in admin.ok("get", "/backups", params={"keyword": "app"})["items"]] == [bobs]
    assert admin.ok("get", "/backups", params={"status": "BackedUp", "zone": "zone1"})["total"] == 3
    assert admin.ok("get", "/backups", params={"offering_id": world.bronze_id})["total"] == 0
    assert (
        error_of(admin.get("/backups", params={"status": "Fine"}), 400, "invalid_argument")["field"]
        == "status"
    )


def test_restore_a_vm_a_volume_and_a_destroyed_vm(server, world):
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    point = alice.backed_up(world.alice_vm)
    # web1 runs: its disks are not overwritten under it unless the provider stops it first.
    refused = error_of(alice.post(f"/backups/{point['id']}/restore"), 409, "conflict")
    assert "virtual machine web1 is Running" in refused["message"]
    assert refused["field"] == "stop"
    assert alice.ok("get", "/jobs", params={"kind": "restore_vm"})["total"] == 0
    restore = alice.ok("post", f"/backups/{point['id']}/restore", 202, body={"stop": True})
    assert restore["kind"] == "restore_vm"
    done = alice.wait(restore["id"])
    assert done["state"] == "succeeded"
    assert done["result"]["recreated"] is False

    data_disk = point["volumes"][1]["id"]
    body = {"volume_id": data_disk, "vm_id": world.alice_vm2}
    attach = alice.wait(alice.ok("post", f"/backups/{point['id']}/restore-volume", 202, body=body)["id"])
    assert attach["state"] == "succeeded", attach
    volumes = alice.ok("get", f"/vms/{world.alice_vm2}/volumes")["items"]
    assert attach["result"]["volume_id"] in {v["id"] for v in volumes}
    missing = {"volume_id": "not-in-it", "vm_id": world.alice_vm2}
    error_of(alice.post(f"/backups/{point['id']}/restore-volume", missing), 404, "not_found")

    assert admin.call("DELETE", f"/vms/{world.alice_vm}").status_code == 204
    error_of(alice.get(f"/vms/{world.alice_vm}"), 404, "not_found")
    back = alice.wait(alice.ok("post", f"/backups/{point['id']}/restore", 202)["id"])
    assert back["result"]["recreated"] is True
    assert alice.ok("get", f"/vms/{world.alice_vm}")["state"] == "Stopped"


def test_delete_a_backup_and_what_the_provider_cannot_do_is_422(server, world):
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    leaf = alice.backed_up(world.alice_vm)
    deletion = alice.ok("delete", f"/backups/{leaf['id']}", 202)
    assert (deletion["kind"], deletion["subject_id"]) == ("delete_backup", leaf["id"])
    assert alice.wait(deletion["id"])["state"] == "succeeded"
    assert alice.ok("get", "/backups")["total"] == 0
    removed = alice.ok("get", "/backups", params={"include_removed": "true"})["items"]
    assert [(b["id"], b["status"]) for b in removed] == [(leaf["id"], "Expunged")]
    error_of(alice.delete(f"/backups/{leaf['id']}"), 404, "not_found")

    chain = _chain_provider(admin, world, ["incremental", "delete_chain"])
    alice.ok("put", f"/vms/{world.alice_vm2}/offering", body={"offering_id": chain})
    full, incremental = alice.backed_up(world.alice_vm2), alice.backed_up(world.alice_vm2)
    assert incremental["parent_id"] == full["id"]
    refused = error_of(alice.delete(f"/backups/{full['id']}"), 422, "unsupported")
    assert "cannot delete one restore point in the middle of a chain" in refused["message"]
    refused = error_of(
        alice.post(
            f"/backups/{full['id']}/restore-volume",
            {"volume_id": full["volumes"][0]["id"], "vm_id": world.alice_vm2},
        ),
        422,
        "unsupported",
    )
    assert "cannot restore a single volume" in refused["message"]
    whole = alice.ok("delete", f"/backups/{full['id']}", 202, params={"forced": "true"})
    assert alice.wait(whole["id"])["result"]["deleted"] == [incremental["id"], full["id"]]


def test_verify_a_backup_answers_202_and_the_job_says_it_is_intact(server, world):
    api = clients(server)
    alice, bob = api["alice"], api["bob"]
    point = alice.backed_up(world.alice_vm)
    job = alice.ok("post", f"/backups/{point['id']}/verify", 202)
    assert (job["kind"], job["subject_id"]) == ("verify", point["id"])
    done = alice.wait(job["id"])
    assert done["state"] == "succeeded"
    assert done["result"] == {"backup_id": point["id"], "intact": True, "damage": None}
    error_of(bob.post(f"/backups/{point['id']}/verify", {}), 404, "not_found")


def test_user_driven_backups_follow_the_offering(server, world):
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    error_of(alice.post("/backups", {"vm_id": world.alice_vm2}), 409, "conflict")  # no offering yet
    alice.ok("put", f"/vms/{world.alice_vm2}/offering", body={"offering_id": world.bronze_id})
    denied = error_of(alice.post("/backups", {"vm_id": world.alice_vm2}), 403, "permission_denied")
    assert "bronze" in denied["message"]
    schedule = {"vm_id": world.alice_vm2, "interval_type": "DAILY", "schedule": "30:2"}
    error_of(alice.post("/schedules", schedule), 403, "permission_denied")
    # An admin may, for any tenant.
    job = admin.wait(admin.ok("post", "/backups", 202, body={"vm_id": world.alice_vm2})["id"])
    assert (job["state"], job["account_id"]) == ("succeeded", world.alice.account_id)
    assert [j["id"] for j in alice.ok("get", "/jobs")["items"]] == [job["id"]]


def test_schedule_lifecycle(server, world):
    alice = clients(server)["alice"]
    daily = alice.ok(
        "post",
        "/schedules",
        201,
        body={
            "vm_id": world.alice_vm,
            "interval_type": "DAILY",
            "schedule": "30:2",
            "timezone": "Europe/Paris",
        },
    )
    assert (daily["vm_name"], daily["max_backups"], daily["schedule"]) == ("web1", 0, "30:2")
    assert daily["next_run"]
    hourly = alice.ok(
        "post",
        "/schedules",
        201,
        body={"vm_id": world.alice_vm, "interval_type": "HOURLY", "schedule": "15", "max_backups": 24},
    )
    listing = alice.ok("get", "/schedules", params={"vm_id": world.alice_vm})
    assert {s["id"] for s in listing["items"]} == {daily["id"], hourly["id"]}
    only = alice.ok("get", "/schedules", params={"interval_type": "HOURLY"})["items"]
    assert [s["id"] for s in only] == [hourly["id"]]
    assert alice.ok("get", "/schedules", params={"pagesize": 1})["total"] == 2
    changed = alice.ok("patch", f"/schedules/{daily['id']}", body={"schedule": "0:4", "max_backups": 7})
    assert (changed["schedule"], changed["max_backups"], changed["timezone"]) == ("0:4", 7, "Europe/Paris")
    bad = error_of(alice.patch(f"/schedules/{daily['id']}", {"schedule": "99:99"}), 400, "invalid_argument")
    assert bad["field"] == "schedule"
    yearly = {"vm_id": world.alice_vm, "interval_type": "YEARLY", "schedule": "0"}
    assert error_of(alice.post("/schedules", yearly), 400, "invalid_argument")["field"] == "interval_type"
    assert alice.call("DELETE", f"/schedules/{daily['id']}").status_code == 204
    error_of(alice.get(f"/schedules/{daily['id']}"), 404, "not_found")
    assert alice.ok("get", f"/schedules/{hourly['id']}")["max_backups"] == 24


def test_identical_schedules_posted_at_once_all_succeed_as_one(server, world):
    alice = clients(server)["alice"]
    body = {"vm_id": world.alice_vm, "interval_type": "DAILY", "schedule": "30:2"}
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: alice.post("/schedules", body), range(32)))

    assert {a.status_code for a in answers} == {201}, {a.status_code: a.text for a in answers}
    assert len({a.json()["id"] for a in answers}) == 1
    assert alice.ok("get", "/schedules")["total"] == 1


def test_racing_backups_under_one_key_answer_the_same_job_never_500(server, world):
    alice = clients(server)["alice"]
    body = {"vm_id": world.alice_vm, "idempotency_key": "race-k"}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: alice.post("/backups", body), range(8)))

    assert {a.status_code for a in answers} == {202}, {a.status_code: a.text for a in answers}
    (job_id,) = {a.json()["id"] for a in answers}
    assert alice.wait(job_id)["state"] == "succeeded"
    points = alice.ok("get", "/backups", params={"vm_id": world.alice_vm})["items"]
    assert [p["id"] for p in points] == [answers[0].json()["subject_id"]]


def test_jobs_report_retries_failures_and_cancel_what_has_not_started(server, world):
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    config = {"fail": ["backup", "restore"], "fail_times": 1}
    admin.ok("post", "/providers", 201, body={"name": "flaky", "driver": "dummy", "config": config})
    flaky = admin.ok(
        "post",
        "/offerings",
        201,
        body={
            "name": "flaky",
            "zone": "zone1",
            "provider": "flaky",
            "external_id": "dummy-gold",
            "rpo": "1d",
        },
    )
    alice.ok("put", f"/vms/{world.alice_vm2}/offering", body={"offering_id": flaky["id"]})
    started = alice.ok("post", "/backups", 202, body={"vm_id": world.alice_vm2})
    # The first attempt fails; the job goes back to queued for its retry (nothing re-runs it here).
    deadline = time.monotonic() + 10
    while (job := alice.ok("get", f"/jobs/{started['id']}"))["attempts"] < 1 or job["state"] != "queued":
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert "told to fail backup" in job["error"]
    cancelled = alice.ok("post", f"/jobs/{job['id']}/cancel")
    assert (cancelled["state"], cancelled["error"]) == ("cancelled", "cancelled by alice")
    assert alice.ok("get", f"/backups/{job['subject_id']}")["status"] == "Failed"
    refused = error_of(alice.post(f"/jobs/{job['id']}/cancel"), 409, "conflict")
    assert "it can no longer be cancelled" in refused["message"]
    logs = alice.ok("get", f"/jobs/{job['id']}/logs")
    assert [entry["level"] for entry in logs] == ["info", "warning", "warning"]
    assert "attempt 1 failed: " in logs[1]["message"]
    assert "retry in" in logs[1]["message"]
    assert logs[2]["message"] == "cancelled by alice"
    error_of(api["bob"].get(f"/jobs/{job['id']}/logs"), 404, "not_found")

    point = alice.backed_up(world.alice_vm2)
    failed = alice.wait(alice.ok("post", f"/backups/{point['id']}/restore", 202)["id"])
    assert (failed["state"], failed["attempts"]) == ("failed", 1)
    assert "told to fail restore" in failed["error"]
    assert [j["id"] for j in alice.ok("get", "/jobs", params={"state": "failed"})["items"]] == [failed["id"]]
    error_of(alice.get("/jobs/no-such-job"), 404, "not_found")


def test_stop_is_refused_where_the_provider_cannot_stop_the_vm(server, world):
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    offering = _chain_provider(admin, world, ["incremental"])
    alice.ok("put", f"/vms/{world.alice_vm}/offering", body={"offering_id": offering})
    point = alice.backed_up(world.alice_vm)

    refused = error_of(alice.post(f"/backups/{point['id']}/restore", {"stop": True}), 422, "unsupported")
    assert "cannot stop virtual machine web1 (Running)" in refused["message"]
    error_of(alice.post(f"/backups/{point['id']}/restore", {"stop": "maybe"}), 400, "invalid_argument")


def test_restore_to_a_new_vm_over_rest(server, world):
    alice = clients(server)["alice"]
    point = alice.backed_up(world.alice_vm)
    job = alice.ok("post", f"/backups/{point['id']}/restore-new-vm", 202, body={"name": "web1-copy"})
    done = alice.wait(job["id"])
    assert done["state"] == "succeeded", done
    names = {vm["name"] for vm in alice.ok("get", "/vms")["items"]}
    assert {"web1", "web1-copy"} <= names
    error_of(alice.post(f"/backups/{point['id']}/restore-new-vm", {}), 400, "invalid_argument")


def test_a_partially_failed_backup_over_rest(server, world):
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    admin.ok(
        "post",
        "/providers",
        201,
        body={"name": "halfway", "driver": "dummy", "config": {"fail_volumes": [1]}},
    )
    offering = admin.ok(
        "post",
        "/offerings",
        201,
        body={
            "name": "half",
            "zone": "zone1",
            "provider": "halfway",
            "external_id": "dummy-gold",
            "rpo": "1d",
        },
    )
    alice.ok("put", f"/vms/{world.alice_vm2}/offering", body={"offering_id": offering["id"]})

    job = alice.wait(alice.ok("post", "/backups", 202, body={"vm_id": world.alice_vm2})["id"])

    assert job["state"] == "failed"
    assert "partially failed" in job["error"]
    point = alice.ok("get", f"/backups/{job['subject_id']}")
    assert point["status"] == "PartiallyFailed"
    assert [(v["device_id"], v["name"]) for v in point["failed_volumes"]] == [(1, "DATA-db1-1")]
    listed = alice.ok("get", f"/backups?vm_id={world.alice_vm2}&status=PartiallyFailed")["items"]
    assert [p["id"] for p in listed] == [point["id"]]
    error_of(alice.post(f"/backups/{point['id']}/restore", {}), 409, "conflict")
    kept = next(v["id"] for v in point["volumes"] if v["device_id"] == 0)
    body = {"volume_id": kept, "vm_id": world.alice_vm}
    restored = alice.wait(alice.ok("post", f"/backups/{point['id']}/restore-volume", 202, body=body)["id"])
    assert restored["state"] == "succeeded", restored
