"""Restore points: taking them ad hoc, listing and deleting them."""

from __future__ import annotations

from typing import Any

from api import views
from api.rest import schemas as s
from api.rest.auth import use_case
from api.rest.blueprint import rest_blueprint
from api.rest.jobs import ACCEPTED_HEADERS, accepted
from api.rest.pages import of_page
from orchestrator.usecases import backups, verification

blp = rest_blueprint(
    "backups",
    __name__,
    "Restore points of VMs (also of destroyed ones). Taking and deleting one answers 202 "
    "with the job that does it.",
)


@blp.route("/backups", methods=["GET"])
@blp.arguments(s.BackupQuery, location="query")
@blp.response(200, s.BackupPage)
@blp.errors(400, 404)
def list_backups(args: dict[str, Any]) -> dict[str, Any]:
    """List restore points, newest first (users: their own)"""
    with use_case() as scope:
        return of_page(backups.list_backups(scope, **args), views.backup)


@blp.route("/backups", methods=["POST"])
@blp.arguments(s.BackupCreate)
@blp.response(202, s.Job, headers=ACCEPTED_HEADERS)
@blp.errors(400, 403, 404, 409)
def create_backup(args: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Take a backup of the VM now"""
    with use_case() as scope:
        return accepted(
            backups.create_backup(scope, args["vm_id"], idempotency_key=args.get("idempotency_key"))
        )


@blp.route("/backups/<id:backup_id>", methods=["GET"])
@blp.response(200, s.Backup)
@blp.errors(404)
def get_backup(backup_id: str) -> dict[str, Any]:
    """Show a restore point"""
    with use_case() as scope:
        return views.backup(backups.show(scope, backup_id))


@blp.route("/backups/<id:backup_id>", methods=["DELETE"])
@blp.arguments(s.ForcedQuery, location="query")
@blp.response(202, s.Job, headers=ACCEPTED_HEADERS)
@blp.errors(404, 409, 422)
def delete_backup(args: dict[str, Any], backup_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Delete a restore point

    422 where the provider cannot delete one point that others depend on; forced=true
    then deletes the whole chain, if the provider can.
    """
    with use_case() as scope:
        return accepted(backups.delete_backup(scope, backup_id, forced=args["forced"]))


@blp.route("/backups/<id:backup_id>/verify", methods=["POST"])
@blp.response(202, s.Job, headers=ACCEPTED_HEADERS)
@blp.errors(404, 409, 422)
def verify_backup(backup_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Re-read a restore point at its back end and check it (the job result says whether it
    is intact; a point found damaged becomes Error). 422 where the provider cannot verify."""
    with use_case() as scope:
        return accepted(verification.verify_backup(scope, backup_id))
