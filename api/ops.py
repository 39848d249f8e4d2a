"""Operations endpoints: ``/healthz`` for load balancers and ``/metrics`` for Prometheus.

``/metrics`` names offerings, hosts, pools and queues (never a tenant's VM) and counts the
fleet; set ``BACKUP_METRICS_TOKEN`` to require ``Authorization: Bearer <token>`` where the
scrape network is not trusted."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy import text

from orchestrator.engine.core import Core
from orchestrator.infra import telemetry

blueprint = Blueprint("ops", __name__)


def _core() -> Core:
    return current_app.extensions["orchestrator"]


@blueprint.get("/healthz")
def healthz() -> tuple[dict[str, Any], int]:
    try:
        with _core().db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return {"status": "unavailable", "database": type(exc).__name__}, 503
    return {"status": "ok"}, 200


@blueprint.get("/metrics")
def metrics() -> Response:
    token = _core().settings.metrics_token
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.encode()):
            abort(401, "a valid bearer token is required for /metrics")
    registry = current_app.extensions.get("metrics_registry")
    if registry is None:
        registry = current_app.extensions["metrics_registry"] = telemetry.registry(_core().db)
    return Response(telemetry.exposition(registry), mimetype="text/plain; version=0.0.4; charset=utf-8")
