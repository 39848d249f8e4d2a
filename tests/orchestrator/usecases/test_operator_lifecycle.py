"""The operator's lifecycle of what it registered: changing and removing providers, storage
pools and hosts (refused while in use), and API keys and accounts (listed, disabled, enabled,
deleted), with tenants kept to their own keys."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from orchestrator.domain.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from orchestrator.domain.models import VirtualMachine
from orchestrator.domain.secrets import REDACTED, redact
from orchestrator.usecases import accounts, backup_providers, backups, inventory
from tests.conftest import add_provider


@contextmanager
def _refused(world, error, match):
    """A scope of the admin's in which the call must fail with ``error`` matching ``match``."""
    with pytest.raises(error, match=match), world.core.scope(world.admin) as s:
        yield s


def _raw_config(world, provider_id):
    """The configuration as the database holds it."""
    with world.core.db.session() as session:
        raw = session.execute(
            text("SELECT config FROM backup_providers WHERE id = :id"), {"id": provider_id}
        ).scalar_one()
    return raw if isinstance(raw, str) else json.dumps(raw)


def _driver_config(world, provider):
    with world.core.scope(world.admin) as s:
        return s.driver(backup_providers.find(s, provider)).config


# -- backup providers ----------------------------------------------------------------------------


def test_provider_secrets_are_sealed_at_rest_and_reach_the_driver(world):
    provider_id = add_provider(world.core, world.admin, "vault", api_token="s3cret-token", region="eu")

    assert "s3cret-token" not in _raw_config(world, provider_id)
    assert '"region": "eu"' in _raw_config(world, provider_id)
    assert _driver_config(world, "vault") == {"api_token": "s3cret-token", "region": "eu"}


def test_update_replaces_the_config_and_seals_new_secrets(world):
    add_provider(world.core, world.admin, "vault", api_token="old-token")

    with world.core.scope(world.admin) as s:
        row = backup_providers.update(s, "vault", config={"api_token": "new-token", "duration_s": 0})

    assert "new-token" not in _raw_config(world, row.id)
    assert _driver_config(world, "vault") == {"api_token": "new-token", "duration_s": 0}


def test_update_with_redacted_secret_keeps_the_stored_one(world):
    # A client sends back what it was shown: ******** stands for the secret it never saw.
    add_provider(world.core, world.admin, "vault", api_token="kept-token", region="eu")

    with world.core.scope(world.admin) as s:
        backup_providers.update(s, "vault", config={"api_token": REDACTED, "region": "us"})

    assert _driver_config(world, "vault") == {"api_token": "kept-token", "region": "us"}


def test_update_with_redacted_secret_that_was_never_stored_is_invalid(world):
    add_provider(world.core, world.admin, "vault")

    with _refused(world, InvalidArgument, r"config.api_token: \*+ stands for the stored secret") as s:
        backup_providers.update(s, "vault", config={"api_token": REDACTED})


def test_update_with_a_config_the_driver_rejects_stores_nothing(world):
    add_provider(world.core, world.admin, "vault", region="eu")

    with _refused(world, InvalidArgument, r"config\.fail") as s:
        backup_providers.update(s, "vault", config={"fail": ["explode"]})

    assert _driver_config(world, "vault") == {"region": "eu"}


def test_update_renames_and_disables(world):
    with world.core.scope(world.admin) as s:
        row = backup_providers.update(s, "dummy", name="dummy-main", enabled=False)
        assert (row.name, row.enabled) == ("dummy-main", False)
    with world.core.scope(world.admin) as s:
        assert backup_providers.find(s, world.provider_id).name == "dummy-main"


def test_update_to_a_taken_name_conflicts(world):
    add_provider(world.core, world.admin, "other")

    with _refused(world, Conflict, "already exists") as s:
        backup_providers.update(s, "other", name="dummy")


def test_a_provider_with_offerings_in_another_zone_cannot_move(world):
    with _refused(world, Conflict, "offerings in another zone") as s:
        backup_providers.update(s, "dummy", zone="zone2")


def test_a_provider_in_use_cannot_be_removed(world):
    with world.core.scope(world.alice) as s:
        backups.create_backup(s, world.alice_vm)

    with _refused(world, Conflict, "in use: 2 offerings, 1 restore point") as s:
        backup_providers.remove(s, "dummy")


def test_an_unused_provider_is_removed(world):
    add_provider(world.core, world.admin, "spare")

    with world.core.scope(world.admin) as s:
        backup_providers.remove(s, "spare")
    with pytest.raises(NotFound), world.core.scope(world.admin) as s:
        backup_providers.find(s, "spare")


def test_tenants_cannot_update_or_remove_providers(world):
    with pytest.raises(PermissionDenied), world.core.scope(world.alice) as s:
        backup_providers.update(s, "dummy", enabled=False)
    with pytest.raises(PermissionDenied), world.core.scope(world.alice) as s:
        backup_providers.remove(s, "dummy")


# -- storage pools and hosts -----------------------------------------------------------------------


def test_pool_limits_and_bandwidth_are_updated(world):
    with world.core.scope(world.admin) as s:
        row = inventory.update_pool(s, "pool1", max_concurrent_backups=9, bandwidth_bytes_per_s=500 * 2**20)
        assert (row.max_concurrent_backups, row.bandwidth_bytes_per_s, row.path) == (
            9,
            500 * 2**20,
            "/srv/pool1",
        )
    with world.core.scope(world.admin) as s:
        row = inventory.update_pool(s, "pool1", unlimited_bandwidth=True, name="fast1")
        assert (row.name, row.bandwidth_bytes_per_s, row.max_concurrent_backups) == ("fast1", None, 9)


def test_pool_update_checks_its_values(world):
    with _refused(world, InvalidArgument, "max_concurrent_backups") as s:
        inventory.update_pool(s, "pool1", max_concurrent_backups=0)
    with _refused(world, InvalidArgument, "not both") as s:
        inventory.update_pool(s, "pool1", bandwidth_bytes_per_s=1, unlimited_bandwidth=True)


def test_a_pool_with_volumes_cannot_be_removed(world):
    with _refused(world, Conflict, "storage pool 'pool1' is in use: 6 volumes") as s:
        inventory.remove_pool(s, "pool1")


def test_a_pool_holding_a_destroyed_vms_volumes_cannot_be_removed(world):
    # The restore points of a destroyed VM can recreate it on its pool.
    with world.core.scope(world.admin) as s:
        inventory.destroy_vm(s, world.alice_vm)

    with _refused(world, Conflict, "4 volumes, 2 destroyed VM's volumes") as s:
        inventory.remove_pool(s, "pool1")


def test_an_empty_pool_is_removed(world):
    with world.core.scope(world.admin) as s:
        inventory.remove_pool(s, "pool2")
    with world.core.scope(world.admin) as s:
        assert [p.name for p in inventory.list_pools(s)] == ["pool1"]


def test_host_limits_are_updated(world):
    with world.core.scope(world.admin) as s:
        row = inventory.update_host(s, "kvm1", max_concurrent_backups=5, address="10.0.0.1")
        assert (row.max_concurrent_backups, row.address, row.name) == (5, "10.0.0.1", "kvm1")


def test_host_rename_to_a_taken_name_in_its_zone_conflicts(world):
    with world.core.scope(world.admin) as s:
        inventory.create_host(s, zone="zone1", name="kvm3", hypervisor="kvm")

    with _refused(world, Conflict, "already exists in zone zone1") as s:
        inventory.update_host(s, "kvm3", name="kvm1")


def test_a_host_running_vms_cannot_be_removed(world):
    with _refused(world, Conflict, "host 'kvm1' is in use: 3 virtual machines") as s:
        inventory.remove_host(s, "kvm1")


def test_a_host_with_an_active_job_cannot_be_removed(world, deferred):
    # The backup stays queued (nothing runs it); its VM is then destroyed, the job is not.
    with deferred.scope(world.alice) as s:
        backups.create_backup(s, world.alice_vm)
    with world.core.scope(world.admin) as s:
        for vm in (world.alice_vm, world.alice_vm2, world.bob_vm):
            inventory.destroy_vm(s, vm)

    with _refused(world, Conflict, "host 'kvm1' is in use: 1 active job") as s:
        inventory.remove_host(s, "kvm1")


def test_a_host_whose_vms_were_destroyed_is_removed(world):
    with world.core.scope(world.admin) as s:
        for vm in (world.alice_vm, world.alice_vm2, world.bob_vm):
            inventory.destroy_vm(s, vm)
    with world.core.scope(world.admin) as s:
        inventory.remove_host(s, "kvm1")
    with world.core.scope(world.admin) as s:
        assert [h.name for h in inventory.list_hosts(s)] == ["kvm2"]
        assert s.session.get(VirtualMachine, world.alice_vm).host_id is None


def test_tenants_cannot_change_pools_or_hosts(world):
    with pytest.raises(PermissionDenied), world.core.scope(world.alice) as s:
        inventory.update_pool(s, "pool1", max_concurrent_backups=1)
    with pytest.raises(PermissionDenied), world.core.scope(world.alice) as s:
        inventory.remove_host(s, "kvm2")


# -- API keys --------------------------------------------------------------------------------------


@pytest.fixture
def keys(world):
    with world.core.scope(world.admin) as s:
        return {name: accounts.create_key(s, name) for name in ("alice", "bob")}


def _authenticate(world, issued):
    with world.core.db.session() as session:
        return accounts.authenticate(session, issued.apikey, issued.secretkey)


def test_admin_lists_every_key_and_a_tenant_its_own(world, keys):
    with world.core.scope(world.admin) as s:
        assert {k.id for k in accounts.list_keys(s)} >= {keys["alice"].id, keys["bob"].id}
        assert [k.id for k in accounts.list_keys(s, "bob")] == [keys["bob"].id]
    with world.core.scope(world.alice) as s:
        listed = accounts.list_keys(s)
    assert [(k.id, k.account.name, k.state) for k in listed] == [(keys["alice"].id, "alice", "active")]


def test_a_tenant_cannot_list_another_accounts_keys(world, keys):
    with pytest.raises(NotFound, match="account bob"), world.core.scope(world.alice) as s:
        accounts.list_keys(s, "bob")


def test_a_disabled_key_stops_authenticating_until_enabled(world, keys):
    with world.core.scope(world.alice) as s:
        assert accounts.set_key_enabled(s, keys["alice"].id, False).state == "disabled"
    with pytest.raises(AuthenticationFailed, match="disabled"):
        _authenticate(world, keys["alice"])

    with world.core.scope(world.alice) as s:
        accounts.set_key_enabled(s, keys["alice"].apikey, True)
    assert _authenticate(world, keys["alice"]).name == "alice"


def test_a_revoked_key_cannot_be_enabled(world, keys):
    with world.core.scope(world.alice) as s:
        accounts.revoke_key(s, keys["alice"].id)
    with pytest.raises(Conflict, match="revoked"), world.core.scope(world.alice) as s:
        accounts.set_key_enabled(s, keys["alice"].id, True)


def test_a_deleted_key_is_gone(world, keys):
    with world.core.scope(world.alice) as s:
        accounts.delete_key(s, keys["alice"].id)

    with pytest.raises(AuthenticationFailed):
        _authenticate(world, keys["alice"])
    with world.core.scope(world.alice) as s:
        assert accounts.list_keys(s) == []


def test_a_tenant_cannot_disable_or_delete_another_tenants_key(world, keys):
    for change in (
        lambda s: accounts.set_key_enabled(s, keys["alice"].id, False),
        lambda s: accounts.delete_key(s, keys["alice"].apikey),
    ):
        with pytest.raises(NotFound, match="API key"), world.core.scope(world.bob) as s:
            change(s)

    assert _authenticate(world, keys["alice"]).name == "alice"


# -- accounts --------------------------------------------------------------------------------------


def test_a_disabled_accounts_keys_stop_authenticating(world, keys):
    with world.core.scope(world.admin) as s:
        assert accounts.set_account_enabled(s, "alice", False).state == "disabled"
    with pytest.raises(AuthenticationFailed, match="account is disabled"):
        _authenticate(world, keys["alice"])
    assert _authenticate(world, keys["bob"]).name == "bob"

    with world.core.scope(world.admin) as s:
        accounts.set_account_enabled(s, "alice", True)
    assert _authenticate(world, keys["alice"]).name == "alice"


def test_an_admin_cannot_disable_or_delete_its_own_account(world):
    with _refused(world, Conflict, "own account") as s:
        accounts.set_account_enabled(s, "admin", False)
    with _refused(world, Conflict, "own account") as s:
        accounts.delete_account(s, "admin")


def test_tenants_cannot_disable_or_delete_accounts(world):
    with pytest.raises(PermissionDenied), world.core.scope(world.alice) as s:
        accounts.set_account_enabled(s, "bob", False)
    with pytest.raises(PermissionDenied), world.core.scope(world.alice) as s:
        accounts.delete_account(s, "alice")


def test_an_account_owning_vms_or_restore_points_cannot_be_deleted(world):
    with world.core.scope(world.alice) as s:
        backups.create_backup(s, world.alice_vm)
    with world.core.scope(world.admin) as s:
        inventory.destroy_vm(s, world.alice_vm)

    uses = "1 virtual machine, 1 destroyed virtual machine, 1 restore point"
    with _refused(world, Conflict, f"account 'alice' is in use: {uses}") as s:
        accounts.delete_account(s, "alice")


def test_an_account_owning_nothing_is_deleted_with_its_keys(world):
    with world.core.scope(world.admin) as s:
        accounts.create_account(s, "carol")
        carols = accounts.create_key(s, "carol")
    with world.core.scope(world.admin) as s:
        accounts.delete_account(s, "carol")

    with pytest.raises(AuthenticationFailed):
        _authenticate(world, carols)
    with world.core.scope(world.admin) as s:
        assert "carol" not in [a.name for a in accounts.list_accounts(s)]
        assert carols.id not in [k.id for k in accounts.list_keys(s)]


def test_a_nas_passphrase_is_sealed_yet_opens_the_repository(world, tmp_path):
    # The real driver checks the passphrase when it is built: it must get it in clear.
    config = {"repository": str(tmp_path / "repo"), "encryption": {"passphrase": "correct horse"}}
    with world.core.scope(world.admin) as s:
        row = backup_providers.add(s, name="nas1", driver="nas", config=config)
        s.driver(row)
        shown = redact(row.config)

    assert "correct horse" not in _raw_config(world, row.id)
    assert shown["encryption"] == {"passphrase": REDACTED}
    with world.core.scope(world.admin) as s:
        backup_providers.update(
            s, "nas1", config={**config, "encryption": {"passphrase": REDACTED}, "threads": 2}
        )
    assert _driver_config(world, "nas1")["encryption"] == {"passphrase": "correct horse"}
