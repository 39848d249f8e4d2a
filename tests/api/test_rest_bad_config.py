"""Bad input the core itself refuses (it once reached the database and answered 500)."""

from __future__ import annotations

import requests

from api.auth import sign
from tests.api.rest_helpers import clients, error_of, expiring


def test_an_rpo_too_large_to_store_is_refused(server, world):
    offering = {"name": "forever", "zone": "zone1", "provider": "dummy", "external_id": "dummy-silver"}
    response = clients(server)["admin"].post("/offerings", {**offering, "rpo": "99999999999999999999w"})
    error_of(response, 400, "invalid_argument")


def test_a_provider_configuration_of_the_wrong_type_is_refused(server, world):
    response = clients(server)["admin"].post(
        "/providers", {"name": "odd", "driver": "dummy", "config": {"duration_s": "slow"}}
    )
    error_of(response, 400, "invalid_argument")


def test_nul_in_a_cloudstack_parameter_is_431(server, world):
    keys = server.keys["alice"]
    params = {"response": "json", "command": "listBackups", "keyword": "a\x00b", "apiKey": keys.apikey}
    params |= expiring()
    params["signature"] = sign(params, keys.secretkey)
    response = requests.get(server.endpoint, params=params, timeout=10)
    assert response.status_code == 431
    assert "NUL" in response.json()["listbackupsresponse"]["errortext"]


def test_a_huge_page_number_is_refused_not_a_database_error(server, world):
    keys = server.keys["alice"]
    params = {"response": "json", "command": "listBackups", "page": str(10**19), "apiKey": keys.apikey}
    params |= expiring()
    params["signature"] = sign(params, keys.secretkey)
    response = requests.get(server.endpoint, params=params, timeout=10)
    assert response.status_code == 431
