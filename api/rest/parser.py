"""Request parsing for the REST face: webargs' Flask parser, failing with ``InvalidArgument``.

Bad input of any kind — malformed JSON, a body nested too deep, wrong types, unknown
fields or query parameters — becomes a 400 with the field at fault, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import marshmallow as ma
from flask import Request
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.datastructures import MultiDict

from orchestrator.domain import validate
from orchestrator.domain.errors import InvalidArgument

# Query parameters of a CloudStack-style signature: read by authentication, not by routes.
SIGNATURE_PARAMS = frozenset({"apikey", "signature", "signatureversion", "expires"})


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _paths(messages: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(field path, message) pairs from marshmallow's nested error messages."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema":
                path = prefix
            elif isinstance(key, int):
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            yield from _paths(value, path)
    elif isinstance(messages, list | tuple):
        for message in messages:
            yield from _paths(message, prefix)
    else:
        yield prefix, str(messages)


def describe(error: ma.ValidationError) -> InvalidArgument:
    # webargs keys the messages by location ("json", "query"...); the field names follow.
    by_location = error.messages if isinstance(error.messages, Mapping) else {"": error.messages}
    pairs = [pair for messages in by_location.values() for pair in _paths(messages)]
    if not pairs:
        return InvalidArgument("invalid request")
    text = "; ".join(f"{path}: {message}" if path else message for path, message in pairs)
    return InvalidArgument(text, field=pairs[0][0] or None)


def query(req: Request) -> MultiDict[str, str]:
    """The query string's parameters. A WSGI server hands over the bytes as sent: ones that
    are not UTF-8 are refused here rather than failing where they are first read."""
    try:
        return req.args
    except UnicodeDecodeError:
        raise InvalidArgument("the query string is not valid UTF-8") from None


class RestParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400
    # Unknown query parameters are refused like unknown body fields: a typo in a filter
    # must not silently list everything.
    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }

    def _raw_load_json(self, req: Request) -> Any:
        data = req.get_data(cache=True)
        if not is_json_request(req):
            if data:
                raise InvalidArgument("the request body must be JSON (Content-Type: application/json)")
            return core.missing
        if not data.strip():
            return core.missing
        try:
            body = json.loads(data, parse_constant=_no_constants)
            # JSON escapes may spell a lone surrogate ("\\udfff"), which no database can store.
            validate.unicode_strings(body, "")
        except RecursionError:
            raise InvalidArgument("the request body is nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity
            raise InvalidArgument(f"the request body is not valid JSON: {exc}") from None
        return body

    def load_querystring(self, req: Request, schema: ma.Schema) -> Any:
        given = query(req).items(multi=True)
        args = MultiDict([(k, v) for k, v in given if k.lower() not in SIGNATURE_PARAMS])
        return self._makeproxy(args, schema)

    def handle_error(
        self,
        error: ma.ValidationError,
        req: Request,
        schema: ma.Schema,
        *,
        error_status_code: int | None,
        error_headers: Mapping[str, str] | None,
    ) -> NoReturn:
        raise describe(error)
