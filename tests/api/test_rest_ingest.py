"""Ingestion through REST: host connection settings, discovery and import as jobs."""

from __future__ import annotations

from pathlib import Path

from tests.api.rest_helpers import clients, error_of
from tests.providers.kvm.fixtures.rebuilt_node import rebuilt_node
from tests.providers.kvm.test_domains import virsh  # noqa: F401  (a failure in CI without virsh)

NODE = Path(__file__).parents[1] / "providers" / "kvm" / "fixtures" / "node.xml"
WEB1 = "6e0d9a84-3b1f-4c1e-9a57-0c3a2f1e7b01"


def connect_to(admin, uri: str) -> tuple[str, dict]:
    """kvm1 reached locally at the test driver ``uri``, with a pool for its images: its id and record."""
    admin.ok(
        "post", "/pools", 201, body={"zone": "zone1", "name": "images", "path": "/var/lib/libvirt/images"}
    )
    host = next(h for h in admin.ok("get", "/hosts")["items"] if h["name"] == "kvm1")
    local = {"transport": "local", "libvirt_uri": uri}
    return host["id"], admin.ok("put", f"/hosts/{host['id']}/connection", body={"connection": local})


def test_discover_and_import_through_rest(server, world, virsh):  # noqa: F811
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    host_id, shown = connect_to(admin, f"test://{NODE}")
    assert shown["connection"] == {"transport": "local", "libvirt_uri": f"test://{NODE}"}
    bad = error_of(
        admin.put(f"/hosts/{host_id}/connection", body={"connection": {"transport": "telnet"}}),
        400,
        "invalid_argument",
    )
    assert bad["field"] == "connection.transport"

    found = admin.wait(admin.ok("post", f"/hosts/{host_id}/discover", 202)["id"])
    assert found["state"] == "succeeded", found
    assert sorted(vm["name"] for vm in found["result"]["unmanaged"]) == ["db1", "web1"]

    imported = admin.wait(
        admin.ok("post", f"/hosts/{host_id}/import", 202, body={"uuid": WEB1, "account": "alice"})["id"]
    )
    assert imported["state"] == "succeeded", imported
    vm = alice.ok("get", f"/vms/{WEB1}")
    assert [v["path"] for v in vm["volumes"]] == [
        "/var/lib/libvirt/images/web1-root.qcow2",
        "/var/lib/libvirt/images/web1-data.raw",
    ]
    error_of(alice.post(f"/hosts/{host_id}/discover"), 403, "permission_denied")
    error_of(admin.post(f"/hosts/{host_id}/import", body={"uuid": WEB1, "account": "bob"}), 409, "conflict")


def test_discovery_through_rest_relinks_a_rebuilt_vm(server, world, virsh, tmp_path):  # noqa: F811
    api = clients(server)
    admin, alice = api["admin"], api["alice"]
    host_id, _ = connect_to(admin, f"test://{NODE}")
    imported = admin.ok("post", f"/hosts/{host_id}/import", 202, body={"uuid": WEB1, "account": "alice"})
    assert admin.wait(imported["id"])["state"] == "succeeded"
    moved = "/var/lib/libvirt/images/web1-data-restored.raw"
    rebuilt = {"transport": "local", "libvirt_uri": rebuilt_node(tmp_path / "node", images={"vdb": moved})}
    admin.ok("put", f"/hosts/{host_id}/connection", body={"connection": rebuilt})

    found = admin.wait(admin.ok("post", f"/hosts/{host_id}/discover", 202)["id"])

    assert found["state"] == "succeeded", found
    (relinked,) = found["result"]["relinked"]
    assert relinked["vm_id"] == WEB1
    assert [v["to"] for v in relinked["volumes"]] == [moved]
    vm = alice.ok("get", f"/vms/{WEB1}")
    assert [v["path"] for v in vm["volumes"]] == ["/var/lib/libvirt/images/web1-root.qcow2", moved]
