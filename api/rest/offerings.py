"""SLA offerings: a provider's policy imported with an RPO, windows, blackouts, retention."""

from __future__ import annotations

from typing import Any

from api import views
from api.rest import schemas as s
from api.rest.auth import use_case
from api.rest.blueprint import rest_blueprint
from api.rest.pages import of_page
from orchestrator.usecases import offerings

blp = rest_blueprint(
    "offerings",
    __name__,
    "Named service levels (gold, silver, bronze...) users put their VMs under. Everyone "
    "lists them; admins import, change and delete them.",
)


@blp.route("/offerings", methods=["GET"])
@blp.arguments(s.OfferingQuery, location="query")
@blp.response(200, s.OfferingPage)
def list_offerings(args: dict[str, Any]) -> dict[str, Any]:
    """List backup offerings"""
    with use_case() as scope:
        return of_page(offerings.list_offerings(scope, **args), views.offering)


@blp.route("/offerings", methods=["POST"])
@blp.arguments(s.OfferingCreate)
@blp.response(201, s.Offering)
@blp.errors(400, 403, 404, 409)
def import_offering(args: dict[str, Any]) -> dict[str, Any]:
    """Import a provider's offering as an SLA offering (admin)"""
    with use_case() as scope:
        return views.offering(offerings.import_offering(scope, **args))


@blp.route("/offerings/<id:offering_id>", methods=["GET"])
@blp.response(200, s.Offering)
@blp.errors(404)
def get_offering(offering_id: str) -> dict[str, Any]:
    """Show a backup offering"""
    with use_case() as scope:
        return views.offering(offerings.show(scope, offering_id))


@blp.route("/offerings/<id:offering_id>", methods=["PATCH"])
@blp.arguments(s.OfferingUpdate)
@blp.response(200, s.Offering)
@blp.errors(400, 403, 404, 409)
def update_offering(args: dict[str, Any], offering_id: str) -> dict[str, Any]:
    """Change an offering's name, description, SLA or retention (admin)

    A new SLA (RPO, time zone, windows, blackouts) re-plans the offering's VMs in the same
    transaction: their planned backups move inside the new windows at once."""
    with use_case() as scope:
        return views.offering(offerings.update_offering(scope, offering_id, **args))


@blp.route("/offerings/<id:offering_id>", methods=["DELETE"])
@blp.response(204)
@blp.errors(403, 404, 409)
def delete_offering(offering_id: str) -> None:
    """Delete an offering no VM uses (admin); its restore points stay restorable"""
    with use_case() as scope:
        offerings.delete_offering(scope, offering_id)
