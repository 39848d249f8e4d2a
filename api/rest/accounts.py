"""Accounts and their API keys: listed, disabled, enabled and deleted. Secrets are never shown."""

from __future__ import annotations

from typing import Any

from api import views
from api.rest import schemas as s
from api.rest.auth import use_case
from api.rest.blueprint import rest_blueprint
from api.rest.pages import of_list
from orchestrator.usecases import accounts

blp = rest_blueprint(
    "accounts",
    __name__,
    "Accounts (admins manage them; a user sees its own) and API keys (a user manages its own). "
    "A disabled account's keys, and a disabled key, do not authenticate until enabled again.",
)


@blp.route("/accounts", methods=["GET"])
@blp.arguments(s.PageQuery, location="query")
@blp.response(200, s.AccountPage)
def list_accounts(args: dict[str, Any]) -> dict[str, Any]:
    """List accounts (users: their own)"""
    with use_case() as scope:
        return of_list(accounts.list_accounts(scope), args, views.account)


@blp.route("/accounts/<id:account>", methods=["PATCH"])
@blp.arguments(s.Enabled)
@blp.response(200, s.Account)
@blp.errors(400, 403, 404, 409)
def set_account_enabled(args: dict[str, Any], account: str) -> dict[str, Any]:
    """Disable or enable an account, by id or name (admin; not one's own)"""
    with use_case() as scope:
        return views.account(accounts.set_account_enabled(scope, account, args["enabled"]))


@blp.route("/accounts/<id:account>", methods=["DELETE"])
@blp.response(204)
@blp.errors(403, 404, 409)
def delete_account(account: str) -> None:
    """Delete an account with its keys (admin); refused while it owns VMs or restore points"""
    with use_case() as scope:
        accounts.delete_account(scope, account)


@blp.route("/keys", methods=["GET"])
@blp.arguments(s.ApiKeyQuery, location="query")
@blp.response(200, s.ApiKeyPage)
@blp.errors(404)
def list_keys(args: dict[str, Any]) -> dict[str, Any]:
    """List API keys (users: their own); never a secret"""
    with use_case() as scope:
        return of_list(accounts.list_keys(scope, args.get("account")), args, views.api_key)


@blp.route("/keys/<id:key>", methods=["PATCH"])
@blp.arguments(s.Enabled)
@blp.response(200, s.ApiKey)
@blp.errors(400, 404, 409)
def set_key_enabled(args: dict[str, Any], key: str) -> dict[str, Any]:
    """Disable or enable an API key, by id or by the key itself (users: their own)"""
    with use_case() as scope:
        return views.api_key(accounts.set_key_enabled(scope, key, args["enabled"]))


@blp.route("/keys/<id:key>", methods=["DELETE"])
@blp.response(204)
@blp.errors(404)
def delete_key(key: str) -> None:
    """Delete an API key, by id or by the key itself (users: their own)"""
    with use_case() as scope:
        accounts.delete_key(scope, key)
