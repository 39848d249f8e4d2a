"""Accounts and API keys."""

from __future__ import annotations

from dataclasses import asdict

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option, paging_options
from orchestrator.usecases import accounts, audit


@click.group()
def account() -> None:
    """Tenant and admin accounts."""


@account.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@json_option
@pass_app
@handle_errors
def account_create(app: App, name: str, role: str, as_json: bool) -> None:
    with app.scope() as s:
        emit(views.account(accounts.create_account(s, name, role)), as_json)


@account.command("list")
@json_option
@pass_app
@handle_errors
def account_list(app: App, as_json: bool) -> None:
    with app.scope() as s:
        emit([views.account(a) for a in accounts.list_accounts(s)], as_json)


@click.group()
def key() -> None:
    """API key pairs. A secret is printed once, when created."""


@key.command("create")
@click.option("--account", "account_ref", required=True)
@json_option
@pass_app
@handle_errors
def key_create(app: App, account_ref: str, as_json: bool) -> None:
    with app.scope() as s:
        issued = accounts.create_key(s, account_ref)
    emit(asdict(issued), as_json)


@key.command("revoke")
@click.argument("apikey")
@json_option
@pass_app
@handle_errors
def key_revoke(app: App, apikey: str, as_json: bool) -> None:
    with app.scope() as s:
        accounts.revoke_key(s, apikey)
    emit({"revoked": apikey}, as_json)


@click.command("audit")
@click.option("--object", "object_id", help="Only events about this object id.")
@click.option("--action", help="e.g. backup.create, offering.update.")
@paging_options
@json_option
@pass_app
@handle_errors
def audit_log(
    app: App, object_id: str | None, action: str | None, page: int, pagesize: int, as_json: bool
) -> None:
    """Who did what, newest first."""
    with app.scope() as s:
        events = audit.list_events(s, object_id=object_id, action=action, page=page, pagesize=pagesize)
        emit([views.audit_event(e) for e in events.items], as_json, ["at", "actor", "action", "object_id"])
