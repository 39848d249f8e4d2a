"""Jobs: every long operation answers 202 with one; poll it here for state and progress."""

from __future__ import annotations

from typing import Any

from api import views
from api.rest import schemas as s
from api.rest.auth import use_case
from api.rest.blueprint import PREFIX, rest_blueprint
from api.rest.pages import of_page
from orchestrator.domain.models import Job
from orchestrator.usecases import jobs

blp = rest_blueprint(
    "jobs",
    __name__,
    "Backups, restores and deletions run as jobs: queued, running, then succeeded, failed "
    "or cancelled, with progress as they go.",
)

ACCEPTED_HEADERS = {"Location": {"description": "The job to poll.", "schema": {"type": "string"}}}


def accepted(job: Job) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The 202 answer of a long operation: the job, and where to poll it."""
    return views.job(job), 202, {"Location": f"{PREFIX}/jobs/{job.id}"}


@blp.route("/jobs", methods=["GET"])
@blp.arguments(s.JobQuery, location="query")
@blp.response(200, s.JobPage)
@blp.errors(400)
def list_jobs(args: dict[str, Any]) -> dict[str, Any]:
    """List jobs, newest first (users: their own)"""
    with use_case() as scope:
        return of_page(jobs.list_jobs(scope, **args), views.job)


@blp.route("/jobs/<id:job_id>", methods=["GET"])
@blp.response(200, s.Job)
@blp.errors(404)
def get_job(job_id: str) -> dict[str, Any]:
    """Show a job: state, attempts, progress, result or error"""
    with use_case() as scope:
        return views.job(jobs.show(scope, job_id))


@blp.route("/jobs/<id:job_id>/logs", methods=["GET"])
@blp.response(200, s.JobLogEntry(many=True))
@blp.errors(404)
def job_logs(job_id: str) -> list[dict[str, Any]]:
    """What happened to a job: attempts, workers, retries, failures (oldest first)"""
    with use_case() as scope:
        return [views.job_log(e) for e in jobs.logs(scope, job_id)]


@blp.route("/jobs/<id:job_id>/cancel", methods=["POST"])
@blp.response(200, s.Job)
@blp.errors(404, 409)
def cancel_job(job_id: str) -> dict[str, Any]:
    """Cancel a job: a queued one at once, a running one at its next progress report"""
    with use_case() as scope:
        return views.job(jobs.cancel(scope, job_id))
