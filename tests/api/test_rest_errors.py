"""REST errors: every code with a JSON body, bad input never a 500, and authentication."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import requests

from api.auth import EXPIRES_FORMAT
from orchestrator.usecases import accounts
from tests.api.rest_helpers import PREFIX, Rest, clients, error_of, signed

JSON = {"Content-Type": "application/json"}


def test_every_error_code_has_a_json_body(server, world):
    api = clients(server)
    alice = api["alice"]
    assert error_of(alice.post("/backups", {"vm_id": 7}), 400, "invalid_argument")["field"] == "vm_id"
    error_of(Rest(server, None).get("/vms"), 401, "authentication_failed")
    error_of(alice.post("/zones", {"name": "mine"}), 403, "permission_denied")
    error_of(alice.get("/backups/nothing-here"), 404, "not_found")
    error_of(alice.delete(f"/vms/{world.alice_vm2}/offering"), 409, "conflict")
    api["admin"].ok("patch", f"/providers/{world.provider_id}", body={"enabled": False})
    point_less = error_of(alice.post("/backups", {"vm_id": world.alice_vm}), 409, "conflict")
    assert "disabled" in point_less["message"]
    # 422 (what the provider cannot do) is in test_rest_backups; routing and HTTP errors too:
    error_of(alice.get("/no-such-area"), 404, "not_found")
    error_of(alice.call("PUT", "/backups"), 405, "method_not_allowed")
    big = b'{"vm_id": "' + b"x" * (2 << 20) + b'"}'
    error_of(alice.call("POST", "/backups", data=big, headers=JSON), 413, "request_entity_too_large")


def test_bad_input_is_400_never_500(server, world):
    api = clients(server)
    alice, admin = api["alice"], api["admin"]
    raw = [
        ("{bad json", "not valid JSON"),
        ('{"vm_id": NaN}', "NaN is not valid JSON"),
        (b'{"vm_id": "\xff"}', "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[1, 2]", "Invalid input type"),
        ("null", "Invalid input type"),
        ('"vm"', "Invalid input type"),
    ]
    for data, expected in raw:
        body = error_of(alice.call("POST", "/backups", data=data, headers=JSON), 400, "invalid_argument")
        assert expected in body["message"], (data[:20], body)
    form = alice.call("POST", "/backups", data="vm_id=1", headers={"Content-Type": "text/plain"})
    assert "must be JSON" in error_of(form, 400, "invalid_argument")["message"]

    schedule = {"vm_id": world.alice_vm, "interval_type": "DAILY", "schedule": "0:1"}
    for path, body, field in [
        ("/backups", {}, "vm_id"),
        ("/backups", {"vm_id": world.alice_vm, "surprise": 1}, "surprise"),
        ("/backups", {"vm_id": ["a"]}, "vm_id"),
        ("/backups", {"vm_id": "a\x00b"}, "vm_id"),
        ("/backups", {"vm_id": "x" * 300}, "vm_id"),
        ("/schedules", {**schedule, "max_backups": 1.5}, "max_backups"),
        ("/schedules", {**schedule, "max_backups": True}, "max_backups"),
        ("/schedules", {**schedule, "max_backups": 10**30}, "max_backups"),
        ("/schedules", {**schedule, "timezone": "Mars/Olympus"}, "timezone"),
        ("/schedules", {**schedule, "schedule": "0:25"}, "schedule"),
    ]:
        assert error_of(alice.post(path, body), 400, "invalid_argument")["field"] == field, body

    for params, field in [
        ({"page": 0}, "page"),
        ({"page": "first"}, "page"),
        ({"pagesize": 501}, "pagesize"),
        ({"page": 10**20}, "page"),
        ({"vmid": "typo"}, "vmid"),
        ({"keyword": "a\x00b"}, "keyword"),
        ({"include_removed": "maybe"}, "include_removed"),
    ]:
        assert error_of(alice.get("/backups", params), 400, "invalid_argument")["field"] == field, params
    error_of(alice.get("/vms/a%00b"), 404, "not_found")

    deep = json.loads("[" * 40 + "]" * 40)
    vm = {"name": "n", "account": "alice", "zone": "zone1", "volumes": [{"pool": "pool1", "size": 1}]}
    for path, body, field in [
        ("/providers", {"name": "p", "driver": "dummy", "config": {"deep": deep}}, "config"),
        ("/providers", {"name": "p", "driver": "dummy", "config": {"k": "a\x00"}}, "config"),
        ("/zones", {"name": "z", "description": "d" * 1025}, "description"),
        (
            "/hosts",
            {"zone": "zone1", "name": "h", "hypervisor": "kvm", "max_concurrent_backups": 2**31},
            "max_concurrent_backups",
        ),
        ("/vms", {**vm, "volumes": [{"pool": "pool1", "size": 2**63}]}, "volumes[0].size"),
        ("/vms", {**vm, "volumes": []}, "volumes"),
        ("/vms", {**vm, "id": "i" * 37}, "id"),
        ("/offerings", {"name": "o", "zone": "zone1", "provider": "dummy", "external_id": "x"}, "rpo"),
    ]:
        assert error_of(admin.post(path, body), 400, "invalid_argument")["field"] == field, path


def test_authentication_failures_are_401(server, world):
    url = f"{server.url}{PREFIX}/vms"
    keys = server.keys["alice"]
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime(EXPIRES_FORMAT)
    next_year = (datetime.now(UTC) + timedelta(days=365)).strftime(EXPIRES_FORMAT)
    tampered = signed(server, "alice")
    tampered["keyword"] = "added-after-signing"
    unversioned = signed(server, "alice")
    del unversioned["signatureversion"]
    cases = {
        "no credentials": {},
        "wrong secret": {"headers": {"X-Api-Key": keys.apikey, "X-Api-Secret": "guess"}},
        "key only": {"headers": {"X-Api-Key": keys.apikey}},
        "unknown key": {"headers": {"X-Api-Key": "nobody", "X-Api-Secret": "guess"}},
        "bad signature": {"params": signed(server, "alice", secret="guess")},
        "tampered": {"params": tampered},
        "expired": {"params": signed(server, "alice", expires=past)},
        "unversioned": {"params": unversioned},
        "garbled expiry": {"params": signed(server, "alice", expires="tomorrow")},
        "valid for a year": {"params": signed(server, "alice", expires=next_year)},
        "NUL in the key": {"headers": {"X-Api-Key": "a\x00b", "X-Api-Secret": "guess"}},
        "NUL in a signed key": {"params": {**signed(server, "alice"), "apikey": "a\x00b"}},
    }
    for label, kw in cases.items():
        response = requests.get(url, timeout=10, **kw)
        body = error_of(response, 401, "authentication_failed")
        assert body["message"], label
    assert (
        "expired"
        in error_of(
            requests.get(url, params=cases["expired"]["params"], timeout=10), 401, "authentication_failed"
        )["message"]
    )

    # Revoked keys stop working at once.
    with world.core.scope(world.alice) as scope:
        accounts.revoke_key(scope, keys.apikey)
    error_of(Rest(server, "alice").get("/vms"), 401, "authentication_failed")


def test_signed_requests_work_for_reads_and_writes(server, world):
    url = f"{server.url}{PREFIX}"
    listing = requests.get(f"{url}/vms", params=signed(server, "alice", keyword="web 1+2/ä*"), timeout=10)
    assert listing.status_code == 200
    assert listing.json()["total"] == 0
    mine = requests.get(f"{url}/vms", params=signed(server, "alice", pagesize="1"), timeout=10).json()
    assert (mine["total"], len(mine["items"])) == (2, 1)
    made = requests.post(
        f"{url}/backups", params=signed(server, "alice"), json={"vm_id": world.alice_vm}, timeout=10
    )
    assert made.status_code == 202
    assert Rest(server, "alice").wait(made.json()["id"])["state"] == "succeeded"
    # Bob's signature does not reach Alice's VMs either.
    theirs = requests.get(f"{url}/vms/{world.alice_vm}", params=signed(server, "bob"), timeout=10)
    error_of(theirs, 404, "not_found")
