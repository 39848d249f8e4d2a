"""Restores: a whole VM from a restore point, or one volume attached to a VM."""

from __future__ import annotations

from typing import Any

from api.rest import schemas as s
from api.rest.auth import use_case
from api.rest.blueprint import rest_blueprint
from api.rest.jobs import ACCEPTED_HEADERS, accepted
from orchestrator.usecases import restores

blp = rest_blueprint(
    "restores",
    __name__,
    "Restoring answers 202 with the job that does it. A destroyed VM is recreated from its restore point.",
)


@blp.route("/backups/<id:backup_id>/restore", methods=["POST"])
@blp.arguments(s.VmRestore)
@blp.response(202, s.Job, headers=ACCEPTED_HEADERS)
@blp.errors(400, 404, 409, 422)
def restore_vm(args: dict[str, Any], backup_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Restore the whole VM from this restore point

    Its disks are overwritten in place, so a VM the inventory says is running is refused
    (409) unless `stop` is true; then 422 where its provider cannot stop it. The body is
    optional.
    """
    with use_case() as scope:
        return accepted(restores.restore_vm(scope, backup_id, stop=args["stop"]))


@blp.route("/backups/<id:backup_id>/restore-new-vm", methods=["POST"])
@blp.arguments(s.NewVmRestore)
@blp.response(202, s.Job, headers=ACCEPTED_HEADERS)
@blp.errors(400, 404, 409, 422)
def restore_to_new_vm(args: dict[str, Any], backup_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Restore into a new VM beside the original

    The new VM gets a new id and new volumes, owned by the restore point's account, in its
    zone; the original is left alone. 422 where the provider cannot restore to a new VM.
    """
    with use_case() as scope:
        return accepted(restores.restore_to_new_vm(scope, backup_id, args["name"], args.get("host")))


@blp.route("/backups/<id:backup_id>/restore-volume", methods=["POST"])
@blp.arguments(s.VolumeRestore)
@blp.response(202, s.Job, headers=ACCEPTED_HEADERS)
@blp.errors(400, 404, 409, 422)
def restore_volume(args: dict[str, Any], backup_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Restore one volume and attach it to a VM

    The VM must be in the restore point's zone. 422 where the provider cannot restore
    single volumes.
    """
    with use_case() as scope:
        return accepted(restores.restore_volume(scope, backup_id, args["volume_id"], args["vm_id"]))
