"""The OpenAPI document, the docs page, and schemathesis against the live server."""

from __future__ import annotations

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.rest_helpers import PREFIX, Rest

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 4}


def test_openapi_document_describes_every_area_and_both_ways_to_authenticate(server, world):
    response = requests.get(f"{server.url}{PREFIX}/openapi.json", timeout=10)
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    tags = {t["name"] for t in spec["tags"]}
    assert tags >= {"inventory", "providers", "offerings", "assignments", "schedules", "backups", "jobs"}
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "in": "header", "name": "X-Api-Key"}
    assert schemes["ApiSecret"]["name"] == "X-Api-Secret"
    assert schemes["SignedKey"]["in"] == "query"
    assert schemes["Signature"]["name"] == "signature"
    assert {"ApiKey": [], "ApiSecret": []} in spec["security"]
    # Generated from the schemas that validate requests: bounds and enums come along.
    params = {p["name"]: p for p in spec["paths"][f"{PREFIX}/backups"]["get"]["parameters"]}
    assert params["pagesize"]["schema"]["maximum"] == 500
    assert "BackedUp" in params["status"]["schema"]["enum"]
    assert spec["components"]["schemas"]["Error"]["required"] == ["error", "message"]
    create = spec["paths"][f"{PREFIX}/backups"]["post"]
    assert "202" in create["responses"]


def test_docs_page_is_served_without_authentication(server, world):
    page = requests.get(f"{server.url}{PREFIX}/docs", timeout=10)
    assert page.status_code == 200
    assert "swagger-ui" in page.text
    assert f"{PREFIX}/openapi.json" in page.text
    assets = requests.get(f"{server.url}{PREFIX}/docs/assets/swagger-ui-bundle.js", timeout=10)
    assert assets.status_code == 200


def test_schemathesis_finds_no_server_error_and_no_nonconforming_answer(server, world):
    schema = schemathesis.openapi.from_url(f"{server.url}{PREFIX}/openapi.json")
    headers = Rest(server, "alice").headers
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    for mode, examples in EXAMPLES.items():
        for operation in operations:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case) -> None:
                case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS)

            run()
