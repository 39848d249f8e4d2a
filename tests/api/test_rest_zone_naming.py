"""One way to name a zone over REST: ``zone`` (id or name) in requests, ``zone_id`` in
responses; a request may send ``zone_id`` back for ``zone``."""

from __future__ import annotations

from tests.api.rest_helpers import clients, error_of
from tests.conftest import GiB


def test_requests_take_zone_id_for_zone_in_bodies_and_filters(server, world):
    admin = clients(server)["admin"]
    zone = admin.ok("post", "/zones", 201, body={"name": "zone3"})

    host = admin.ok("post", "/hosts", 201, body={"zone_id": zone["id"], "name": "h3", "hypervisor": "kvm"})
    pool = admin.ok("post", "/pools", 201, body={"zone_id": "zone3", "name": "p3"})  # a name too
    vm = admin.ok(
        "post",
        "/vms",
        201,
        body={
            "name": "v3",
            "account": "bob",
            "zone_id": zone["id"],
            "volumes": [{"pool": "p3", "size": GiB}],
        },
    )
    provider = admin.ok(
        "post", "/providers", 201, body={"name": "d3", "driver": "dummy", "zone_id": zone["id"]}
    )
    offering = admin.ok(
        "post",
        "/offerings",
        201,
        body={
            "name": "o3",
            "zone_id": zone["id"],
            "provider": "d3",
            "external_id": "dummy-gold",
            "rpo": "1d",
        },
    )
    # Responses say zone_id, always, and never zone.
    for row in (host, pool, vm, provider, offering):
        assert row["zone_id"] == zone["id"], row
        assert "zone" not in row, row

    for path, name in (("/hosts", "h3"), ("/pools", "p3"), ("/vms", "v3"), ("/offerings", "o3")):
        by_alias = admin.ok("get", path, params={"zone_id": zone["id"]})["items"]
        assert [r["name"] for r in by_alias] == [name], path
        assert by_alias == admin.ok("get", path, params={"zone": "zone3"})["items"], path

    def providers(zone_id):
        return sorted(p["name"] for p in admin.ok("get", "/providers", params={"zone_id": zone_id})["items"])

    assert (providers(zone["id"]), providers(world.zone2_id)) == (
        ["d3", "dummy"],
        ["dummy"],
    )  # dummy: every zone
    listed = admin.ok("get", f"/providers/{provider['id']}/offerings", params={"zone_id": zone["id"]})
    assert listed["total"] > 0


def test_zone_and_zone_id_together_must_agree(server, world):
    admin = clients(server)["admin"]
    both = {"zone": world.zone_id, "zone_id": world.zone_id, "name": "h4", "hypervisor": "kvm"}
    assert admin.ok("post", "/hosts", 201, body=both)["zone_id"] == world.zone_id

    clash = {"zone": "zone1", "zone_id": world.zone2_id, "name": "h5", "hypervisor": "kvm"}
    refused = error_of(admin.post("/hosts", clash), 400, "invalid_argument")
    assert refused["field"] == "zone_id"
    assert "give one" in refused["message"]
    refused = error_of(
        admin.get("/pools", params={"zone": "zone1", "zone_id": "zone2"}), 400, "invalid_argument"
    )
    assert refused["field"] == "zone_id"
    # Where no zone is asked for, zone_id stays an unknown field.
    error_of(admin.post("/zones", {"name": "z", "zone_id": world.zone_id}), 400, "invalid_argument")
