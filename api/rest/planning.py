"""The SLA plan and the capacity report, for operators: the same use cases as ``backupctl
plan`` and ``backupctl capacity``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from api import views
from api.rest import schemas as s
from api.rest.auth import use_case
from api.rest.blueprint import rest_blueprint
from orchestrator.usecases import capacity_report, planning

blp = rest_blueprint(
    "planning",
    __name__,
    "The SLA backups planned for the coming hours, and whether the backups fit their windows.",
)


@blp.route("/plan", methods=["GET"])
@blp.arguments(s.PlanQuery, location="query")
@blp.response(200, s.PlanView)
@blp.errors(400, 403)
def show_plan(args: dict[str, Any]) -> dict[str, Any]:
    """The stored SLA plan (admins)

    The backups the dispatcher planned to start within ``hours``; with ``fresh=true`` a dry
    plan made now from the inventory, stored nowhere.
    """
    with use_case() as scope:
        shown = planning.show(scope, horizon=timedelta(hours=args["hours"]), fresh=args["fresh"])
        return views.plan(shown, args.get("pool_id"))


@blp.route("/capacity", methods=["GET"])
@blp.arguments(s.CapacityQuery, location="query")
@blp.response(200, s.CapacityView)
@blp.errors(400, 403)
def show_capacity(args: dict[str, Any]) -> dict[str, Any]:
    """Whether the SLA backups fit (admins)

    Lower bounds per night, pool and host against the open window time, demand per offering,
    the VMs that will miss their RPO and the smallest change that would fix it.
    """
    with use_case() as scope:
        return capacity_report.report(scope, nights=args["nights"]).to_dict()
