"""``backupctl job``: the jobs every backup, restore and delete runs as: list, follow, cancel."""

from __future__ import annotations

import click

from api import views
from api.cli.app import App, pass_app
from api.cli.output import emit, handle_errors, json_option, paging_options
from orchestrator.usecases import jobs

# ``target``: the VM (or host) the job works on, by name; --json keeps subject_id.
JOB_COLUMNS = ["id", "kind", "state", "target", "attempts", "progress", "error"]


@click.group()
def job() -> None:
    """Jobs: every backup, restore and delete runs as one."""


@job.command("list")
@click.option("--state", help="Only this state: planned, queued, running, succeeded, failed, cancelled.")
@click.option(
    "--kind",
    help="Only this kind: backup, restore_vm, restore_volume, delete_backup, ingest, verify, prune.",
)
@click.option("--subject", help="Only jobs about this object id; a VM id includes its restore points' jobs.")
@paging_options
@json_option
@pass_app
@handle_errors
def job_list(
    app: App,
    state: str | None,
    kind: str | None,
    subject: str | None,
    page: int,
    pagesize: int,
    as_json: bool,
) -> None:
    """List jobs, newest first (users see only their own)."""
    with app.scope() as s:
        result = jobs.list_jobs(s, state=state, kind=kind, subject_id=subject, page=page, pagesize=pagesize)
        rows = [views.job(j) for j in result.items]
        if as_json:
            emit(rows, True)
            return
        names = jobs.target_names(s, result.items)
    emit([{**row, "target": names.get(row["subject_id"])} for row in rows], False, JOB_COLUMNS)


@job.command("show")
@click.argument("job_id")
@json_option
@pass_app
@handle_errors
def job_show(app: App, job_id: str, as_json: bool) -> None:
    """Show one job: state, attempts, progress, result or error."""
    with app.scope() as s:
        emit(views.job(jobs.show(s, job_id)), as_json)


@job.command("cancel")
@click.argument("job_id")
@json_option
@pass_app
@handle_errors
def job_cancel(app: App, job_id: str, as_json: bool) -> None:
    """Cancel a job.

    A planned or queued job stops now; a running one at its next progress report or lease
    renewal (one whose work completes first still succeeds)."""
    with app.scope() as s:
        emit(views.job(jobs.cancel(s, job_id)), as_json)


@job.command("logs")
@click.argument("job_id")
@json_option
@pass_app
@handle_errors
def job_logs(app: App, job_id: str, as_json: bool) -> None:
    """What happened to the job: attempts, workers, retries, failures."""
    with app.scope() as s:
        entries = [views.job_log(e) for e in jobs.logs(s, job_id)]
    if as_json:
        emit(entries, True)
        return
    for e in entries:
        click.echo(f"{e['at']}  {e['level']:<7}  {e['message']}")
