"""Accounts and their API keys. A secret is shown once, at creation, and never again."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import BindParameter, ColumnElement, ScalarSelect, bindparam, select
from sqlalchemy.orm import Session

from orchestrator.domain import validate
from orchestrator.domain.actor import Actor
from orchestrator.domain.errors import AuthenticationFailed, Conflict, NotFound
from orchestrator.domain.models import Account, ApiKey, Role, utcnow
from orchestrator.engine.core import Core, Scope
from orchestrator.infra.sealing import Sealer
from orchestrator.usecases import audit


@dataclass(frozen=True)
class IssuedKey:
    """The only place a secret appears in clear."""

    id: str
    account: str
    apikey: str
    secretkey: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_account(scope: Scope, name: str, role: str = "user") -> Account:
    scope.actor.require_admin("create accounts")
    name = validate.name(name)
    if scope.session.scalar(select(Account).where(Account.name == name)):
        raise Conflict(f"account {name!r} already exists", field="name")
    account = Account(name=name, role=validate.parse_enum(Role, role, "role"))
    scope.session.add(account)
    scope.session.flush()
    audit.record(scope, "account.create", "account", account.id, name=name, role=account.role.value)
    return account


def list_accounts(scope: Scope) -> list[Account]:
    if scope.actor.is_admin:
        return list(scope.session.scalars(select(Account).order_by(Account.name)))
    return [scope.get(Account, scope.actor.account_id, "account")]


def _named(name_or_id: str | BindParameter[str]) -> ColumnElement[bool]:
    return (Account.name == name_or_id) | (Account.id == name_or_id)


def find_account(session: Session, name_or_id: str) -> Account:
    found = session.scalar(select(Account).where(_named(name_or_id)))
    if found is None:
        raise NotFound.of("account", name_or_id)
    return found


def account_id_of(name_or_id: str | BindParameter[str]) -> ScalarSelect[str]:
    """The id of the account named (or identified) by ``name_or_id``, as a subquery: a filter
    on it costs no round trip of its own. NULL, so matching nothing, where there is none."""
    return select(Account.id).where(_named(name_or_id)).limit(1).scalar_subquery()


def create_key(scope: Scope, account_name_or_id: str) -> IssuedKey:
    account = find_account(scope.session, account_name_or_id)
    if account.id != scope.actor.account_id:
        scope.actor.require_admin("create keys for another account")
    secret = secrets.token_urlsafe(48)
    key = ApiKey(
        account_id=account.id,
        api_key=secrets.token_urlsafe(32),
        secret_hash=_hash(secret),
        secret_sealed=scope.core.sealer.seal(secret),
    )
    scope.session.add(key)
    scope.session.flush()
    audit.record(scope, "key.create", "api_key", key.id, account=account.name)
    return IssuedKey(key.id, account.name, key.api_key, secret)


def revoke_key(scope: Scope, key_or_id: str) -> None:
    """Revoke a key given as the API key itself or as its id (what ``key create`` prints as id)."""
    key = scope.session.scalar(select(ApiKey).where((ApiKey.api_key == key_or_id) | (ApiKey.id == key_or_id)))
    if key is None or not scope.actor.can_see(key.account_id):
        raise NotFound.of("API key", key_or_id)
    key.revoked_at = utcnow()
    audit.record(scope, "key.revoke", "api_key", key.id)


@dataclass(frozen=True)
class _LiveKey:
    actor: Actor
    secret_hash: str
    secret_sealed: str | None


# Built once: every authenticated request runs it, and building a statement costs more
# than running this one.
_LIVE_KEY = (
    select(ApiKey.secret_hash, ApiKey.secret_sealed, Account.id, Account.name, Account.role)
    .join(Account, Account.id == ApiKey.account_id)
    .where(ApiKey.api_key == bindparam("api_key"), ApiKey.revoked_at.is_(None))
)


def _live_key(session: Session, api_key: str) -> _LiveKey:
    # Read on every request, never cached, so that a revoked key (or a demoted account)
    # stops working with the next request.
    row = session.connection().execute(_LIVE_KEY, {"api_key": api_key}).one_or_none()
    if row is None:
        raise AuthenticationFailed("unknown or revoked API key")
    secret_hash, secret_sealed, account_id, name, role = row
    return _LiveKey(Actor(account_id, name, role), secret_hash, secret_sealed)


def authenticate(session: Session, api_key: str, secret: str) -> Actor:
    """For callers that present the secret itself (over TLS)."""
    key = _live_key(session, api_key)
    if not hmac.compare_digest(key.secret_hash, _hash(secret)):
        raise AuthenticationFailed("wrong secret for this API key")
    return key.actor


def signing_secret(session: Session, sealer: Sealer, api_key: str) -> tuple[Actor, str]:
    """For callers that sign requests (CloudStack style): the server needs the secret to check."""
    key = _live_key(session, api_key)
    if key.secret_sealed is None:
        raise AuthenticationFailed("this API key cannot sign requests")
    return key.actor, sealer.unseal(key.secret_sealed)


def bootstrap(core: Core) -> IssuedKey | None:
    """On an empty installation, create the ``admin`` account and its first key."""
    with core.db.session() as session:
        if session.scalar(select(Account.id).limit(1)) is not None:
            return None
        admin = Account(name="admin", role=Role.ADMIN)
        session.add(admin)
        session.flush()
        actor = Actor.of(admin)
    with core.scope(actor) as scope:
        return create_key(scope, admin.id)


def admin_actor(core: Core, name: str | None = None) -> Actor:
    """The actor for a local operator (the CLI on the server): the named account, else the first admin."""
    with core.db.session() as session:
        if name:
            return Actor.of(find_account(session, name))
        admin = session.scalar(select(Account).where(Account.role == Role.ADMIN).order_by(Account.created_at))
        if admin is None:
            raise NotFound("no admin account yet: run `backupctl init`")
        return Actor.of(admin)
