"""vCenter ingestion through REST and CloudStack's listUnmanagedInstances and
importUnmanagedInstance (the real ``cs`` client), against the running simulator."""

from __future__ import annotations

import pytest
from cs import CloudStack, CloudStackApiException

from tests.api.rest_helpers import clients, error_of
from tests.peers import vcsim
from tests.providers.vsphere.conftest import vcenter, vcsim_binary  # noqa: F401  (the fixtures)

VM0, VM1 = "DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1"


def client(server, who: str) -> CloudStack:
    keys = server.keys[who]
    return CloudStack(
        endpoint=server.endpoint, key=keys.apikey, secret=keys.secretkey, fetch_result=True, job_timeout=30
    )


@pytest.fixture
def vc_host(server, world, vcenter: vcsim.Vcsim) -> str:  # noqa: F811
    """A vCenter host vc1 in zone1 connected through REST; its id."""
    admin = clients(server)["admin"]
    host = admin.ok("post", "/hosts", 201, body={"zone": "zone1", "name": "vc1", "hypervisor": "vmware"})
    shown = admin.ok("put", f"/hosts/{host['id']}/connection", body={"connection": vcenter.connection()})
    assert shown["connection"]["password"] == "********"
    assert vcenter.password not in str(shown)
    return host["id"]


def test_rest_discovers_and_refuses_an_import_whose_datastore_maps_to_no_pool(server, vc_host) -> None:
    admin = clients(server)["admin"]
    found = admin.wait(admin.ok("post", f"/hosts/{vc_host}/discover", 202)["id"])
    assert found["state"] == "succeeded", found
    by_name = {vm["name"]: vm for vm in found["result"]["unmanaged"]}
    assert set(by_name) == {VM0, VM1}
    uuid = by_name[VM0]["uuid"]

    refused = error_of(
        admin.post(f"/hosts/{vc_host}/import", body={"uuid": uuid, "account": "alice"}),
        400,
        "invalid_argument",
    )
    assert "datastore LocalDS_0" in refused["message"]
    assert refused["field"] == "datastore"

    admin.ok("post", "/pools", 201, body={"zone": "zone1", "name": "LocalDS_0", "path": "/vmfs/volumes/ds0"})
    imported = admin.wait(
        admin.ok("post", f"/hosts/{vc_host}/import", 202, body={"uuid": uuid, "account": "alice"})["id"]
    )
    assert imported["state"] == "succeeded", imported
    vm = clients(server)["alice"].ok("get", f"/vms/{uuid}")
    assert [(v["path"], v["format"]) for v in vm["volumes"]] == [(f"[LocalDS_0] {VM0}/disk1.vmdk", "vmdk")]


def test_cloudstack_lists_and_imports_unmanaged_instances(server, world, vc_host) -> None:
    cs = client(server, "admin")
    with pytest.raises(CloudStackApiException, match="has not been discovered yet"):
        cs.listUnmanagedInstances(clusterid=vc_host)
    admin = clients(server)["admin"]
    assert admin.wait(admin.ok("post", f"/hosts/{vc_host}/discover", 202)["id"])["state"] == "succeeded"
    admin.ok("post", "/pools", 201, body={"zone": "zone1", "name": "LocalDS_0", "path": "/vmfs/volumes/ds0"})

    listing = cs.listUnmanagedInstances(clusterid=vc_host)

    assert listing["count"] == 2
    vm = next(i for i in listing["unmanagedinstance"] if i["name"] == VM0)
    assert {k: vm[k] for k in ("clusterid", "powerstate", "cpunumber", "memory", "osdisplayname")} == {
        "clusterid": vc_host,
        "powerstate": "PowerOn",
        "cpunumber": 1,
        "memory": 32,
        "osdisplayname": "otherGuest",
    }
    [disk] = vm["disk"]
    assert {k: disk[k] for k in ("label", "capacity", "controller", "controllerunit", "datastorename")} == {
        "label": "scsi0:0",
        "capacity": 2**20,
        "controller": "scsi",
        "controllerunit": 0,
        "datastorename": "LocalDS_0",
    }
    assert disk["imagepath"] == f"[LocalDS_0] {VM0}/disk1.vmdk"
    [nic] = vm["nic"]
    assert {k: nic[k] for k in ("networkname", "vlanid", "adaptertype")} == {
        "networkname": "DC0_DVPG0",
        "vlanid": 0,
        "adaptertype": "e1000",
    }
    assert ":" in nic["macaddress"]
    assert [
        i["name"] for i in cs.listUnmanagedInstances(clusterid=vc_host, name=VM1)["unmanagedinstance"]
    ] == [VM1]

    imported = cs.importUnmanagedInstance(
        clusterid=vc_host, name=VM0, displayname="web-vc", account="alice", serviceofferingid="any"
    )

    assert imported["virtualmachine"]["name"] == "web-vc"
    assert imported["virtualmachine"]["account"] == "alice"
    left = cs.listUnmanagedInstances(clusterid=vc_host)
    assert [i["name"] for i in left["unmanagedinstance"]] == [VM1]
    with pytest.raises(CloudStackApiException, match="no unmanaged instance named nope"):
        cs.importUnmanagedInstance(clusterid=vc_host, name="nope", serviceofferingid="any")
    with pytest.raises(CloudStackApiException, match="Unknown parameter"):
        cs.importUnmanagedInstance(clusterid=vc_host, name=VM1, migrateallowed="true")
    with pytest.raises(CloudStackApiException):
        client(server, "alice").listUnmanagedInstances(clusterid=vc_host)
