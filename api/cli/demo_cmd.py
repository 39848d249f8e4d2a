"""``backupctl demo``: a throwaway embedded installation in which the narrative of demo.py runs."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import click

from api.cli.demo import run_demo
from orchestrator.bootstrap import build_core
from orchestrator.infra.config import Settings
from orchestrator.usecases import accounts


@click.command()
@click.option(
    "--home",
    envvar="BACKUP_HOME",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo's data here (must be empty); default: $BACKUP_HOME, else a new temporary folder.",
)
def demo(home: Path | None) -> None:
    """Build a small cloud with the dummy provider, back up, restore, and narrate it."""
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="backup-demo-"))
        click.echo(f"BACKUP_HOME is not set: the demo's data goes to a new folder, {home}")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'orchestrator.db'}")
    core = build_core(settings)
    issued = accounts.bootstrap(core)
    if issued is None:
        raise click.ClickException(f"{home} already holds data; give the demo an empty --home")
    click.echo(f"Embedded installation in {home} (SQLite). Admin API key: {issued.apikey}")
    run_demo(core)
    exe = shutil.which("backupctl") or sys.argv[0]
    click.secho(f"\nDemo data kept in {home}. Explore it with:", bold=True)
    click.echo(f"  BACKUP_HOME={home} {exe} backup list --all")
    click.echo(f"  BACKUP_HOME={home} {exe} --as alice job list")
