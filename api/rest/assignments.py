"""Putting a VM under a backup offering, moving it to another, taking it out."""

from __future__ import annotations

from typing import Any

from api import views
from api.rest import schemas as s
from api.rest.auth import use_case
from api.rest.blueprint import rest_blueprint
from orchestrator.usecases import assignments

blp = rest_blueprint(
    "assignments",
    __name__,
    "A VM's backup offering. Changing it keeps the old restore points under the old "
    "offering; where the old provider would delete them, the change needs forced=true.",
)


@blp.route("/vms/<id:vm_id>/offering", methods=["PUT"])
@blp.arguments(s.Assignment)
@blp.response(200, s.VM)
@blp.errors(400, 404, 409)
def assign(args: dict[str, Any], vm_id: str) -> dict[str, Any]:
    """Put the VM under an offering, or move it to another one"""
    with use_case() as scope:
        return views.vm(assignments.change(scope, vm_id, args["offering_id"], forced=args["forced"]))


@blp.route("/vms/<id:vm_id>/offering", methods=["DELETE"])
@blp.arguments(s.ForcedQuery, location="query")
@blp.response(200, s.VM)
@blp.errors(404, 409)
def unassign(args: dict[str, Any], vm_id: str) -> dict[str, Any]:
    """Take the VM out of its offering (its schedules go too)"""
    with use_case() as scope:
        return views.vm(assignments.remove(scope, vm_id, forced=args["forced"]))
