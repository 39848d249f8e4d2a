"""The REST/JSON face under /api/v1, with its OpenAPI 3 document and a docs page.

One Blueprint per area; each route parses with a schema, runs one use case in one scope
and renders through ``orchestrator.views``. The OpenAPI document is generated from the
same schemas (flask-smorest + apispec), served at /api/v1/openapi.json; the docs page
(Swagger UI, served from the swagger-ui-bundle package, no CDN) is at /api/v1/docs.
"""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from flask import Blueprint, Flask
from flask_smorest import Api
from werkzeug.routing import BaseConverter

from api.rest import (
    accounts,
    assignments,
    backups,
    errors,
    inventory,
    jobs,
    offerings,
    planning,
    providers,
    restores,
    schedules,
)
from api.rest.blueprint import PREFIX
from api.rest.schemas import Error

BLUEPRINTS = (
    accounts.blp,
    inventory.blp,
    providers.blp,
    offerings.blp,
    assignments.blp,
    schedules.blp,
    backups.blp,
    restores.blp,
    jobs.blp,
    planning.blp,
)
DOCS_ASSETS = f"{PREFIX}/docs/assets"

HEADER_KEYS: list[dict[str, list[str]]] = [{"ApiKey": [], "ApiSecret": []}]
SIGNED: list[dict[str, list[str]]] = [{"SignedKey": [], "Signature": []}]
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": "The API key; send X-Api-Secret with it (over TLS).",
    },
    "ApiSecret": {"type": "apiKey", "in": "header", "name": "X-Api-Secret", "description": "Its secret."},
    "SignedKey": {
        "type": "apiKey",
        "in": "query",
        "name": "apikey",
        "description": "CloudStack-style signed request: the API key in the query string.",
    },
    "Signature": {
        "type": "apiKey",
        "in": "query",
        "name": "signature",
        "description": (
            "Base64(HMAC-SHA1(secret, s)) where s is every query parameter but `signature`, sorted "
            "by name, as `name=value` (value URL-encoded, space as %20) joined by `&`, lower-cased. "
            "The query must carry `signatureversion=3` and `expires` (%Y-%m-%dT%H:%M:%S%z, in the "
            "future and no further ahead than the server's maximum lifetime, 10 minutes by default). "
            "The signature covers the query string only, not the JSON body."
        ),
    },
}


class IdConverter(BaseConverter):
    """An object's id (or name, where the use case accepts one) as one path segment."""

    regex = r"[^/\x00]{1,255}"


class RestApi(Api):
    ERROR_SCHEMA = Error

    def _register_error_handlers(self) -> None:
        """The app's own handlers answer every error in the project's JSON shape."""

    def _register_pagination_header(self) -> None:
        """Lists page in their body (``page``, ``pagesize``, ``total``), not in X-Pagination."""


def register(app: Flask) -> None:
    app.config.update(
        API_TITLE="Backup orchestrator",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=f"{DOCS_ASSETS}/",
        API_SPEC_OPTIONS={
            "info": {
                "description": (
                    "SLA-based backup and recovery for VM clouds. Authenticate with X-Api-Key + "
                    "X-Api-Secret headers, or sign the query string as CloudStack clients do. Errors "
                    'are {"error": code, "message": text, "field"?: name}.'
                )
            },
            "servers": [{"url": "/"}],
            "security": HEADER_KEYS + SIGNED,
        },
    )
    app.url_map.converters["id"] = IdConverter
    api = RestApi(app)
    api.register_converter(IdConverter, lambda _c: {"type": "string", "minLength": 1, "maxLength": 255})
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
    for blp in BLUEPRINTS:
        api.register_blueprint(blp)
    app.register_blueprint(
        Blueprint(
            "rest_docs_assets",
            __name__,
            static_folder=swagger_ui_bundle.swagger_ui_path,
            static_url_path=DOCS_ASSETS,
        )
    )
    errors.register(app)
