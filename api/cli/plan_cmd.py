"""``backupctl plan``: the SLA backups planned for the next hours."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option
from orchestrator.usecases import planning


@click.command("plan")
@click.option("--hours", type=click.IntRange(1, 24 * 14), default=24, show_default=True, help="Horizon.")
@click.option("--pool", "pool_id", help="Only jobs on this pool's queue.")
@click.option(
    "--fresh",
    is_flag=True,
    help="Plan now from the inventory, as a dry run, instead of showing the stored plan.",
)
@json_option
@pass_app
@handle_errors
def plan(app: App, hours: int, pool_id: str | None, fresh: bool, as_json: bool) -> None:
    """The SLA backups planned to start in the next hours, per pool, as the dispatcher stored
    them (`backupctl serve`, `dispatcher` and `tick` plan and release). With --fresh, what the
    planner would plan now from the inventory, without storing anything."""
    with app.scope() as s:
        shown = planning.show(s, horizon=timedelta(hours=hours), fresh=fresh)
    body = views.plan(shown, pool_id)
    jobs = body["jobs"]
    if as_json:
        emit(body, True)
        return
    by_pool = defaultdict(list)
    for job in jobs:
        by_pool[job["pool_name"] or job["queue"]].append(job)
    for pool, items in sorted(by_pool.items()):
        late = sum(j["late"] for j in items)
        click.secho(f"\npool {pool}: {len(items)} job(s), {late} late", bold=True)
        emit(items, False, ["start", "end", "deadline", "vm_name", "late", "reason"])
    if not jobs and fresh:
        click.echo("no SLA backups due in this horizon")
    elif not jobs:
        click.echo(
            "no SLA backups planned in this horizon: the dispatcher (backupctl serve, dispatcher or "
            "tick) stores the plan; --fresh shows what it would plan now"
        )
    for item in body["unplaceable"]:
        click.secho(f"unplaceable: {item['vm_name'] or item['vm_id']}: {item['reason']}", fg="red")
