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
    """List the accounts (a user sees only its own)."""
    with app.scope() as s:
        emit([views.account(a) for a in accounts.list_accounts(s)], as_json)
