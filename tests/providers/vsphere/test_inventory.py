"""Discovery against the running vCenter simulator: what each VM is described with, the
scope a host record covers, and the bounded number of SOAP calls whatever the VM count."""

from __future__ import annotations

import http.client
import re
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from orchestrator.domain.errors import InvalidArgument, ProviderError
from providers import hypervisor
from providers.vsphere import bulk
from providers.vsphere.connection import VCenterSettings, sessions
from providers.vsphere.host import VSphereHost
from tests.peers import vcsim


def test_discovery_describes_each_vm_with_controllers_disks_and_nics(vcenter: vcsim.Vcsim) -> None:
    found = hypervisor.connect("vmware", vcenter.connection()).discover()

    # The default simulator: 2 VMs in its one cluster, both powered on.
    assert [vm["name"] for vm in found] == ["DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1"]
    vm = found[0]
    assert (vm["state"], vm["vcpus"], vm["memory_bytes"], vm["xml"]) == ("Running", 1, 32 * 2**20, "")
    extras = dict(vm)
    assert extras["moref"].startswith("vm-")
    assert extras["datacenter"] == "DC0"
    assert extras["cluster"] == "DC0_C0"
    assert extras["esx_host"].startswith("DC0_C0_H")
    assert extras["vmx_path"] == "[LocalDS_0] DC0_C0_RP0_VM0/DC0_C0_RP0_VM0.vmx"
    assert (extras["power_state"], extras["cbt_enabled"]) == ("poweredOn", False)
    assert len(vm["uuid"]) == 36
    assert vm["uuid"] != extras["bios_uuid"]
    assert [(c["type"], c["model"], c["index"]) for c in vm["controllers"]] == [
        ("ide", "ide", 0),
        ("ide", "ide", 1),
        ("scsi", "pvscsi", 0),
    ]
    scsi_key = vm["controllers"][2]["key"]  # type: ignore[typeddict-item]
    [disk] = vm["disks"]  # the CD-ROM is no disk
    assert {k: disk[k] for k in ("target", "bus", "device", "path", "format", "size_bytes")} == {  # type: ignore[literal-required]
        "target": "scsi0:0",
        "bus": "scsi",
        "device": "disk",
        "path": "[LocalDS_0] DC0_C0_RP0_VM0/disk1.vmdk",
        "format": "vmdk",
        "size_bytes": 2**20,
    }
    more = dict(disk)
    assert (more["controller_key"], more["unit"], more["datastore"]) == (scsi_key, 0, "LocalDS_0")
    assert Path(more["datastore_url"]).is_dir()  # the simulator's datastores are local folders
    [nic] = vm["nics"]
    assert dict(nic) | {"key": 0} == {
        "mac": nic["mac"],
        "kind": "dvportgroup",
        "source": "DC0_DVPG0",
        "model": "e1000",
        "key": 0,
        "vlan": 0,
        "portgroup_key": dict(nic)["portgroup_key"],
    }
    assert dict(nic)["portgroup_key"].startswith("dvportgroup-")


def test_scope_is_the_named_datacenter_and_cluster(vcsim_binary: Path) -> None:
    with vcsim.running(vcsim_binary, datacenters=2, clusters=2, vms_per_host=1) as sim:
        try:
            everything = VSphereHost(sim.connection(datacenter="DC1")).discover()
            one_cluster = VSphereHost(sim.connection(datacenter="DC1", cluster="DC1_C1")).discover()
            with pytest.raises(ProviderError, match="cluster 'nope' not found in the datacenter"):
                VSphereHost(sim.connection(datacenter="DC1", cluster="nope")).discover()
            with pytest.raises(ProviderError, match=r"datacenter 'DC9' not found \(vCenter has: DC0, DC1\)"):
                VSphereHost(sim.connection(datacenter="DC9")).discover()
        finally:
            sessions.close_all()
    assert {dict(vm)["datacenter"] for vm in everything} == {"DC1"}
    assert {dict(vm)["cluster"] for vm in everything} == {"DC1_C0", "DC1_C1"}
    assert [vm["name"] for vm in one_cluster] == ["DC1_C1_RP0_VM0"]


def test_discovery_takes_the_same_few_soap_calls_for_ten_or_a_hundred_vms(
    vcsim_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    request = http.client.HTTPConnection.request

    def counted(
        self: http.client.HTTPConnection, method: str, url: str, body: Any = None, *rest: Any, **kw: Any
    ) -> None:
        # Every SOAP call, pyVmomi's and the bulk reads' alike, is one POST naming its method.
        named = re.search(rb"<(?:\w+:)?Body[^>]*><(\w+)", body or b"")
        calls.append(named.group(1).decode() if named else f"{method} {url}")
        request(self, method, url, body, *rest, **kw)

    monkeypatch.setattr(http.client.HTTPConnection, "request", counted)
    counts = {}
    for vms in (10, 100):
        with vcsim.running(vcsim_binary, hosts=2, vms_per_host=vms) as sim:
            try:
                driver = VSphereHost(sim.connection())
                driver.discover()  # logs in; then count one discovery alone
                calls.clear()
                assert len(driver.discover()) == vms
                counts[vms] = list(calls)
            finally:
                sessions.close_all()
    assert counts[10] == counts[100]
    # The service content (a property fetch), then three container views (the datacenters;
    # the datacenter's hosts, datastores and networks; its VMs), each read in one
    # RetrievePropertiesEx.
    assert counts[100] == [
        "Fetch",
        *["CreateContainerView", "RetrievePropertiesEx", "DestroyView"] * 3,
    ]


def test_connection_shows_no_password_even_when_sealed(vcenter: vcsim.Vcsim) -> None:
    checked = VSphereHost.check_connection(vcenter.connection(datacenter="DC0"))
    assert checked["password"] == vcenter.password  # the core seals it before storing
    sealed = {**checked, "password": {"sealed": "gAAAA..."}}
    for shown in (VSphereHost.public_connection(checked), VSphereHost.public_connection(sealed)):
        assert shown["password"] == "********"
        assert shown["url"] == vcenter.url
        assert shown["datacenter"] == "DC0"
    assert VSphereHost.secret_settings == frozenset({"password"})
    assert VSphereHost.connection_warnings(checked) == []
    absent = VSphereHost.connection_warnings({**checked, "ca_file": "/nonexistent/ca.pem"})
    assert absent
    assert "ca_file" in absent[0]
    with pytest.raises(InvalidArgument) as bad:
        VSphereHost.check_connection({**checked, "password": ""})
    assert bad.value.field == "connection.password"


def test_bulk_reads_say_vcenters_fault(vcenter: vcsim.Vcsim) -> None:
    session = sessions.get(VCenterSettings.from_config(vcenter.connection()))
    content = session.service_instance().content
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    assert len(list(bulk.retrieve(session, content, view, {"VirtualMachine": ["name"]}))) == 2
    view.DestroyView()
    with pytest.raises(
        ProviderError, match=r"vCenter 127\.0\.0\.1: reading the inventory: ManagedObjectNotFound"
    ):
        list(bulk.retrieve(session, content, view, {"VirtualMachine": ["name"]}))

    # The view was the call's own: the driver's discovery is untouched.
    assert len(VSphereHost(vcenter.connection()).discover()) == 2


# vCenter's answer to a call on a session it ended (the simulator answers property reads
# without one, so this is vCenter's own wording).
EXPIRED = b"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/"
 xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode>
<faultstring>The session is not authenticated.</faultstring>
<detail><NotAuthenticatedFault xmlns="urn:vim25" xsi:type="NotAuthenticated">
<object type="PropertyCollector">propertyCollector</object><privilegeId>System.View</privilegeId>
</NotAuthenticatedFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"""


def test_an_ended_session_is_not_authenticated_so_the_session_logs_in_again() -> None:
    with pytest.raises(vim.fault.NotAuthenticated):
        bulk.returnval("vc.example.com", EXPIRED)


def test_an_answer_with_a_document_type_is_refused_unparsed() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(ProviderError, match=r"vCenter vc\.example\.com: its answer carries a document type"):
        bulk.returnval("vc.example.com", bomb)
