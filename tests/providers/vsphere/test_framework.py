"""The vsphere provider through the framework: a VM on a vCenter host record (reached with the
record's connection, the provider has no ``hosts`` entry) backed up as a restore point, and a
vCenter that goes away in the middle of a backup: the job fails with a retryable error naming
vCenter, and the restore point is never BackedUp."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.domain.models import Backup, BackupStatus, Host, JobState
from orchestrator.usecases import assignments, backup_providers, backups, inventory
from providers.vsphere.connection import VCenterSettings, sessions
from tests.conftest import World, import_offering
from tests.orchestrator.usecases.test_ingest import run
from tests.peers.vcsim import Vcsim
from tests.providers.vsphere.simvm import MiB, Sim

VM0 = "DC0_C0_RP0_VM0"


@pytest.fixture
def sim(vcenter: Vcsim) -> Iterator[Sim]:
    s = Sim(vcenter)
    yield s
    s.close()


@pytest.fixture
def protected(world: World, vcenter: Vcsim, sim: Sim, tmp_path: Path) -> tuple[str, str]:
    """(VM id, offering id) of the simulator's first VM, registered as discovery records it."""
    machine = sim.vm(VM0)
    sim.write_disk(machine, sim.disk_paths(machine)[0], os.urandom(8 * MiB))
    ref = sim.ref(machine)
    with world.core.scope(world.admin) as s:
        host = inventory.create_host(s, zone="zone1", name="vcenter1", hypervisor="vmware")
        # As the host record keeps it (the password in clear here: sealing is ingestion's).
        host.connection = dict(vcenter.connection())
        volumes = [{"pool": "pool1", "size": v.size, "format": "vmdk", "type": v.type} for v in ref.volumes]
        vm = inventory.register_vm(
            s,
            name=VM0,
            account="alice",
            zone="zone1",
            host="vcenter1",
            volumes=volumes,
            vm_id=ref.id,
            details=ref.details,
        )
        # Datastore paths, as an import records them (registering takes file paths only).
        for volume, disk in zip(vm.live_volumes, ref.volumes, strict=True):
            volume.path = disk.path
        config = {"repository": str(tmp_path / "repo"), "chunk_size": 256 * 1024, "fsync": False}
        provider = backup_providers.add(s, name="vs", driver="vsphere", config=config).id
        vm_id = vm.id
    offering = import_offering(world.core, world.admin, provider, "vs-daily", external_id="nas-daily")
    with world.core.scope(world.admin) as s:
        assignments.assign(s, vm_id, offering)
    return vm_id, offering


def _point_status(world: World, vm_id: str) -> list[BackupStatus]:
    with world.core.db.session() as session:
        return [b.status for b in session.query(Backup).filter(Backup.vm_id == vm_id)]


def test_a_vm_on_a_vcenter_host_is_backed_up(world: World, sim: Sim, protected: tuple[str, str]) -> None:
    vm_id, _ = protected

    job = run(world, lambda s: backups.create_backup(s, vm_id))

    assert job["state"] is JobState.SUCCEEDED, job["error"]
    assert _point_status(world, vm_id) == [BackupStatus.BACKED_UP]
    assert sim.snapshot_names(sim.vm(VM0)) == []
    with world.core.db.session() as session:
        assert session.query(Host).filter(Host.name == "vcenter1").one().hypervisor.value == "vmware"


def test_vcenter_gone_mid_backup_fails_the_job_and_never_records_the_point(
    world: World, vcenter: Vcsim, protected: tuple[str, str]
) -> None:
    vm_id, _ = protected
    stub = sessions.get(VCenterSettings.from_config(vcenter.connection())).service_instance()._stub
    real = stub.InvokeMethod

    def invoke(mo: Any, info: Any, args: Any, outerStub: Any = None) -> Any:
        result = real(mo, info, args, outerStub)
        if info.wsdlName == "CreateSnapshot_Task":
            # vCenter goes away once the snapshot is being taken: the reads find nobody.
            os.kill(vcenter.pid, signal.SIGKILL)
        return result

    stub.InvokeMethod = invoke
    job = run(world, lambda s: backups.create_backup(s, vm_id))

    assert job["state"] is not JobState.SUCCEEDED
    assert "vCenter 127.0.0.1" in (job["error"] or "")
    assert "Traceback" not in (job["error"] or "")
    assert BackupStatus.BACKED_UP not in _point_status(world, vm_id)
