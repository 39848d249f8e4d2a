"""The Flask application: both faces over one core."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from api import rest
from api.cloudstack.endpoint import blueprint as cloudstack
from api.ops import blueprint as ops
from orchestrator.bootstrap import build_core
from orchestrator.engine.core import Core
from orchestrator.infra.config import Settings
from workers.runner import runner_for

MAX_REQUEST_BYTES = 1 << 20


class _UnsortedJSON(DefaultJSONProvider):
    """Answers keep their keys in the order the views give them."""

    sort_keys = False


def create_app(core: Core | None = None) -> Flask:
    app = Flask("backup_orchestrator")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json = _UnsortedJSON(app)
    app.extensions["orchestrator"] = core or _core_from_env()
    app.register_blueprint(cloudstack)
    app.register_blueprint(ops)
    rest.register(app)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        body: dict[str, Any] = {
            "error": (exc.name or "error").lower().replace(" ", "_"),
            "message": exc.description,
        }
        return jsonify(body), exc.code or 500

    return app


def _core_from_env() -> Core:
    """Under gunicorn: jobs go to the Celery queues when a broker is configured."""
    settings = Settings.from_env()
    return build_core(settings, runner=runner_for(settings))
