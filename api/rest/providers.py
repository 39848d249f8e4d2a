"""Backup providers (admins): registering back ends and listing what each one offers."""

from __future__ import annotations

from typing import Any

from api import views
from api.rest import schemas as s
from api.rest.auth import use_case
from api.rest.blueprint import rest_blueprint
from api.rest.pages import named_like, of_list
from orchestrator.usecases import backup_providers, reconciliation

blp = rest_blueprint(
    "providers",
    __name__,
    "Back ends with their declared capabilities, and the policies each offers for import "
    "as SLA offerings. Admins only.",
)


@blp.route("/providers", methods=["GET"])
@blp.arguments(s.ZonedQuery, location="query")
@blp.response(200, s.ProviderPage)
@blp.errors(403)
def list_providers(args: dict[str, Any]) -> dict[str, Any]:
    """List backup providers (admin)"""
    with use_case() as scope:
        rows = backup_providers.list_providers(scope)
        if zone := args.get("zone"):
            rows = [r for r in rows if r.zone is None or zone in (r.zone_id, r.zone.name)]
        rows = named_like(rows, args.get("keyword"))
        return of_list(rows, args, lambda row: views.provider(row, scope.driver(row)))


@blp.route("/providers", methods=["POST"])
@blp.arguments(s.ProviderCreate)
@blp.response(201, s.Provider)
@blp.errors(400, 403, 404, 409)
def add_provider(args: dict[str, Any]) -> dict[str, Any]:
    """Register a backup provider (admin); the driver checks its configuration now"""
    with use_case() as scope:
        row = backup_providers.add(scope, **args)
        return views.provider(row, scope.driver(row))


@blp.route("/providers/<id:provider>", methods=["GET"])
@blp.response(200, s.Provider)
@blp.errors(403, 404)
def get_provider(provider: str) -> dict[str, Any]:
    """Show a backup provider and its capabilities (admin)"""
    with use_case() as scope:
        row = backup_providers.find(scope, provider)
        return views.provider(row, scope.driver(row))


@blp.route("/providers/<id:provider>", methods=["PATCH"])
@blp.arguments(s.ProviderUpdate)
@blp.response(200, s.Provider)
@blp.errors(400, 403, 404, 409)
def update_provider(args: dict[str, Any], provider: str) -> dict[str, Any]:
    """Rename, move, reconfigure, enable or disable a backup provider (admin); what is not given
    keeps its value. The driver checks a new configuration; secrets stay sealed and hidden"""
    with use_case() as scope:
        row = backup_providers.update(scope, provider, **args)
        return views.provider(row, scope.driver(row))


@blp.route("/providers/<id:provider>", methods=["DELETE"])
@blp.response(204)
@blp.errors(403, 404, 409)
def remove_provider(provider: str) -> None:
    """Remove a backup provider (admin); refused while it has offerings or restore points"""
    with use_case() as scope:
        backup_providers.remove(scope, provider)


@blp.route("/providers/<id:provider>/reconcile", methods=["POST"])
@blp.response(200, s.Reconcile)
@blp.errors(403, 404, 422)
def reconcile_provider(provider: str) -> dict[str, Any]:
    """Count the copies the provider's back end holds that no restore point records (admin)

    Lists the back end's restore points (providers with the list_restore_points capability),
    stores the count on the provider and exports it as a metric; deletes nothing."""
    with use_case() as scope:
        return views.reconciled(reconciliation.reconcile(scope, provider))


@blp.route("/providers/<id:provider>/offerings", methods=["GET"])
@blp.arguments(s.ProviderOfferingQuery, location="query")
@blp.response(200, s.ProviderOfferingPage)
@blp.errors(400, 403, 404)
def list_provider_offerings(args: dict[str, Any], provider: str) -> dict[str, Any]:
    """List the provider's own offerings in a zone, to import as SLA offerings (admin)"""
    with use_case() as scope:
        rows = backup_providers.list_offerings(scope, provider, args.get("zone"))
        return of_list(rows, args, views.provider_offering)
