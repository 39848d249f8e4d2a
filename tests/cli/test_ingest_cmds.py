"""``host connect``, ``vm unmanaged`` and ``vm import`` against libvirt's test driver."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_backupctl import cloud, data, run  # noqa: F401  (fixtures)
from tests.peers import vcsim
from tests.providers.kvm.fixtures.rebuilt_node import rebuilt_node
from tests.providers.kvm.test_domains import virsh  # noqa: F401  (a failure in CI without virsh)
from tests.providers.vsphere.conftest import vcenter, vcsim_binary  # noqa: F401  (fixtures)

NODE = Path(__file__).parents[1] / "providers" / "kvm" / "fixtures" / "node.xml"
WEB1 = "6e0d9a84-3b1f-4c1e-9a57-0c3a2f1e7b01"
RESTORED = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d05"


def test_connect_discover_and_import(run, cloud, virsh):  # noqa: F811
    run("pool", "register", "images", "--zone", "zone-1", "--path", "/var/lib/libvirt/images")
    host = data(run("host", "connect", "kvm-01", "--local", "--libvirt-uri", f"test://{NODE}", "--json"))
    assert host["connection"] == {"transport": "local", "libvirt_uri": f"test://{NODE}"}

    table = run("vm", "unmanaged", "--host", "kvm-01").stdout
    assert "web1" in table
    assert "vda=/var/lib/libvirt/images/web1-root.qcow2" in table
    found = data(run("vm", "unmanaged", "--host", "kvm-01", "--json"))
    assert sorted(vm["name"] for vm in found) == ["db1", "web1"]

    job = data(run("vm", "import", WEB1, "--host", "kvm-01", "--account", "alice", "--json"))
    assert job["result"]["vm_id"] == WEB1
    vm = data(run("vm", "show", WEB1, "--json", as_="alice"))
    assert [v["type"] for v in vm["volumes"]] == ["ROOT", "DATADISK"]
    again = run("vm", "import", WEB1, "--host", "kvm-01", "--account", "alice", ok=False)
    assert again.exit_code == 4
    assert "already in the inventory" in again.output


def test_connect_needs_one_way_to_reach_the_host(run, cloud):  # noqa: F811
    neither = run("host", "connect", "kvm-01", ok=False)
    assert neither.exit_code == 2
    assert "give one of --ssh" in neither.output
    refused = run("host", "connect", "kvm-01", "--ssh", "root@10.0.0.5", "--json", ok=False)
    assert refused.exit_code == 2
    assert "connection." in refused.output


def test_rediscover_follows_a_vm_whose_domain_was_rebuilt(run, cloud, virsh, tmp_path):  # noqa: F811
    run("pool", "register", "images", "--zone", "zone-1", "--path", "/var/lib/libvirt/images")
    run("host", "connect", "kvm-01", "--local", "--libvirt-uri", f"test://{NODE}")
    run("vm", "import", WEB1, "--host", "kvm-01", "--account", "alice")
    new_root = "/var/lib/libvirt/images/restored/web1-root.qcow2"
    rebuilt = rebuilt_node(tmp_path / "node", uuid=RESTORED, images={"vda": new_root})
    run("host", "connect", "kvm-01", "--local", "--libvirt-uri", rebuilt)

    table = run("host", "rediscover", "kvm-01").stdout
    assert f"{WEB1} -> {RESTORED}" in table
    assert f"/var/lib/libvirt/images/web1-root.qcow2 -> {new_root}" in table
    vm = data(run("vm", "show", WEB1, "--json", as_="alice"))
    assert [v["path"] for v in vm["volumes"]] == [new_root, "/var/lib/libvirt/images/web1-data.raw"]
    assert data(run("host", "rediscover", "kvm-01", "--json")) == []  # nothing left to follow
    unmanaged = data(run("vm", "unmanaged", "--host", "kvm-01", "--json"))
    assert [found["name"] for found in unmanaged] == ["db1"]


def test_a_vm_that_cannot_be_followed_is_reported(run, cloud, virsh, tmp_path):  # noqa: F811
    run("pool", "register", "images", "--zone", "zone-1", "--path", "/var/lib/libvirt/images")
    run("host", "connect", "kvm-01", "--local", "--libvirt-uri", f"test://{NODE}")
    run("vm", "import", WEB1, "--host", "kvm-01", "--account", "alice")
    rebuilt = rebuilt_node(tmp_path / "node", uuid=RESTORED, without=("vdb",))
    run("host", "connect", "kvm-01", "--local", "--libvirt-uri", rebuilt)

    result = run("host", "rediscover", "kvm-01")
    assert "(none)" in result.stdout
    assert f"not re-linked: web1 ({WEB1}): volume" in result.stderr
    assert "was on vdb, which domain web1 has no disk for" in result.stderr


def test_connect_warns_of_key_files_not_on_this_machine(run, cloud, tmp_path):  # noqa: F811
    ssh = ("host", "connect", "kvm-01", "--ssh", "root@10.0.0.5")
    stored = run(*ssh, "--key-file", "/nonexistent", "--known-hosts", "/nonexistent-known-hosts")
    assert "warning: key_file /nonexistent is not a file on this machine" in stored.stderr
    assert "warning: known_hosts /nonexistent-known-hosts is not a file on this machine" in stored.stderr
    assert "holding the host's key" in stored.stderr
    accepting = ("--key-file", "/nonexistent", "--known-hosts", "/kh", "--accept-new-host-key")
    shown = data(run(*ssh, *accepting, "--json"))
    assert shown["connection"]["key_file"] == "/nonexistent"  # stored all the same
    assert len(shown["warnings"]) == 2
    assert "accept_new_host_key records the host's key at first contact" in shown["warnings"][1]

    key, known = tmp_path / "id_ed25519", tmp_path / "known_hosts"
    key.write_text("key"), known.write_text("")
    quiet = run(*ssh, "--key-file", str(key), "--known-hosts", str(known))
    assert "warning" not in quiet.stderr
    assert data(run(*ssh, "--key-file", str(key), "--known-hosts", str(known), "--json"))["warnings"] == []


def test_connect_refuses_a_relative_key_path(run, cloud):  # noqa: F811
    refused = run(
        "host",
        "connect",
        "kvm-01",
        "--ssh",
        "10.0.0.5",
        "--key-file",
        "id_ed25519",
        "--known-hosts",
        "/kh",
        ok=False,
    )
    assert refused.exit_code == 2
    assert "connection.key_file: must be an absolute path" in refused.output


def test_a_vcenter_is_connected_without_echoing_its_password_then_discovered_and_imported(
    run,  # noqa: F811
    cloud,  # noqa: F811
    vcenter: vcsim.Vcsim,  # noqa: F811
    tmp_path: Path,
) -> None:
    run("host", "register", "vc-01", "--zone", "zone-1", "--hypervisor", "vmware")
    run("pool", "register", "LocalDS_0", "--zone", "zone-1", "--path", "/vmfs/volumes/local0")
    secret = tmp_path / "password"
    secret.write_text(vcenter.password + "\n")
    vc = ("--vcenter", vcenter.url, "--username", vcenter.username, "--ca-file", str(vcenter.ca_file))
    connected = run("host", "connect", "vc-01", *vc, "--password-file", str(secret), "--cluster", "DC0_C0")
    shown = data(run("host", "connect", "vc-01", *vc, "--password-file", str(secret), "--json"))
    assert shown["connection"]["password"] == "********"
    assert shown["connection"]["url"] == vcenter.url
    listed = run("host", "list", "--json")
    assert vcenter.password not in connected.output + listed.output + run("audit", "--json").output
    no_user = run("host", "connect", "vc-01", "--vcenter", vcenter.url, ok=False)
    assert no_user.exit_code == 2
    assert "--vcenter needs --username" in no_user.output

    table = run("vm", "unmanaged", "--host", "vc-01").stdout
    assert "scsi0:0=[LocalDS_0] DC0_C0_RP0_VM0/disk1.vmdk" in table
    found = {vm["name"]: vm for vm in data(run("vm", "unmanaged", "--host", "vc-01", "--json"))}
    uuid = found["DC0_C0_RP0_VM0"]["uuid"]
    job = data(run("vm", "import", uuid, "--host", "vc-01", "--account", "alice", "--json"))
    assert job["result"]["vm_id"] == uuid
    vm = data(run("vm", "show", uuid, "--json", as_="alice"))
    assert [(v["type"], v["path"]) for v in vm["volumes"]] == [
        ("ROOT", "[LocalDS_0] DC0_C0_RP0_VM0/disk1.vmdk")
    ]
