"""The Blueprint every REST area is made of: under /api/v1, authenticated, parsed strictly."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from flask_smorest import Blueprint

from api.rest.auth import authenticate
from api.rest.parser import RestParser

PREFIX = "/api/v1"


class RestBlueprint(Blueprint):
    ARGUMENTS_PARSER = RestParser()

    def errors(self, *codes: int) -> Callable[[Any], Any]:
        """Document error answers (all share the Error schema) beside the default one."""

        def decorate(func: Any) -> Any:
            for code in codes:
                func = self.alt_response(code, response=HTTPStatus(code).name)(func)
            return func

        return decorate


def rest_blueprint(name: str, import_name: str, description: str) -> RestBlueprint:
    blp = RestBlueprint(name, import_name, url_prefix=PREFIX, description=description)
    blp.before_request(authenticate)
    return blp
