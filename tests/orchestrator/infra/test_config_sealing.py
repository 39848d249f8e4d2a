"""Sealing a provider configuration's secret settings with the master key."""

from __future__ import annotations

import json

import pytest

from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.secrets import REDACTED, keep_stored, redact
from orchestrator.infra.sealing import SEALED, Sealer

CONFIG = {"region": "eu", "api_token": "t0ken", "nested": {"password": ["a", 1]}, "list": [{"secret": 2}]}


def test_only_secret_settings_are_sealed_and_all_open_again(tmp_path):
    sealer = Sealer(tmp_path)
    sealed = sealer.seal_config(CONFIG)

    assert sealed["region"] == "eu"
    assert set(sealed["api_token"]) == {SEALED}
    assert "t0ken" not in json.dumps(sealed)
    assert set(sealed["list"][0]["secret"]) == {SEALED}
    assert sealer.unseal_config(sealed) == CONFIG
    assert sealer.seal_config(sealed) == sealed  # sealing twice changes nothing


def test_settings_stored_in_clear_before_sealing_pass_as_they_are(tmp_path):
    assert Sealer(tmp_path).unseal_config(CONFIG) == CONFIG


def test_another_master_key_names_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("BACKUP_SECRET_KEY", raising=False)  # each home makes its own key
    sealed = Sealer(tmp_path / "a").seal_config(CONFIG)
    with pytest.raises(InvalidArgument, match="sealed with another master key"):
        Sealer(tmp_path / "b").unseal_config(sealed)


def test_redacted_secrets_keep_the_stored_value_at_their_place():
    stored = {"api_token": "old", "nested": {"password": "p"}}
    new = {"api_token": REDACTED, "nested": {"password": "q"}, "region": "us"}

    assert keep_stored(new, stored) == {"api_token": "old", "nested": {"password": "q"}, "region": "us"}
    assert redact(new) == {"api_token": REDACTED, "nested": {"password": REDACTED}, "region": "us"}
    with pytest.raises(InvalidArgument, match=r"config\.nested\.secret"):
        keep_stored({"nested": {"secret": REDACTED}}, stored)
