"""Accounts and their API keys. A secret is shown once, at creation, and never again.

A key is active, disabled (it can be enabled again) or revoked (for good). A disabled
account keeps what it owns, but none of its keys authenticates until it is enabled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import BindParameter, ColumnElement, ScalarSelect, bindparam, delete, select, update
from sqlalchemy.orm import Session, joinedload

from orchestrator.domain import validate
from orchestrator.domain.actor import Actor
from orchestrator.domain.errors import AuthenticationFailed, Conflict, NotFound
from orchestrator.domain.models import FINAL_JOB_STATES, Account, ApiKey, Job, Role, utcnow
from orchestrator.engine.core import Core, Scope
from orchestrator.infra.sealing import Sealer
from orchestrator.usecases import audit, usage


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


def set_account_enabled(scope: Scope, name_or_id: str, enabled: bool) -> Account:
    """Disable an account (its keys stop authenticating with the next request) or enable it."""
    scope.actor.require_admin("enable or disable accounts")
    account = find_account(scope.session, name_or_id)
    if not enabled and account.id == scope.actor.account_id:
        raise Conflict("an admin cannot disable its own account", field="account")
    account.disabled_at = None if enabled else (account.disabled_at or utcnow())
    audit.record(scope, "account.enable" if enabled else "account.disable", "account", account.id)
    return account


def delete_account(scope: Scope, name_or_id: str) -> Account:
    """Delete an account and its keys; refused while it owns VMs or restore points or has
    work under way. Its finished jobs go with it."""
    scope.actor.require_admin("delete accounts")
    account = find_account(scope.session, name_or_id)
    if account.id == scope.actor.account_id:
        raise Conflict("an admin cannot delete its own account", field="account")
    usage.refuse_if_used("account", account.name, usage.of_account(scope, account.id))
    scope.session.execute(update(Job).where(Job.requested_by == account.id).values(requested_by=None))
    scope.session.execute(delete(Job).where(Job.account_id == account.id, Job.state.in_(FINAL_JOB_STATES)))
    scope.session.delete(account)
    audit.record(scope, "account.delete", "account", account.id, name=account.name)
    return account


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


def list_keys(scope: Scope, account: str | None = None) -> list[ApiKey]:
    """The keys an admin sees (every account's, or ``account``'s), or a user's own."""
    stmt = (
        select(ApiKey)
        .join(Account)
        .options(joinedload(ApiKey.account))
        .order_by(Account.name, ApiKey.created_at)
    )
    if account:
        found = find_account(scope.session, account)
        if not scope.actor.can_see(found.id):
            raise NotFound.of("account", account)
        stmt = stmt.where(ApiKey.account_id == found.id)
    elif not scope.actor.is_admin:
        stmt = stmt.where(ApiKey.account_id == scope.actor.account_id)
    return list(scope.session.scalars(stmt))


def _find_key(scope: Scope, key_or_id: str) -> ApiKey:
    """A key the actor may manage, given as the API key itself or as its id (what ``key create``
    prints as id); another tenant's key is NotFound."""
    key = scope.session.scalar(select(ApiKey).where((ApiKey.api_key == key_or_id) | (ApiKey.id == key_or_id)))
    if key is None or not scope.actor.can_see(key.account_id):
        raise NotFound.of("API key", key_or_id)
    return key


def revoke_key(scope: Scope, key_or_id: str) -> None:
    """Revoke a key for good: it stops working with the next request."""
    key = _find_key(scope, key_or_id)
    key.revoked_at = utcnow()
    audit.record(scope, "key.revoke", "api_key", key.id)


def set_key_enabled(scope: Scope, key_or_id: str, enabled: bool) -> ApiKey:
    """Disable a key (it stops working with the next request) or enable it again."""
    key = _find_key(scope, key_or_id)
    if key.revoked_at is not None:
        raise Conflict(f"API key {key.id} is revoked: create a new one")
    key.disabled_at = None if enabled else (key.disabled_at or utcnow())
    audit.record(scope, "key.enable" if enabled else "key.disable", "api_key", key.id)
    return key


def delete_key(scope: Scope, key_or_id: str) -> ApiKey:
    """Delete a key: it stops working with the next request and is no longer listed."""
    key = _find_key(scope, key_or_id)
    scope.session.delete(key)
    audit.record(scope, "key.delete", "api_key", key.id)
    return key


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
    .where(
        ApiKey.api_key == bindparam("api_key"),
        ApiKey.revoked_at.is_(None),
        ApiKey.disabled_at.is_(None),
        Account.disabled_at.is_(None),
    )
)


def _live_key(session: Session, api_key: str) -> _LiveKey:
    # Read on every request, never cached, so that a revoked or disabled key (or a demoted
    # or disabled account) stops working with the next request.
    row = session.connection().execute(_LIVE_KEY, {"api_key": api_key}).one_or_none()
    if row is None:
        raise AuthenticationFailed("unknown, revoked or disabled API key (or its account is disabled)")
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
