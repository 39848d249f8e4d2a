"""Who is calling: CloudStack-style signed requests, or an API key and secret in headers.

Signed requests (both faces): every parameter except ``signature`` sorted by name,
``name=value`` with the value URL-encoded (space as ``%20``), joined by ``&``, the whole
string lower-cased, then Base64(HMAC-SHA1(secret, string)). With ``signatureversion=3``
the ``expires`` parameter (``%Y-%m-%dT%H:%M:%S%z``) must be in the future, and no further
ahead than the operator's maximum lifetime: a signed URL is a bearer credential, so one
that never expires can be replayed by whoever saw it. Requests without version 3 are
refused unless the operator allows them for old clients (only on the CloudStack face).
The REST face also accepts ``X-Api-Key`` + ``X-Api-Secret`` headers (use TLS).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import quote

from sqlalchemy.orm import Session

from orchestrator.domain.actor import Actor
from orchestrator.domain.errors import AuthenticationFailed
from orchestrator.domain.models import utcnow
from orchestrator.infra.config import Settings
from orchestrator.infra.sealing import Sealer
from orchestrator.usecases import accounts

EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def _get(params: Mapping[str, str], name: str) -> str | None:
    for key, value in params.items():
        if key.lower() == name:
            return value
    return None


def canonical(params: Mapping[str, str], *, lower_keys_first: bool) -> str:
    """The string CloudStack signs. Clients sort names as written or lower-cased; both are accepted."""
    items = [(k, v) for k, v in params.items() if k.lower() != "signature"]
    items.sort(key=(lambda kv: kv[0].lower()) if lower_keys_first else (lambda kv: kv[0]))
    return "&".join(f"{k}={quote(v, safe='*')}" for k, v in items).lower()


def sign(params: Mapping[str, str], secret: str, *, lower_keys_first: bool = False) -> str:
    text = canonical(params, lower_keys_first=lower_keys_first).encode()
    return base64.b64encode(hmac.new(secret.encode(), text, hashlib.sha1).digest()).decode()


# Clients sign with their own clock: ``expires`` may lie this much beyond the maximum
# lifetime before the request is taken for one made to last.
CLOCK_SKEW = timedelta(minutes=1)


@dataclass(frozen=True)
class SigningRules:
    """What a signed request must carry besides a matching signature."""

    # Refuse a request without signatureversion=3 and ``expires`` (it would never expire).
    require_expiry: bool
    # How far ahead of now ``expires`` may lie.
    max_lifetime: timedelta

    @classmethod
    def of(cls, settings: Settings, *, require_expiry: bool | None = None) -> SigningRules:
        """The operator's rules; ``require_expiry`` overrides the setting for a face that always needs it."""
        return cls(
            require_expiry=settings.signature_v3_required if require_expiry is None else require_expiry,
            max_lifetime=timedelta(seconds=settings.signature_max_lifetime_seconds),
        )


def _check_expiry(params: Mapping[str, str], now: datetime, rules: SigningRules) -> None:
    if _get(params, "signatureversion") != "3":
        if rules.require_expiry:
            raise AuthenticationFailed(
                "signed requests need signatureversion=3 and an 'expires' time "
                "(a request without them could be replayed for ever)"
            )
        return
    expires = _get(params, "expires")
    if not expires:
        raise AuthenticationFailed("signatureversion=3 needs an 'expires' parameter")
    try:
        deadline = datetime.strptime(expires, EXPIRES_FORMAT)
    except ValueError:
        raise AuthenticationFailed(f"expires: {expires!r} is not {EXPIRES_FORMAT}") from None
    if deadline <= now:
        raise AuthenticationFailed(f"the request expired at {expires}")
    if deadline > now + rules.max_lifetime + CLOCK_SKEW:
        raise AuthenticationFailed(
            f"expires: {expires} is too far ahead; sign for at most {rules.max_lifetime.total_seconds():g} s"
        )


def verify_signed(session: Session, sealer: Sealer, params: Mapping[str, str], rules: SigningRules) -> Actor:
    apikey, signature = _get(params, "apikey"), _get(params, "signature")
    if not apikey or not signature:
        raise AuthenticationFailed("unsigned request: 'apikey' and 'signature' are required")
    _check_expiry(params, utcnow(), rules)
    actor, secret = accounts.signing_secret(session, sealer, apikey)
    for lower_keys_first in (False, True):
        if hmac.compare_digest(
            sign(params, secret, lower_keys_first=lower_keys_first).encode(), signature.encode()
        ):
            return actor
    raise AuthenticationFailed("the signature does not match the request")


class HeaderLookup(Protocol):
    """Request headers as a mapping or as Werkzeug's ``Headers`` (which is no ``Mapping``)."""

    def get(self, key: str, /) -> str | None: ...


def verify_headers(session: Session, headers: HeaderLookup) -> Actor | None:
    apikey, secret = headers.get("X-Api-Key"), headers.get("X-Api-Secret")
    if not apikey and not secret:
        return None
    if not apikey or not secret:
        raise AuthenticationFailed("send both X-Api-Key and X-Api-Secret")
    return accounts.authenticate(session, apikey, secret)
