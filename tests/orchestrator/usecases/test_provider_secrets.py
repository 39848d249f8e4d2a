"""Secret settings of a provider configuration (the NAS passphrase) are stored sealed,
never shown, and opened only to hand them to the driver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from api import views
from orchestrator.bootstrap import build_core
from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.models import BackupProvider
from orchestrator.usecases import backup_providers

PASSPHRASE = "correct horse battery staple"


def _add_encrypted(world, tmp_path: Path, name: str = "vault", driver: str = "nas") -> str:
    config = {"repository": str(tmp_path / name), "encryption": {"passphrase": PASSPHRASE}}
    with world.core.scope(world.admin) as s:
        return backup_providers.add(s, name=name, driver=driver, config=config).id


def _stored(world, provider_id: str) -> str:
    with world.core.db.engine.connect() as conn:
        config = conn.scalar(sa.select(BackupProvider.config).where(BackupProvider.id == provider_id))
    return json.dumps(config)


@pytest.mark.parametrize("driver", ["nas", "kvm"])
def test_the_passphrase_is_stored_sealed(world, tmp_path, driver):
    provider_id = _add_encrypted(world, tmp_path, driver=driver)
    stored = _stored(world, provider_id)
    assert PASSPHRASE not in stored
    assert '"$sealed"' in stored


def test_another_process_hands_the_driver_the_passphrase_in_clear(world, tmp_path):
    provider_id = _add_encrypted(world, tmp_path)
    worker = build_core(world.core.settings, db=world.core.db)  # a worker: same database and key
    with worker.scope(world.admin) as s:
        driver = s.driver(s.get(BackupProvider, provider_id, "provider"))
    assert driver.config["encryption"]["passphrase"] == PASSPHRASE


def test_list_and_show_never_show_the_passphrase(world, tmp_path):
    _add_encrypted(world, tmp_path)
    with world.core.scope(world.admin) as s:
        shown = [views.provider(p, s.driver(p)) for p in backup_providers.list_providers(s)]
    assert PASSPHRASE not in json.dumps(shown)
    (vault,) = [p for p in shown if p["name"] == "vault"]
    assert vault["config"]["encryption"] == {"passphrase": "********"}


def test_a_passphrase_sealed_with_another_key_is_a_clear_error(world, tmp_path, monkeypatch):
    provider_id = _add_encrypted(world, tmp_path)
    monkeypatch.setenv("BACKUP_SECRET_KEY", Fernet.generate_key().decode())
    elsewhere = build_core(world.core.settings, db=world.core.db)
    with (
        pytest.raises(InvalidArgument, match=r"a secret setting was sealed with another master key"),
        elsewhere.scope(world.admin) as s,
    ):
        s.driver(s.get(BackupProvider, provider_id, "provider"))
