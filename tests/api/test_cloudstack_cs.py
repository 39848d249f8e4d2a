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
