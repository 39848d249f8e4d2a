"""``backupctl capacity``: whether the SLA backups fit, and what would make them."""

from __future__ import annotations

import click

from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option
from orchestrator.usecases import capacity_report


@click.command("capacity")
@click.option(
    "--nights",
    type=click.IntRange(1, 31),
    default=3,
    show_default=True,
    help="Nights to check, from tonight.",
)
@json_option
@pass_app
@handle_errors
def capacity(app: App, nights: int, as_json: bool) -> None:
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
