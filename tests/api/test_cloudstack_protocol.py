"""The CloudStack endpoint's protocol edges: signatures, expiry, parameters, codes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import requests

from api.auth import EXPIRES_FORMAT, sign
from orchestrator.usecases import backup_providers
from tests.api.rest_helpers import expiring


def call(server, who: str | None, secret: str | None = None, method: str = "get", **params):
    """A request signed as cs and CloudMonkey sign it (version 3, expiring); a parameter
    given as None is left out."""
    params = {"response": "json", "signatureVersion": "3", "expires": future(), **params}
    params = {k: v for k, v in params.items() if v is not None}
    if who:
        keys = server.keys[who]
        params["apiKey"] = keys.apikey
        params["signature"] = sign(params, secret or keys.secretkey)
    send = requests.get if method == "get" else requests.post
    kw = {"params": params} if method == "get" else {"data": params}
    return send(server.endpoint, timeout=10, **kw)


def future(minutes: int = 5) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime(EXPIRES_FORMAT)


def test_signed_request_lists_zones(server, world):
    response = call(server, "alice", command="listZones")
    assert response.status_code == 200
    body = response.json()["listzonesresponse"]
    assert body["count"] == 2
    assert {z["name"] for z in body["zone"]} == {"zone1", "zone2"}


def test_unsigned_request_is_401(server, world):
    response = call(server, None, command="listZones")
    assert response.status_code == 401
    assert response.json()["listzonesresponse"]["errorcode"] == 401


def test_wrong_secret_is_401(server, world):
    response = call(server, "alice", secret="wrong", command="listZones")
    assert response.status_code == 401
    assert "signature does not match" in response.json()["listzonesresponse"]["errortext"]


def test_tampered_parameter_breaks_the_signature(server, world):
    keys = server.keys["alice"]
    params = {"response": "json", "command": "listBackups", "apiKey": keys.apikey, **expiring()}
    params["signature"] = sign(params, keys.secretkey)
    params["virtualmachineid"] = world.bob_vm  # added after signing
    response = requests.get(server.endpoint, params=params, timeout=10)
    assert response.status_code == 401


def test_expired_request_is_401_and_a_future_one_passes(server, world):
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime(EXPIRES_FORMAT)
    expired = call(server, "alice", command="listZones", expires=past)
    assert expired.status_code == 401
    assert "expired" in expired.json()["listzonesresponse"]["errortext"]
    fresh = call(server, "alice", command="listZones", expires=future())
    assert fresh.status_code == 200


def test_version_3_without_expires_is_401(server, world):
    response = call(server, "alice", command="listZones", expires=None)
    assert response.status_code == 401


def test_a_request_without_version_3_is_401_as_it_would_never_expire(server, world):
    response = call(server, "alice", command="listZones", signatureVersion=None, expires=None)
    assert response.status_code == 401
    assert "signatureversion=3" in response.json()["listzonesresponse"]["errortext"]


def test_old_clients_can_be_allowed_to_sign_without_version_3(server, world, monkeypatch):
    lenient = replace(world.core.settings, signature_v3_required=False)
    monkeypatch.setattr(world.core, "settings", lenient)
    response = call(server, "alice", command="listZones", signatureVersion=None, expires=None)
    assert response.status_code == 200


def test_expires_further_ahead_than_the_maximum_lifetime_is_401(server, world, monkeypatch):
    a_day = call(server, "alice", command="listZones", expires=future(minutes=24 * 60))
    assert a_day.status_code == 401
    assert "too far ahead" in a_day.json()["listzonesresponse"]["errortext"]
    assert call(server, "alice", command="listZones", expires=future(minutes=10)).status_code == 200
    longer = replace(world.core.settings, signature_max_lifetime_seconds=2 * 3600)
    monkeypatch.setattr(world.core, "settings", longer)
    assert call(server, "alice", command="listZones", expires=future(minutes=90)).status_code == 200
    assert call(server, "alice", command="listZones", expires=future(minutes=24 * 60)).status_code == 401


def test_values_with_spaces_and_symbols_sign_like_cloudstack(server, world):
    response = call(server, "alice", command="listBackups", keyword="web 1+2/ä*")
    assert response.status_code == 200
    assert response.json()["listbackupsresponse"]["count"] == 0


def test_missing_parameter_is_431_naming_it(server, world):
    response = call(server, "alice", command="createBackup")
    assert response.status_code == 431
    body = response.json()["createbackupresponse"]
    assert body["errorcode"] == 431
    assert "virtualmachineid" in body["errortext"]


def test_wrong_type_is_431(server, world):
    response = call(server, "alice", command="listBackups", page="first")
    assert response.status_code == 431
    assert "page" in response.json()["listbackupsresponse"]["errortext"]


def test_unknown_command_is_432(server, world):
    response = call(server, "alice", command="launchRockets")
    assert response.status_code == 432
    assert "does not exist" in response.json()["launchrocketsresponse"]["errortext"]


def test_missing_command_is_431(server, world):
    response = call(server, "alice")
    assert response.status_code == 431


def test_xml_responses_are_refused_clearly(server, world):
    keys = server.keys["alice"]
    params = {"response": "xml", "command": "listZones", "apiKey": keys.apikey, **expiring()}
    params["signature"] = sign(params, keys.secretkey)
    response = requests.get(server.endpoint, params=params, timeout=10)
    assert response.status_code == 431
    assert "json" in response.text


def test_unsupported_command_is_hidden_and_refused(server, world):
    # Every provider in the world supports restore_volume; disable it and the command goes.
    with world.core.scope(world.admin) as s:
        backup_providers.set_enabled(s, world.provider_id, False)
    apis = call(server, "alice", command="listApis").json()["listapisresponse"]["api"]
    assert "restoreVolumeFromBackupAndAttachToVM" not in {a["name"] for a in apis}
    response = call(
        server,
        "alice",
        command="restoreVolumeFromBackupAndAttachToVM",
        id="x",
        volumeid="y",
        virtualmachineid=world.alice_vm,
    )
    assert response.status_code == 432
    assert "restore_volume" in response.json()["restorevolumefrombackupandattachtovmresponse"]["errortext"]


def test_tenants_are_isolated(server, world):
    made = call(server, "bob", command="createBackup", virtualmachineid=world.bob_vm).json()
    point = made["createbackupresponse"]["id"]
    listed = call(server, "alice", command="listBackups", id=point).json()["listbackupsresponse"]
    assert listed["count"] == 0
    for command, params in [
        ("restoreBackup", {"id": point}),
        ("deleteBackup", {"id": point}),
        (
            "createBackupSchedule",
            {"virtualmachineid": world.bob_vm, "intervaltype": "DAILY", "schedule": "0:1", "timezone": "UTC"},
        ),
        ("listVolumes", {"virtualmachineid": world.bob_vm}),
    ]:
        response = call(server, "alice", command=command, **params)
        assert response.status_code == 431, command
        assert "not found" in response.text, command


def test_list_volumes_without_a_vm_lists_all_of_the_callers_and_only_those(server, world):
    alice = call(server, "alice", command="listVolumes").json()["listvolumesresponse"]
    assert alice["count"] == 4  # web1 and db1, two volumes each
    assert {v["virtualmachineid"] for v in alice["volume"]} == {world.alice_vm, world.alice_vm2}
    admin = call(server, "admin", command="listVolumes").json()["listvolumesresponse"]
    assert admin["count"] == 6


def test_a_change_with_an_unknown_parameter_is_refused_and_undone(server, world):
    response = call(
        server,
        "admin",
        command="importBackupOffering",
        zoneid=world.zone_id,
        externalid="dummy-silver",
        name="silver-typo",
        description="windows is not a parameter here",
        windows="20:00-06:00",
    )
    assert response.status_code == 431
    assert "Unknown parameter(s) windows" in response.json()["importbackupofferingresponse"]["errortext"]
    listed = call(server, "admin", command="listBackupOfferings", keyword="silver-typo").json()
    assert listed["listbackupofferingsresponse"].get("count", 0) == 0


def test_a_listing_ignores_filters_it_does_not_know(server, world):
    response = call(server, "alice", command="listBackups", listall="true")
    assert response.status_code == 200
