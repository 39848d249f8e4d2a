"""Operator commands for the SLA planner."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option
from orchestrator.usecases import capacity_report, planning


@click.command("plan")
@click.option("--hours", type=click.IntRange(1, 24 * 14), default=24, show_default=True, help="Horizon.")
@click.option("--pool", "pool_id", help="Only jobs on this pool's queue.")
@json_option
@pass_app
@handle_errors
def plan_cmd(app: App, hours: int, pool_id: str | None, as_json: bool) -> None:
    """The SLA backups the planner would start in the next hours, per pool (nothing is stored;
    `backupctl tick` stores and releases the plan)."""
    app.actor.require_admin("see the SLA plan")
    result = planning.compute(app.core, horizon=timedelta(hours=hours))
    jobs = [views.planned_job(j) for j in result.jobs if not pool_id or j.queue == f"pool.{pool_id}"]
    unplaceable = [{"vm_id": u.vm_id, "reason": u.reason} for u in result.unplaceable]
    if as_json:
        emit({"jobs": jobs, "late": sum(j["late"] for j in jobs), "unplaceable": unplaceable}, True)
        return
    by_pool = defaultdict(list)
    for job in jobs:
        by_pool[job["queue"]].append(job)
    for queue, items in sorted(by_pool.items()):
        click.secho(f"\n{queue}: {len(items)} job(s), {sum(j['late'] for j in items)} late", bold=True)
        emit(items, False, ["start", "end", "deadline", "vm_id", "late", "reason"])
    if not jobs:
        click.echo("no SLA backups due in this horizon")
    for item in unplaceable:
        click.secho(f"unplaceable: {item['vm_id']}: {item['reason']}", fg="red")


@click.command("capacity")
@click.option("--nights", type=click.IntRange(1, 31), default=3, show_default=True)
@json_option
@pass_app
@handle_errors
def capacity_cmd(app: App, nights: int, as_json: bool) -> None:
    """Can the backups fit? Lower bounds per night, pool and host; demand per offering;
    VMs that will miss their RPO and the smallest change that fixes it."""
    with app.scope() as s:
        result = capacity_report.report(s, nights=nights)
    if as_json:
        emit(result.to_dict(), True)
        return
    for night in result.nights:
        state = "fits" if night["feasible"] else "INFEASIBLE"
        click.secho(
            f"\nnight of {night['night']}: {state}", bold=True, fg=None if night["feasible"] else "red"
        )
        emit(
            night["bounds"], False, ["kind", "name", "lb_hours", "open_hours", "ratio", "binding_term", "fix"]
        )
    click.secho("\ndemand per offering", bold=True)
    emit(result.offerings, False)
    if not result.failure_tolerant:
        click.secho(
            "\nnot failure tolerant: where an offering keeps no room to retry, a failed backup "
            "misses its RPO (see retry_fix)",
            fg="yellow",
        )
    click.secho(f"\nVMs that will miss their RPO: {len(result.misses)}", bold=True)
    if result.misses:
        emit(result.misses, False)
