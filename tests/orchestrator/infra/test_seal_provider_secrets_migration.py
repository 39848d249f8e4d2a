"""Revision 0006 seals the clear provider secrets (NAS passphrases) that earlier versions stored, with the key
the application reads, and a downgrade opens them again."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from orchestrator.domain.errors import InvalidArgument
from orchestrator.infra.db import alembic_config, make_engine
from orchestrator.infra.sealing import Sealer

PASSPHRASE = "correct horse battery staple"
providers = sa.table(
    "backup_providers",
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("driver", sa.String),
    sa.column("config", sa.JSON),
    sa.column("enabled", sa.Boolean),
    sa.column("created_at", sa.DateTime),
)


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _before_sealing_with_providers(engine) -> dict[str, str]:
    command.upgrade(alembic_config(engine), "0005")
    rows = {
        "nas": {"repository": "/mnt/repo", "encryption": {"passphrase": PASSPHRASE}},
        "kvm": {"repository": "/mnt/kvm", "encryption": {"passphrase": PASSPHRASE, "cipher": "aes-256-gcm"}},
        "dummy": {"duration_s": 0},
    }
    ids = {}
    with engine.begin() as conn:
        for driver, config in rows.items():
            ids[driver] = str(uuid.uuid4())
            conn.execute(
                providers.insert().values(
                    id=ids[driver],
                    name=driver,
                    driver=driver,
                    config=config,
                    enabled=True,
                    created_at=datetime.now(UTC),
                )
            )
    return ids


def _configs(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {
            driver: config
            for driver, config in conn.execute(sa.select(providers.c.driver, providers.c.config))
        }


def test_upgrade_seals_clear_passphrases_and_downgrade_opens_them(
    engine, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("BACKUP_SECRET_KEY", raising=False)
    _before_sealing_with_providers(engine)

    command.upgrade(alembic_config(engine, tmp_path), "head")

    configs = _configs(engine)
    assert PASSPHRASE not in json.dumps(configs)
    sealer = Sealer(tmp_path)  # the key the migration made in the data directory it was given
    for driver in ("nas", "kvm"):
        assert set(configs[driver]["encryption"]["passphrase"]) == {"$sealed"}
        assert sealer.unseal_config(configs[driver])["encryption"]["passphrase"] == PASSPHRASE
    assert configs["kvm"]["encryption"]["cipher"] == "aes-256-gcm"
    assert configs["dummy"] == {"duration_s": 0}

    command.downgrade(alembic_config(engine, tmp_path), "0005")
    assert _configs(engine)["nas"]["encryption"] == {"passphrase": PASSPHRASE}


def test_without_a_usable_key_the_upgrade_stops_and_changes_nothing(
    engine, tmp_path: Path, monkeypatch
) -> None:
    _before_sealing_with_providers(engine)
    monkeypatch.setenv("BACKUP_SECRET_KEY", "not-a-key")

    with pytest.raises(InvalidArgument, match="BACKUP_SECRET_KEY is not a Fernet key"):
        command.upgrade(alembic_config(engine, tmp_path), "head")

    assert _configs(engine)["nas"]["encryption"] == {"passphrase": PASSPHRASE}
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == "0005"
