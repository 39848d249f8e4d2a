"""REST inventory: zones, hosts, storage pools, VMs and volumes, with filters and paging."""

from __future__ import annotations

from tests.api.rest_helpers import clients, error_of

GiB = 2**30


def test_zones_list_filter_page_and_show(server, world):
    alice = clients(server)["alice"]
    listing = alice.ok("get", "/zones")
    assert [z["name"] for z in listing["items"]] == ["zone1", "zone2"]
    assert (listing["total"], listing["page"], listing["pagesize"]) == (2, 1, 50)
    assert [z["name"] for z in alice.ok("get", "/zones", params={"keyword": "2"})["items"]] == ["zone2"]
    second = alice.ok("get", "/zones", params={"page": 2, "pagesize": 1})
    assert ([z["name"] for z in second["items"]], second["total"]) == (["zone2"], 2)
    assert alice.ok("get", "/zones", params={"page": 3, "pagesize": 1})["items"] == []
    assert alice.ok("get", f"/zones/{world.zone_id}")["name"] == "zone1"
    assert alice.ok("get", "/zones/zone2")["id"] == world.zone2_id
    error_of(alice.get("/zones/nowhere"), 404, "not_found")


def test_admin_registers_inventory_and_a_user_may_not(server, world):
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    zone = admin.ok("post", "/zones", 201, body={"name": "zone3", "description": "lab"})
    assert zone == {"id": zone["id"], "name": "zone3", "description": "lab"}
    host = admin.ok("post", "/hosts", 201, body={"zone": "zone3", "name": "esx1", "hypervisor": "vmware"})
    assert (host["zone_id"], host["hypervisor"], host["max_concurrent_backups"]) == (zone["id"], "vmware", 2)
    pool = admin.ok(
        "post", "/pools", 201, body={"zone": zone["id"], "name": "nfs1", "bandwidth_bytes_per_s": 10**9}
    )
    assert (pool["max_concurrent_backups"], pool["bandwidth_bytes_per_s"]) == (4, 10**9)
    vm = admin.ok(
        "post",
        "/vms",
        201,
        body={
            "name": "mail1",
            "account": "bob",
            "zone": "zone3",
            "host": "esx1",
            "volumes": [{"pool": "nfs1", "size": 4 * GiB}, {"pool": "nfs1", "size": GiB, "format": "raw"}],
        },
    )
    assert (vm["account"], vm["host_id"], vm["state"]) == ("bob", host["id"], "Running")
    assert [(v["type"], v["device_id"], v["format"]) for v in vm["volumes"]] == [
        ("ROOT", 0, "qcow2"),
        ("DATADISK", 1, "raw"),
    ]
    assert [h["name"] for h in admin.ok("get", "/hosts", params={"zone": "zone3"})["items"]] == ["esx1"]
    assert admin.ok("get", "/hosts")["total"] == 3
    assert [p["name"] for p in admin.ok("get", "/pools", params={"keyword": "nfs"})["items"]] == ["nfs1"]
    error_of(admin.post("/zones", {"name": "zone3"}), 409, "conflict")

    for path, body in [
        ("/zones", {"name": "zone9"}),
        ("/hosts", {"zone": "zone1", "name": "h9", "hypervisor": "kvm"}),
        ("/pools", {"zone": "zone1", "name": "p9"}),
        (
            "/vms",
            {"name": "x", "account": "alice", "zone": "zone1", "volumes": [{"pool": "pool1", "size": 1}]},
        ),
    ]:
        assert "only an admin" in error_of(alice.post(path, body), 403, "permission_denied")["message"]
    for path in ("/hosts", "/pools"):
        error_of(alice.get(path), 403, "permission_denied")
    error_of(alice.delete(f"/vms/{world.alice_vm}"), 403, "permission_denied")

    assert admin.call("DELETE", f"/vms/{vm['id']}").status_code == 204
    error_of(admin.get(f"/vms/{vm['id']}"), 404, "not_found")
    assert api["bob"].ok("get", "/vms")["total"] == 1


def test_vms_are_filtered_and_paged_per_tenant(server, world):
    api = clients(server)
    admin = api["admin"]
    everything = admin.ok("get", "/vms")
    assert [v["name"] for v in everything["items"]] == ["app1", "db1", "web1"]
    assert [v["name"] for v in admin.ok("get", "/vms", params={"account": "alice"})["items"]] == [
        "db1",
        "web1",
    ]
    assert [v["name"] for v in admin.ok("get", "/vms", params={"keyword": "web"})["items"]] == ["web1"]
    on_gold = admin.ok("get", "/vms", params={"offering_id": world.gold_id})["items"]
    assert {v["name"] for v in on_gold} == {"app1", "web1"}
    assert admin.ok("get", "/vms", params={"zone": "zone2"})["total"] == 0
    error_of(admin.get("/vms", params={"zone": "atlantis"}), 404, "not_found")
    pages = [admin.ok("get", "/vms", params={"page": p, "pagesize": 2}) for p in (1, 2)]
    assert [[v["name"] for v in p["items"]] for p in pages] == [["app1", "db1"], ["web1"]]
    assert {p["total"] for p in pages} == {3}

    alice = api["alice"]
    mine = alice.ok("get", "/vms", params={"account": "bob"})  # a user's filter cannot widen her view
    assert [v["name"] for v in mine["items"]] == ["db1", "web1"]
    web1 = alice.ok("get", f"/vms/{world.alice_vm}")
    assert (web1["backup_offering"], web1["account"]) == ("gold", "alice")
    volumes = alice.ok("get", f"/vms/{world.alice_vm}/volumes")
    assert [v["type"] for v in volumes["items"]] == ["ROOT", "DATADISK"]
    data = alice.ok("get", f"/vms/{world.alice_vm}/volumes", params={"type": "DATADISK"})["items"]
    assert data == volumes["items"][1:]
    assert alice.ok("get", f"/vms/{world.alice_vm}/volumes", params={"page": 2, "pagesize": 1})["items"] == [
        volumes["items"][1]
    ]


def test_host_connection_warns_of_files_not_on_this_machine_and_refuses_relative_paths(
    server, world, tmp_path
):
    admin = clients(server)["admin"]
    host = next(h for h in admin.ok("get", "/hosts")["items"] if h["name"] == "kvm1")
    ssh = {"transport": "ssh", "address": "10.0.0.5", "key_file": "/nonexistent", "known_hosts": "/nowhere"}

    stored = admin.ok("put", f"/hosts/{host['id']}/connection", body={"connection": ssh})

    assert stored["connection"]["key_file"] == "/nonexistent"
    named = [w.split(" is not")[0] for w in stored["warnings"]]
    assert named == ["key_file /nonexistent", "known_hosts /nowhere"]
    assert all("every worker that reaches this host must have it" in w for w in stored["warnings"])

    key = tmp_path / "id"
    key.write_text("key")
    (tmp_path / "known").write_text("")
    here = {**ssh, "key_file": str(key), "known_hosts": str(tmp_path / "known")}
    assert admin.ok("put", f"/hosts/{host['id']}/connection", body={"connection": here})["warnings"] == []

    relative = {**ssh, "key_file": "keys/id"}
    refused = error_of(
        admin.put(f"/hosts/{host['id']}/connection", body={"connection": relative}), 400, "invalid_argument"
    )
    assert refused["field"] == "connection.key_file"
    assert "absolute path" in refused["message"]


def test_an_admin_records_a_vm_stopped_or_started(server, world):
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    path = f"/vms/{world.alice_vm}"
    refused = alice.patch(path, {"state": "Stopped"})
    assert refused.status_code == 403, refused.text

    stopped = admin.ok("patch", path, body={"state": "Stopped"})

    assert stopped["state"] == "Stopped"
    assert alice.ok("get", path)["state"] == "Stopped"
    assert admin.ok("patch", path, body={})["state"] == "Stopped"  # what is not given stays
    for wrong in ({"state": "Destroyed"}, {"state": "stopped"}, {"name": "x"}):
        answer = admin.patch(path, wrong)
        assert answer.status_code == 400, (wrong, answer.text)
    assert admin.patch("/vms/00000000-0000-0000-0000-000000000000", {"state": "Running"}).status_code == 404
