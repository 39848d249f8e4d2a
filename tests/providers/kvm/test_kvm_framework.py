"""The kvm provider through the framework, on a real libvirtd: a VM imported from its host,
reached with the host's inventory connection (the provider has no ``hosts`` entry), backed
up, restored to a new VM that the inventory records as its own new domain, and restored
after its domain was undefined, with the inventory following the domain defined again."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.domain.models import JobState, VirtualMachine
from orchestrator.usecases import assignments, backup_providers, backups, ingest, inventory, restores
from providers.kvm.domains import parse_domain_xml
from tests.conftest import World, import_offering
from tests.orchestrator.usecases.test_ingest import run
from tests.providers.kvm.fixtures.kvm_libvirt import (
    libvirtd,  # noqa: F401 - a session fixture used by the tests below
    virsh,
)
from tests.providers.kvm.fixtures.kvm_restore_domains import make_restore_domain


@pytest.fixture
def kvm_offering(world: World, tmp_path: Path, libvirtd: str) -> str:  # noqa: F811
    with world.core.scope(world.admin) as s:
        ingest.set_connection(s, "kvm1", {"transport": "local"})
        config = {"repository": str(tmp_path / "repo"), "chunk_size": 256 * 1024, "fsync": False}
        provider = backup_providers.add(s, name="kvm", driver="kvm", config=config).id
    return import_offering(world.core, world.admin, provider, "kvm-daily", external_id="nas-daily")


def _backed_up(world: World, vm_id: str, offering: str) -> str:
    with world.core.scope(world.admin) as s:
        assignments.assign(s, vm_id, offering)
    job = run(world, lambda s: backups.create_backup(s, vm_id))
    assert job["state"] is JobState.SUCCEEDED, job["error"]
    return job["result"]["backup_id"]


def test_restore_to_a_new_vm_records_the_new_domain(world: World, kvm_offering: str) -> None:
    with make_restore_domain(nic=True) as dom:
        with world.core.scope(world.admin) as s:
            inventory.create_pool(s, zone="zone1", name="work", path=str(dom.workdir))
        imported = run(world, lambda s: ingest.import_vm(s, host="kvm1", uuid=dom.uuid, account="alice"))
        assert imported["state"] is JobState.SUCCEEDED, imported["error"]
        point = _backed_up(world, dom.uuid, kvm_offering)
        name = f"{dom.name}-copy"
        try:
            job = run(world, lambda s: restores.restore_to_new_vm(s, point, name))
            assert job["state"] is JobState.SUCCEEDED, job["error"]
            copy_id = job["result"]["vm_id"]
            assert virsh("domuuid", name).stdout.strip() == copy_id
            with world.core.db.session() as session:
                copy = session.get(VirtualMachine, copy_id)
                assert copy is not None
                assert (copy.name, copy.details["instance_name"]) == (name, name)
                assert "domain" not in copy.details
                defined = parse_domain_xml(copy.details["xml"])
                assert (defined.name, defined.uuid) == (name, copy_id)
                paths = sorted(v.path for v in copy.live_volumes)
            assert sorted(d.path for d in defined.disks if d.device == "disk") == paths
            assert all(Path(p).exists() for p in paths)
            # Backing up the copy snapshots its own domain: the original's images are no disks of it.
            assert _backed_up(world, copy_id, kvm_offering)
        finally:
            virsh("undefine", name, check=False)


def test_a_vm_whose_domain_was_undefined_is_restored_and_followed(world: World, kvm_offering: str) -> None:
    with make_restore_domain() as dom:
        with world.core.scope(world.admin) as s:
            inventory.create_pool(s, zone="zone1", name="work", path=str(dom.workdir))
        imported = run(world, lambda s: ingest.import_vm(s, host="kvm1", uuid=dom.uuid, account="alice"))
        assert imported["state"] is JobState.SUCCEEDED, imported["error"]
        point = _backed_up(world, dom.uuid, kvm_offering)
        virsh("destroy", dom.name)
        virsh("undefine", dom.name)

        job = run(world, lambda s: restores.restore_vm(s, point, stop=True))

        assert job["state"] is JobState.SUCCEEDED, job["error"]
        assert (job["result"]["recreated"], job["result"]["relinked"]) == (False, True)
        assert virsh("domuuid", dom.name).stdout.strip() == dom.uuid
        with world.core.db.session() as session:
            vm = session.get(VirtualMachine, dom.uuid)
            assert vm is not None
            # The definition recorded is the one defined by the restore (shut off: no live ids).
            assert parse_domain_xml(vm.details["xml"]).uuid == dom.uuid
            assert " id=" not in vm.details["xml"].split(">", 1)[0]
