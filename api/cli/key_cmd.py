"""``backupctl key``: the API key pairs of the accounts."""

from __future__ import annotations

from dataclasses import asdict

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option
from orchestrator.usecases import accounts


@click.group()
def key() -> None:
    """API key pairs. A secret is printed once, when created."""


@key.command("create")
@click.option("--account", "account_ref", required=True, help="Account the key is for (name or id).")
@json_option
@pass_app
@handle_errors
def key_create(app: App, account_ref: str, as_json: bool) -> None:
    """Create an API key pair for an account; its secret is printed only now.

    Keep the secret: it is never shown again. Users may create keys only for themselves."""
    with app.scope() as s:
        issued = accounts.create_key(s, account_ref)
    emit(asdict(issued), as_json)


@key.command("list")
@click.option("--account", "account_ref", help="Only this account's keys (name or id).")
@json_option
@pass_app
@handle_errors
def key_list(app: App, account_ref: str | None, as_json: bool) -> None:
    """List API keys: id, account, state (active, disabled, revoked) and when created.

    Admins see every account's keys, users their own. Secrets are never shown."""
    with app.scope() as s:
        emit([views.api_key(k) for k in accounts.list_keys(s, account_ref)], as_json)


@key.command("disable")
@click.argument("apikey", metavar="KEY_OR_ID")
@json_option
@pass_app
@handle_errors
def key_disable(app: App, apikey: str, as_json: bool) -> None:
    """Disable an API key (the key itself or its id) until `key enable`.

    It stops working with the next request. Users may disable only their own keys."""
    with app.scope() as s:
        emit(views.api_key(accounts.set_key_enabled(s, apikey, False)), as_json)


@key.command("enable")
@click.argument("apikey", metavar="KEY_OR_ID")
@json_option
@pass_app
@handle_errors
def key_enable(app: App, apikey: str, as_json: bool) -> None:
    """Enable a disabled API key (the key itself or its id); a revoked key stays revoked.

    Users may enable only their own keys."""
    with app.scope() as s:
        emit(views.api_key(accounts.set_key_enabled(s, apikey, True)), as_json)


@key.command("delete")
@click.argument("apikey", metavar="KEY_OR_ID")
@json_option
@pass_app
@handle_errors
def key_delete(app: App, apikey: str, as_json: bool) -> None:
    """Delete an API key (the key itself or its id): it stops working and is no longer listed.

    Users may delete only their own keys."""
    with app.scope() as s:
        row = accounts.delete_key(s, apikey)
        emit({"deleted": row.id, "account": row.account.name}, as_json)


@key.command("revoke")
@click.argument("apikey", metavar="KEY_OR_ID")
@json_option
@pass_app
@handle_errors
def key_revoke(app: App, apikey: str, as_json: bool) -> None:
    """Revoke an API key, given as the API key itself or as its id.

    The id is the one `key create` printed. The key stops working with the next request.
    Users may revoke only their own keys."""
    with app.scope() as s:
        accounts.revoke_key(s, apikey)
    emit({"revoked": apikey}, as_json)
