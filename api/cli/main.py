"""``backupctl``: the operator's and the user's command line.

The root group and the one place that puts the commands together; each command group
lives in a module of its own, ``<group>_cmd.py``."""

from __future__ import annotations

import click

from api.cli.account_cmd import account
from api.cli.app import App
from api.cli.audit_cmd import audit_log
from api.cli.backup_cmd import backup
from api.cli.capacity_cmd import capacity
from api.cli.db_cmd import db
from api.cli.demo_cmd import demo
from api.cli.dispatcher_cmd import dispatcher
from api.cli.host_cmd import host
from api.cli.init_cmd import init
from api.cli.job_cmd import job
from api.cli.key_cmd import key
from api.cli.offering_cmd import offering
from api.cli.plan_cmd import plan
from api.cli.pool_cmd import pool
from api.cli.provider_cmd import provider
from api.cli.restore_cmd import restore
from api.cli.schedule_cmd import schedule
from api.cli.serve_cmd import serve
from api.cli.tick_cmd import tick
from api.cli.vm_cmd import vm
from api.cli.worker_cmd import worker
from api.cli.zone_cmd import zone
from orchestrator import __version__


@click.group()
@click.version_option(__version__)
@click.option(
    "--as",
    "as_account",
    envvar="BACKUP_ACCOUNT",
    help="Act as this account (name or id); default: the first admin.",
)
@click.pass_context
def cli(ctx: click.Context, as_account: str | None) -> None:
    """SLA-based backup & recovery orchestrator for VM clouds.

    Data lives in $BACKUP_HOME (SQLite by default); BACKUP_DATABASE_URL selects PostgreSQL.
    """
    ctx.obj = App(as_account)
    ctx.call_on_close(ctx.obj.close)


for command in (
    init,
    demo,
    zone,
    host,
    pool,
    vm,
    provider,
    offering,
    backup,
    schedule,
    restore,
    job,
    account,
    key,
    tick,
    audit_log,
    plan,
    capacity,
    serve,
    worker,
    dispatcher,
    db,
):
    cli.add_command(command)


if __name__ == "__main__":
    cli()
