"""listBackups pages: the total each page carries, the filters, and what a row shows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.domain.models import Backup, BackupStatus, utcnow
from orchestrator.usecases import accounts
from tests.api.test_cloudstack_protocol import call

VOLUME = {"id": "vol-1", "type": "ROOT", "size": 10, "path": "/srv/pool1/vol-1", "device_id": 0}


def _point(world, vm_id: str, vm_name: str, account, age_s: int, status=BackupStatus.BACKED_UP) -> Backup:
    return Backup(
        vm_id=vm_id,
        vm_name=vm_name,
        account_id=account.account_id,
        zone_id=world.zone_id,
        vm_metadata={"volumes": [VOLUME]},
        offering_id=world.gold_id,
        provider_id=world.provider_id,
        status=status,
        created_at=utcnow() - timedelta(seconds=age_s),
    )


@pytest.fixture
def points(world) -> dict[str, list[str]]:
    """alice: five live points of web1, newest first, and a removed one; bob: two of app1."""
    made = {
        "alice": [_point(world, world.alice_vm, "web_1", world.alice, age) for age in range(5)],
        "removed": [_point(world, world.alice_vm, "web_1", world.alice, 10, BackupStatus.REMOVED)],
        "bob": [_point(world, world.bob_vm, "webx1", world.bob, age) for age in range(2)],
    }
    with world.core.db.session() as session:
        session.add_all([p for group in made.values() for p in group])
    return {name: [p.id for p in group] for name, group in made.items()}


def _list(server, who: str, **params) -> dict:
    response = call(server, who, command="listBackups", **params)
    assert response.status_code == 200, response.text
    return response.json()["listbackupsresponse"]


def test_every_page_carries_the_total_and_pages_do_not_overlap(server, world, points):
    # Five live points: the removed one is neither listed nor counted.
    pages = [_list(server, "alice", pagesize="2", page=str(n)) for n in (1, 2, 3, 4)]

    assert [p["count"] for p in pages] == [5, 5, 5, 5]
    assert [len(p.get("backup", [])) for p in pages] == [2, 2, 1, 0]
    assert [b["id"] for p in pages for b in p.get("backup", [])] == points["alice"]


def test_a_vm_filter_counts_that_vm_only(server, world, points):
    listed = _list(server, "admin", virtualmachineid=world.bob_vm, pagesize="1")

    assert listed["count"] == 2
    assert [b["id"] for b in listed["backup"]] == points["bob"][:1]


def test_admin_lists_one_account_by_name_or_id(server, world, points):
    by_name = _list(server, "admin", account="bob", listall="true")
    by_id = _list(server, "admin", account=world.bob.account_id, listall="true")

    assert by_name["count"] == by_id["count"] == 2
    assert [b["id"] for b in by_name["backup"]] == [b["id"] for b in by_id["backup"]] == points["bob"]


def test_an_unknown_account_is_not_found_not_an_empty_list(server, world, points):
    response = call(server, "admin", command="listBackups", account="carol")

    assert response.status_code == 431
    assert "not found" in response.json()["listbackupsresponse"]["errortext"]


def test_keyword_wildcards_match_themselves(server, world, points):
    assert _list(server, "admin", keyword="b_1")["count"] == len(points["alice"])
    assert _list(server, "admin", keyword="%")["count"] == 0


def test_a_row_shows_its_offering_and_the_volumes_of_its_vm(server, world, points):
    row = _list(server, "alice", id=points["alice"][0])["backup"][0]

    shown = (row["backupofferingname"], row["virtualmachinename"], row["status"])
    assert shown == ("gold", "web_1", "BackedUp")
    assert row["volumes"] == [
        {"uuid": "vol-1", "type": "ROOT", "size": 10, "path": "/srv/pool1/vol-1", "deviceid": 0}
    ]


def test_a_revoked_key_fails_on_its_next_signed_request(server, world):
    assert call(server, "alice", command="listZones").status_code == 200

    with world.core.scope(world.alice) as scope:
        accounts.revoke_key(scope, server.keys["alice"].apikey)

    response = call(server, "alice", command="listZones")
    assert response.status_code == 401
    assert "revoked" in response.json()["listzonesresponse"]["errortext"]


def test_a_rotated_key_signs_and_the_old_one_stops(server, world):
    old = server.keys["alice"]
    assert call(server, "alice", command="listZones").status_code == 200
    with world.core.scope(world.alice) as scope:
        new = accounts.create_key(scope, "alice")
        accounts.revoke_key(scope, old.apikey)
    server.keys["rotated"] = type(old)(new.apikey, new.secretkey)

    assert call(server, "alice", command="listZones").status_code == 401
    assert call(server, "rotated", command="listZones").status_code == 200
