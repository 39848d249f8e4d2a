"""Who is calling the REST face: X-Api-Key + X-Api-Secret headers, or a CloudStack-style
signature in the query string. Runs before every REST route (not the OpenAPI document or
the docs page) and leaves the actor on ``flask.g``."""

from __future__ import annotations

from contextlib import AbstractContextManager

from flask import current_app, g, request

from api.auth import SigningRules, verify_headers, verify_signed
from api.rest.parser import query
from orchestrator.domain.errors import AuthenticationFailed
from orchestrator.engine.core import Core, Scope


def _core() -> Core:
    return current_app.extensions["orchestrator"]


def _refuse_nul(values: list[str | None]) -> None:
    # PostgreSQL cannot even compare a string holding NUL (the key lookup would crash).
    if any("\x00" in v for v in values if v):
        raise AuthenticationFailed("malformed credentials: NUL character")


def authenticate() -> None:
    core = _core()
    query_keys = [v for k, v in query(request).items(multi=True) if k.lower() == "apikey"]
    _refuse_nul([request.headers.get("X-Api-Key"), *query_keys])
    with core.db.session() as session:
        actor = verify_headers(session, request.headers)
        if actor is None:
            params = query(request).to_dict()
            names = {k.lower(): v for k, v in params.items()}
            if "apikey" not in names and "signature" not in names:
                raise AuthenticationFailed(
                    "authentication required: send X-Api-Key and X-Api-Secret headers, "
                    "or sign the query string (apikey, signature, signatureversion=3, expires)"
                )
            # A signed URL covers its query only, so on this face it must expire, whatever
            # the CloudStack face allows its old clients.
            rules = SigningRules.of(core.settings, require_expiry=True)
            actor = verify_signed(session, core.sealer, params, rules)
    g.actor = actor


def use_case() -> AbstractContextManager[Scope]:
    """The scope one route runs its one use case in, as the authenticated actor."""
    return _core().scope(g.actor)
