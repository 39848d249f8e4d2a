"""The one place where the REST face turns errors into answers.

Every error is ``{"error": code, "message": text, "field"?: name}``: domain errors by
their type, request validation errors (raised as ``InvalidArgument`` by the parser) as
400, and HTTP errors (unknown route, body too large...) by the app's HTTPException handler.
"""

from __future__ import annotations

from http import HTTPStatus

from flask import Flask, Response, jsonify

from orchestrator.domain import errors

STATUS: list[tuple[type[errors.DomainError], HTTPStatus]] = [
    (errors.AuthenticationFailed, HTTPStatus.UNAUTHORIZED),
    (errors.InvalidArgument, HTTPStatus.BAD_REQUEST),
    (errors.PermissionDenied, HTTPStatus.FORBIDDEN),
    # Another tenant's object is NotFound too: the core never tells that it exists.
    (errors.NotFound, HTTPStatus.NOT_FOUND),
    (errors.Conflict, HTTPStatus.CONFLICT),
    (errors.Unsupported, HTTPStatus.UNPROCESSABLE_ENTITY),
    # A back end failed at something it supports, while we waited for it.
    (errors.ProviderError, HTTPStatus.BAD_GATEWAY),
    (errors.Unavailable, HTTPStatus.SERVICE_UNAVAILABLE),
]


def status_of(exc: errors.DomainError) -> HTTPStatus:
    return next((status for kind, status in STATUS if isinstance(exc, kind)), HTTPStatus.BAD_REQUEST)


def domain_error(exc: errors.DomainError) -> tuple[Response, int]:
    status = status_of(exc)
    response = jsonify(exc.to_dict())
    if status is HTTPStatus.UNAUTHORIZED:
        response.headers["WWW-Authenticate"] = 'ApiKey realm="api/v1"'
    return response, status


def register(app: Flask) -> None:
    # The CloudStack face catches its own errors, so this handler only ever sees REST calls.
    app.register_error_handler(errors.DomainError, domain_error)
