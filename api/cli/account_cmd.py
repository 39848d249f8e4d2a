"""``backupctl account``: the tenant and admin accounts."""

from __future__ import annotations

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option
from orchestrator.usecases import accounts


@click.group()
def account() -> None:
    """Tenant and admin accounts."""


@account.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["user", "admin"]),
    default="user",
    show_default=True,
    help="A user sees only its own VMs, restore points, schedules and jobs; an admin everything.",
)
@json_option
@pass_app
@handle_errors
def account_create(app: App, name: str, role: str, as_json: bool) -> None:
    """Create an account (admins); give it a key with `backupctl key create --account NAME`."""
    with app.scope() as s:
        emit(views.account(accounts.create_account(s, name, role)), as_json)


@account.command("list")
@json_option
@pass_app
@handle_errors
def account_list(app: App, as_json: bool) -> None:
    """List the accounts and whether each is enabled (a user sees only its own)."""
    with app.scope() as s:
        emit([views.account(a) for a in accounts.list_accounts(s)], as_json)


@account.command("disable")
@click.argument("account_ref")
@json_option
@pass_app
@handle_errors
def account_disable(app: App, account_ref: str, as_json: bool) -> None:
    """Disable an account (name or id) until `account enable` (admins).

    None of its API keys authenticates from the next request on; what it owns stays, and
    its schedules and SLA backups carry on. An admin cannot disable its own account."""
    with app.scope() as s:
        emit(views.account(accounts.set_account_enabled(s, account_ref, False)), as_json)


@account.command("enable")
@click.argument("account_ref")
@json_option
@pass_app
@handle_errors
def account_enable(app: App, account_ref: str, as_json: bool) -> None:
    """Enable a disabled account (name or id) (admins): its keys that are active work again."""
    with app.scope() as s:
        emit(views.account(accounts.set_account_enabled(s, account_ref, True)), as_json)


@account.command("delete")
@click.argument("account_ref")
@json_option
@pass_app
@handle_errors
def account_delete(app: App, account_ref: str, as_json: bool) -> None:
    """Delete an account (name or id) with its API keys and finished jobs (admins).

    Refused while it owns VMs (destroyed ones included: they stay with their restore points),
    restore points or jobs under way. An admin cannot delete its own account."""
    with app.scope() as s:
        row = accounts.delete_account(s, account_ref)
        emit({"deleted": row.id, "name": row.name}, as_json)
