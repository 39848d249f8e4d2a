"""``backupctl``: the operator's and the user's command line."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import click

from api.cli import ingest_cmds  # noqa: F401  (adds host connect, vm unmanaged/import)
from api.cli.account_cmds import account, audit_log, key
from api.cli.app import App, pass_app
from api.cli.backup_cmds import backup, job, restore, schedule, tick
from api.cli.db_cmds import db
from api.cli.demo import run_demo
from api.cli.inventory_cmds import host, pool, vm, zone
from api.cli.offering_cmds import offering, provider
from api.cli.output import emit, handle_errors, json_option
from api.cli.plan_cmds import capacity_cmd, plan_cmd
from api.cli.serve_cmd import serve
from api.cli.worker_cmds import dispatcher, worker
from orchestrator import __version__
from orchestrator.bootstrap import build_core
from orchestrator.infra.config import Settings
from orchestrator.usecases import accounts


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


@cli.command()
@json_option
@pass_app
@handle_errors
def init(app: App, as_json: bool) -> None:
    """Create the database (or migrate it) and, the first time, the admin account and key."""
    issued = accounts.bootstrap(app.core)
    out = {
        "home": str(app.settings.home),
        "database": app.core.db.engine.url.render_as_string(hide_password=True),
        "created_admin": issued is not None,
    }
    if issued:
        out |= {"apikey": issued.apikey, "secretkey": issued.secretkey}
    emit(out, as_json)
    if issued and not as_json:
        click.echo("\nThe secret key is shown only now: keep it.")


@cli.command()
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help="Keep the demo's data here.")
def demo(home: Path | None) -> None:
    """Build a small cloud with the dummy provider, back up, restore, and narrate it."""
    home = home or Path(tempfile.mkdtemp(prefix="backup-demo-"))
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'orchestrator.db'}")
    core = build_core(settings)
    issued = accounts.bootstrap(core)
    if issued is None:
        raise click.ClickException(f"{home} already holds data; give the demo an empty --home")
    click.echo(f"Embedded installation in {home} (SQLite). Admin API key: {issued.apikey}")
    run_demo(core)
    exe = shutil.which("backupctl") or sys.argv[0]
    click.secho(f"\nDemo data kept in {home}. Explore it with:", bold=True)
    click.echo(f"  BACKUP_HOME={home} {exe} backup list")
    click.echo(f"  BACKUP_HOME={home} {exe} --as alice job list")


for group in (
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
    plan_cmd,
    capacity_cmd,
    serve,
    worker,
    dispatcher,
    db,
):
    cli.add_command(group)


if __name__ == "__main__":
    cli()
