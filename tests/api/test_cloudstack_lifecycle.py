"""CloudStack commands of the operator's lifecycle: accounts (list, lock, enable, delete),
hosts and storage pools (delete, refused while in use with 536)."""

from __future__ import annotations

from orchestrator.usecases import accounts
from tests.api.test_cloudstack_protocol import call


def _ok(response, name):
    assert response.status_code == 200, response.text
    return response.json()[f"{name}response"]


def _refused(response, name, code):
    assert response.status_code == code, response.text
    return response.json()[f"{name}response"]["errortext"]


def test_list_accounts_as_admin_and_as_a_tenant(server, world):
    listed = _ok(call(server, "admin", command="listAccounts"), "listaccounts")
    assert {(a["name"], a["accounttype"], a["state"]) for a in listed["account"]} == {
        ("admin", 1, "enabled"),
        ("alice", 0, "enabled"),
        ("bob", 0, "enabled"),
    }
    mine = _ok(call(server, "alice", command="listAccounts"), "listaccounts")
    assert [a["name"] for a in mine["account"]] == ["alice"]


def test_a_locked_account_cannot_sign_until_enabled(server, world):
    locked = _ok(
        call(server, "admin", command="disableAccount", account="bob", lock="true"), "disableaccount"
    )
    assert locked["account"]["state"] == "locked"
    _refused(call(server, "bob", command="listZones"), "listzones", 401)

    _ok(call(server, "admin", command="enableAccount", id=world.bob.account_id), "enableaccount")
    _ok(call(server, "bob", command="listZones"), "listzones")


def test_disabling_without_lock_is_unsupported_and_changes_nothing(server, world):
    text = _refused(call(server, "admin", command="disableAccount", account="bob"), "disableaccount", 432)
    assert "lock=true" in text
    _ok(call(server, "bob", command="listZones"), "listzones")


def test_tenants_cannot_lock_accounts(server, world):
    _refused(
        call(server, "alice", command="disableAccount", account="bob", lock="true"), "disableaccount", 531
    )


def test_delete_account_is_refused_while_it_owns_vms(server, world):
    text = _refused(
        call(server, "admin", command="deleteAccount", id=world.bob.account_id), "deleteaccount", 536
    )
    assert "1 virtual machine" in text

    with world.core.scope(world.admin) as s:
        carol = accounts.create_account(s, "carol").id
    _ok(call(server, "admin", command="deleteAccount", id=carol), "deleteaccount")


def test_delete_host_and_pool_refused_while_in_use(server, world):
    assert "in use" in _refused(call(server, "admin", command="deleteHost", id="kvm1"), "deletehost", 536)
    assert "in use" in _refused(
        call(server, "admin", command="deleteStoragePool", id=world.pool_id), "deletestoragepool", 536
    )
    _ok(call(server, "admin", command="deleteHost", id="kvm2"), "deletehost")
    _ok(call(server, "admin", command="deleteStoragePool", id="pool2"), "deletestoragepool")
