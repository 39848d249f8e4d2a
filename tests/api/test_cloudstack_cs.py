"""The real CloudStack client (``cs``) drives the backup commands against a live server."""

from __future__ import annotations

import pytest
from cs import CloudStack, CloudStackApiException


def client(server, who: str, **kw) -> CloudStack:
    keys = server.keys[who]
    return CloudStack(
        endpoint=server.endpoint,
        key=keys.apikey,
        secret=keys.secretkey,
        fetch_result=True,
        job_timeout=30,
        **kw,
    )


def test_list_backup_offerings_as_a_user(server, world):
    listing = client(server, "alice").listBackupOfferings()
    names = {o["name"] for o in listing["backupoffering"]}
    assert names == {"gold", "bronze"}
    assert listing["count"] == 2


def test_create_backup_waits_for_the_job_and_answers_the_backup(server, world):
    result = client(server, "alice").createBackup(virtualmachineid=world.alice_vm)
    assert result["backup"]["status"] == "BackedUp"
    assert result["backup"]["virtualmachineid"] == world.alice_vm
    listed = client(server, "alice").listBackups(virtualmachineid=world.alice_vm)
    assert [b["id"] for b in listed["backup"]] == [result["backup"]["id"]]


def test_post_method_works_too(server, world):
    result = client(server, "alice", method="post").createBackup(virtualmachineid=world.alice_vm)
    assert result["backup"]["status"] == "BackedUp"


def test_async_job_can_be_polled_by_hand(server, world):
    cs = client(server, "alice")
    cs.fetch_result = False
    started = cs.createBackup(virtualmachineid=world.alice_vm)
    assert set(started) >= {"jobid", "id"}
    cs.fetch_result = True
    done = cs._jobresult(started["jobid"])
    assert done["backup"]["id"] == started["id"]


def test_a_users_error_is_raised_by_cs_with_code_and_text(server, world):
    with pytest.raises(CloudStackApiException) as err:
        client(server, "bob").createBackup(virtualmachineid=world.alice_vm)
    assert err.value.error["errorcode"] == 431
    assert "not found" in err.value.error["errortext"]


def test_restore_backup_of_a_running_vm_needs_stop(server, world):
    alice = client(server, "alice")
    point = alice.createBackup(virtualmachineid=world.alice_vm)["backup"]
    with pytest.raises(CloudStackApiException) as err:
        alice.restoreBackup(id=point["id"])
    assert err.value.error["errorcode"] == 536
    assert "virtual machine web1 is Running" in err.value.error["errortext"]
    assert alice.restoreBackup(id=point["id"], stop="true")["success"] is True


def test_user_driven_backup_refused_on_bronze(server, world):
    client(server, "admin").assignVirtualMachineToBackupOffering(
        virtualmachineid=world.alice_vm2, backupofferingid=world.bronze_id
    )
    with pytest.raises(CloudStackApiException) as err:
        client(server, "alice").createBackup(virtualmachineid=world.alice_vm2)
    assert err.value.error["errorcode"] == 531
    assert "user-driven" in err.value.error["errortext"]


def test_bad_signature_is_401(server, world):
    keys = server.keys["alice"]
    cs = CloudStack(endpoint=server.endpoint, key=keys.apikey, secret="not-the-secret")
    with pytest.raises(CloudStackApiException) as err:
        cs.listBackups()
    assert err.value.error["errorcode"] == 401


def test_admin_commands_are_hidden_from_users(server, world):
    user_apis = {a["name"] for a in client(server, "alice").listApis()["api"]}
    admin_apis = {a["name"] for a in client(server, "admin").listApis()["api"]}
    assert "createBackup" in user_apis
    assert "importBackupOffering" not in user_apis
    assert "importBackupOffering" in admin_apis
    with pytest.raises(CloudStackApiException) as err:
        client(server, "alice").importBackupOffering(
            name="x", zoneid=world.zone_id, externalid="dummy-gold", description="x"
        )
    assert err.value.error["errorcode"] == 531


def test_every_backup_command_through_cs(server, world):
    admin, alice = client(server, "admin"), client(server, "alice")
    assert {p["name"] for p in admin.listBackupProviders()["providers"]} == {"dummy"}
    offered = admin.listBackupProviderOfferings(zoneid=world.zone_id)["backupoffering"]
    assert "dummy-silver" in {o["externalid"] for o in offered}
    silver = admin.importBackupOffering(
        name="silver",
        description="12h",
        zoneid=world.zone_id,
        externalid="dummy-silver",
        allowuserdrivenbackups=True,
    )["backupoffering"]
    updated = admin.updateBackupOffering(id=silver["id"], description="every 12 hours")["backupoffering"]
    assert updated["description"] == "every 12 hours"
    alice.assignVirtualMachineToBackupOffering(
        virtualmachineid=world.alice_vm2, backupofferingid=silver["id"]
    )
    vms = alice.listVirtualMachines(id=world.alice_vm2)["virtualmachine"]
    assert vms[0]["backupofferingid"] == silver["id"]
    schedule = alice.createBackupSchedule(
        virtualmachineid=world.alice_vm2,
        intervaltype="DAILY",
        schedule="30:02",
        timezone="Europe/Berlin",
        maxbackups=3,
    )["backupschedule"]
    assert schedule["intervaltype"] == "DAILY"
    alice.updateBackupSchedule(virtualmachineid=world.alice_vm2, intervaltype="DAILY", schedule="45:03")
    listed = alice.listBackupSchedule(virtualmachineid=world.alice_vm2)["backupschedule"]
    assert [s["schedule"] for s in listed] == ["45:03"]
    point = alice.createBackup(virtualmachineid=world.alice_vm2)["backup"]
    volumes = alice.listVolumes(virtualmachineid=world.alice_vm)["volume"]
    restored = alice.restoreVolumeFromBackupAndAttachToVM(
        id=point["id"], volumeid=point["volumes"][1]["uuid"], virtualmachineid=world.alice_vm
    )
    assert restored["volume"]["virtualmachineid"] == world.alice_vm
    assert len(alice.listVolumes(virtualmachineid=world.alice_vm)["volume"]) == len(volumes) + 1
    assert alice.restoreBackup(id=point["id"])["success"] is True
    jobs = alice.listAsyncJobs()["asyncjobs"]
    assert {j["cmd"] for j in jobs} >= {"backup", "restore_vm", "restore_volume"}
    assert all(j["jobstatus"] == 1 for j in jobs)
    assert alice.deleteBackup(id=point["id"])["success"] is True
    assert alice.listBackups(virtualmachineid=world.alice_vm2)["count"] == 0
    alice.deleteBackupSchedule(virtualmachineid=world.alice_vm2)
    assert alice.listBackupSchedule(virtualmachineid=world.alice_vm2)["count"] == 0
    alice.removeVirtualMachineFromBackupOffering(virtualmachineid=world.alice_vm2, forced=True)
    assert admin.deleteBackupOffering(id=silver["id"])["success"] is True
    assert silver["id"] not in {o["id"] for o in alice.listBackupOfferings()["backupoffering"]}


def test_cs_command_line(server, world):
    import json
    import os
    import shutil
    import subprocess

    keys = server.keys["alice"]
    env = {
        **os.environ,
        "CLOUDSTACK_ENDPOINT": server.endpoint,
        "CLOUDSTACK_KEY": keys.apikey,
        "CLOUDSTACK_SECRET": keys.secretkey,
        "CLOUDSTACK_POLL_INTERVAL": "0.1",
    }
    cs_cli = shutil.which("cs") or os.path.join(os.path.dirname(os.sys.executable), "cs")
    made = subprocess.run(
        [cs_cli, "createBackup", f"virtualmachineid={world.alice_vm}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(made.stdout)["backup"]["status"] == "BackedUp"
    listed = subprocess.run(
        [cs_cli, "listBackups"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(listed.stdout)["count"] == 1
    failed = subprocess.run(
        [cs_cli, "createBackup", f"virtualmachineid={world.bob_vm}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode != 0
    assert "not found" in failed.stderr + failed.stdout


def test_create_vm_from_backup(server, world):
    alice = client(server, "alice")
    point = alice.createBackup(virtualmachineid=world.alice_vm)["backup"]
    made = alice.createVMFromBackup(backupid=point["id"], name="web1-clone")["virtualmachine"]
    assert made["name"] == "web1-clone"
    assert made["id"] != world.alice_vm
    assert len(alice.listVolumes(virtualmachineid=made["id"])["volume"]) == len(point["volumes"])
