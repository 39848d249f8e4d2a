"""One route for every command: authenticate the signature, run the command, wrap the answer
in CloudStack's envelope. Errors carry CloudStack's codes, with the same HTTP status."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from api.auth import SigningRules, verify_signed
from api.cloudstack.commands import COMMANDS, Call, Listing, check_available
from api.cloudstack.params import Params
from orchestrator.domain import errors, validate
from orchestrator.domain.models import Job
from orchestrator.engine.core import Core

log = logging.getLogger(__name__)
blueprint = Blueprint("cloudstack", __name__)

# CloudStack's ApiErrorCode values.
ERROR_CODES: list[tuple[type[errors.DomainError], int]] = [
    (errors.AuthenticationFailed, 401),
    (errors.InvalidArgument, 431),
    (errors.NotFound, 431),
    (errors.Unsupported, 432),
    (errors.PermissionDenied, 531),
    (errors.Conflict, 536),
    (errors.Unavailable, 534),
]
INTERNAL_ERROR = 530


def _params() -> dict[str, str]:
    """The query's and the form's parameters, the query's first; each checked as text."""
    merged: dict[str, str] = {}
    try:
        for source in (request.args, request.form):
            for key in source:
                merged.setdefault(key, source[key])
    except UnicodeDecodeError:
        raise errors.InvalidArgument("the request's parameters are not valid UTF-8") from None
    for key, value in merged.items():
        if "\x00" in key or "\x00" in value:
            raise errors.InvalidArgument(f"Invalid parameter {key}: contains a NUL character", field=key)
    validate.unicode_strings(merged, "")
    return merged


def _command_name() -> str:
    """The command asked for, read before its parameters are checked: an error about them is
    answered under the command's own response name, as CloudStack does."""
    try:
        value = request.args.get("command") or request.form.get("command") or ""
    except UnicodeDecodeError:
        return "error"
    return value if value.isascii() and value.isalnum() else "error"


def _answer(name: str, body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify({f"{name.lower()}response": body})
    response.status_code = status
    return response


def _error(name: str, code: int, text: str) -> Response:
    return _answer(name, {"errorcode": code, "cserrorcode": 9999, "errortext": text}, code)


def _body(out: Any, cmd_async: bool) -> dict[str, Any]:
    if cmd_async:
        assert isinstance(out, Job)
        return {"jobid": out.id, "id": out.subject_id}
    if isinstance(out, Listing):
        return {"count": out.total, out.name: out.items}
    return dict(out)


@blueprint.route("/client/api", methods=["GET", "POST"])
def dispatch() -> Response:
    name = _command_name()
    core: Core = current_app.extensions["orchestrator"]
    try:
        raw = _params()
        if name == "error":
            raise errors.InvalidArgument("Unable to execute API command due to missing parameter command")
        if (Params(raw).str("response") or "json").lower() != "json":
            raise errors.InvalidArgument("only response=json is supported")
        cmd = COMMANDS.get(name.lower())
        # One transaction: the key is checked where the command then runs.
        rules = SigningRules.of(core.settings)
        with core.scope(lambda session: verify_signed(session, core.sealer, raw, rules)) as scope:
            if cmd is None:
                raise errors.Unsupported(
                    f"The given command {name} does not exist or it is not available for the user"
                )
            check_available(scope, cmd)
            params = Params(raw)
            body = _body(cmd.handler(Call(scope, params)), cmd.is_async)
            if not cmd.name.lower().startswith(("list", "query")) and (unknown := params.unknown()):
                # A change with a parameter it cannot honour is undone (this raises inside the
                # transaction) rather than done without it; listings ignore extras, as clients
                # send filters such as listall to every list command.
                raise errors.InvalidArgument(
                    f"Unknown parameter(s) {', '.join(unknown)} for command {cmd.name}", field=unknown[0]
                )
        return _answer(cmd.name, body)
    except errors.DomainError as exc:
        code = next((c for t, c in ERROR_CODES if isinstance(exc, t)), INTERNAL_ERROR)
        return _error(name, code, exc.message)
    except Exception:
        log.exception("command %s failed", name)
        return _error(name, INTERNAL_ERROR, f"internal error while running {name}; see the server log")
