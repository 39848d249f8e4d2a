"""Users' own backup schedules, CloudStack style: one per VM and interval type."""

from __future__ import annotations

from typing import Any

from api import views
from api.rest import schemas as s
from api.rest.auth import use_case
from api.rest.blueprint import rest_blueprint
from api.rest.pages import of_list
from orchestrator.usecases import schedules

blp = rest_blueprint(
    "schedules",
    __name__,
    "HOURLY, DAILY, WEEKLY or MONTHLY backups of a VM, each keeping at most max_backups "
    "restore points of its own. Only where the VM's offering allows user-driven backups.",
)


@blp.route("/schedules", methods=["GET"])
@blp.arguments(s.ScheduleQuery, location="query")
@blp.response(200, s.SchedulePage)
@blp.errors(404)
def list_schedules(args: dict[str, Any]) -> dict[str, Any]:
    """List backup schedules (users: of their own VMs)"""
    with use_case() as scope:
        rows = schedules.list_schedules(scope, args.get("vm_id"))
        if interval := args.get("interval_type"):
            rows = [r for r in rows if r.interval_type.value == interval]
        return of_list(rows, args, views.schedule)


@blp.route("/schedules", methods=["POST"])
@blp.arguments(s.ScheduleCreate)
@blp.response(201, s.Schedule)
@blp.errors(400, 403, 404, 409)
def save_schedule(args: dict[str, Any]) -> dict[str, Any]:
    """Create the VM's schedule for this interval type (or replace the one there is)"""
    with use_case() as scope:
        return views.schedule(schedules.create(scope, **args))


@blp.route("/schedules/<id:schedule_id>", methods=["GET"])
@blp.response(200, s.Schedule)
@blp.errors(404)
def get_schedule(schedule_id: str) -> dict[str, Any]:
    """Show a backup schedule"""
    with use_case() as scope:
        return views.schedule(schedules.show(scope, schedule_id))


@blp.route("/schedules/<id:schedule_id>", methods=["PATCH"])
@blp.arguments(s.ScheduleUpdate)
@blp.response(200, s.Schedule)
@blp.errors(400, 404)
def update_schedule(args: dict[str, Any], schedule_id: str) -> dict[str, Any]:
    """Change a schedule's time, time zone or max_backups"""
    with use_case() as scope:
        return views.schedule(schedules.update(scope, schedule_id, **args))


@blp.route("/schedules/<id:schedule_id>", methods=["DELETE"])
@blp.response(204)
@blp.errors(404)
def delete_schedule(schedule_id: str) -> None:
    """Delete a backup schedule (its restore points stay)"""
    with use_case() as scope:
        schedules.delete(scope, schedule_id)
