"""Inventory: zones, hosts, storage pools, VMs and their volumes."""

from __future__ import annotations

from typing import Any

from api import views
from api.rest import schemas as s
from api.rest.auth import use_case
from api.rest.blueprint import rest_blueprint
from api.rest.jobs import ACCEPTED_HEADERS, accepted
from api.rest.pages import named_like, of_list, of_page
from orchestrator.usecases import ingest, inventory

blp = rest_blueprint(
    "inventory",
    __name__,
    "The cloud as this service knows it. Users see zones and their own VMs; hosts, pools "
    "and registering anything are for admins.",
)


@blp.route("/zones", methods=["GET"])
@blp.arguments(s.ZoneQuery, location="query")
@blp.response(200, s.ZonePage)
def list_zones(args: dict[str, Any]) -> dict[str, Any]:
    """List zones"""
    with use_case() as scope:
        rows = named_like(inventory.list_zones(scope), args.get("keyword"))
        return of_list(rows, args, views.zone)


@blp.route("/zones", methods=["POST"])
@blp.arguments(s.ZoneCreate)
@blp.response(201, s.Zone)
@blp.errors(400, 403, 409)
def create_zone(args: dict[str, Any]) -> dict[str, Any]:
    """Register a zone (admin)"""
    with use_case() as scope:
        return views.zone(inventory.create_zone(scope, args["name"], args["description"]))


@blp.route("/zones/<id:zone>", methods=["GET"])
@blp.response(200, s.Zone)
@blp.errors(404)
def get_zone(zone: str) -> dict[str, Any]:
    """Show a zone, by id or name"""
    with use_case() as scope:
        return views.zone(inventory.find_zone(scope, zone))


@blp.route("/hosts", methods=["GET"])
@blp.arguments(s.ZonedQuery, location="query")
@blp.response(200, s.HostPage)
@blp.errors(403)
def list_hosts(args: dict[str, Any]) -> dict[str, Any]:
    """List hosts (admin)"""
    with use_case() as scope:
        rows = named_like(inventory.list_hosts(scope, zone=args.get("zone")), args.get("keyword"))
        return of_list(rows, args, views.host)


@blp.route("/hosts", methods=["POST"])
@blp.arguments(s.HostCreate)
@blp.response(201, s.Host)
@blp.errors(400, 403, 404, 409)
def create_host(args: dict[str, Any]) -> dict[str, Any]:
    """Register a host (admin)"""
    with use_case() as scope:
        return views.host(inventory.create_host(scope, **args))


@blp.route("/hosts/<id:host_id>", methods=["PATCH"])
@blp.arguments(s.HostUpdate)
@blp.response(200, s.Host)
@blp.errors(400, 403, 404, 409)
def update_host(args: dict[str, Any], host_id: str) -> dict[str, Any]:
    """Change a host's name, address or concurrency limit (admin); what is not given keeps its value"""
    with use_case() as scope:
        return views.host(inventory.update_host(scope, host_id, **args))


@blp.route("/hosts/<id:host_id>", methods=["DELETE"])
@blp.response(204)
@blp.errors(403, 404, 409)
def remove_host(host_id: str) -> None:
    """Remove a host (admin); refused while it runs live VMs or has jobs under way"""
    with use_case() as scope:
        inventory.remove_host(scope, host_id)


@blp.route("/hosts/<id:host_id>/connection", methods=["PUT"])
@blp.arguments(s.HostConnection)
@blp.response(200, s.ConnectedHost)
@blp.errors(400, 403, 404)
def set_host_connection(args: dict[str, Any], host_id: str) -> dict[str, Any]:
    """Set how workers reach a host (admin); checked by the host's driver

    Paths must be absolute (400). A key or known_hosts file that is not on the API's
    machine is stored all the same, with a sentence in `warnings`: workers read it, and
    they may run elsewhere.
    """
    with use_case() as scope:
        return views.connected_host(ingest.set_connection(scope, host_id, args["connection"]))


@blp.route("/hosts/<id:host_id>/discover", methods=["POST"])
@blp.response(202, s.Job, headers=ACCEPTED_HEADERS)
@blp.errors(403, 404, 409)
def discover_unmanaged(host_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Find the VMs a host runs that the inventory does not know, and re-link managed VMs whose
    domain was replaced (admin; the job result lists both)"""
    with use_case() as scope:
        return accepted(ingest.discover(scope, host_id))


@blp.route("/hosts/<id:host_id>/import", methods=["POST"])
@blp.arguments(s.VMImport)
@blp.response(202, s.Job, headers=ACCEPTED_HEADERS)
@blp.errors(400, 403, 404, 409)
def import_unmanaged(args: dict[str, Any], host_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Import an unmanaged VM with its disks, NICs and controllers (admin; an ingest job)"""
    with use_case() as scope:
        return accepted(ingest.import_vm(scope, host=host_id, **args))


@blp.route("/pools", methods=["GET"])
@blp.arguments(s.ZonedQuery, location="query")
@blp.response(200, s.PoolPage)
@blp.errors(403)
def list_pools(args: dict[str, Any]) -> dict[str, Any]:
    """List storage pools (admin)"""
    with use_case() as scope:
        rows = named_like(inventory.list_pools(scope, zone=args.get("zone")), args.get("keyword"))
        return of_list(rows, args, views.pool)


@blp.route("/pools", methods=["POST"])
@blp.arguments(s.PoolCreate)
@blp.response(201, s.Pool)
@blp.errors(400, 403, 404, 409)
def create_pool(args: dict[str, Any]) -> dict[str, Any]:
    """Register a storage pool (admin)"""
    with use_case() as scope:
        return views.pool(inventory.create_pool(scope, **args))


@blp.route("/pools/<id:pool_id>", methods=["PATCH"])
@blp.arguments(s.PoolUpdate)
@blp.response(200, s.Pool)
@blp.errors(400, 403, 404, 409)
def update_pool(args: dict[str, Any], pool_id: str) -> dict[str, Any]:
    """Change a storage pool's name, path, concurrency or bandwidth limit (admin; a null
    bandwidth drops the limit); what is not given keeps its value"""
    unlimited = "bandwidth_bytes_per_s" in args and args["bandwidth_bytes_per_s"] is None
    with use_case() as scope:
        return views.pool(inventory.update_pool(scope, pool_id, unlimited_bandwidth=unlimited, **args))


@blp.route("/pools/<id:pool_id>", methods=["DELETE"])
@blp.response(204)
@blp.errors(403, 404, 409)
def remove_pool(pool_id: str) -> None:
    """Remove a storage pool (admin); refused while it holds volumes or has jobs under way"""
    with use_case() as scope:
        inventory.remove_pool(scope, pool_id)


@blp.route("/vms", methods=["GET"])
@blp.arguments(s.VMQuery, location="query")
@blp.response(200, s.VMPage)
def list_vms(args: dict[str, Any]) -> dict[str, Any]:
    """List virtual machines (users: their own)"""
    with use_case() as scope:
        return of_page(inventory.list_vms(scope, **args), views.vm)


@blp.route("/vms", methods=["POST"])
@blp.arguments(s.VMCreate)
@blp.response(201, s.VM)
@blp.errors(400, 403, 404, 409)
def register_vm(args: dict[str, Any]) -> dict[str, Any]:
    """Register a virtual machine with its volumes (admin)"""
    vm_id = args.pop("id", None)
    with use_case() as scope:
        return views.vm(inventory.register_vm(scope, vm_id=vm_id, **args))


@blp.route("/vms/<id:vm_id>", methods=["GET"])
@blp.response(200, s.VM)
@blp.errors(404)
def get_vm(vm_id: str) -> dict[str, Any]:
    """Show a virtual machine"""
    with use_case() as scope:
        return views.vm(inventory.show_vm(scope, vm_id))


@blp.route("/vms/<id:vm_id>", methods=["PATCH"])
@blp.arguments(s.VMUpdate)
@blp.response(200, s.VM)
@blp.errors(400, 403, 404)
def update_vm(args: dict[str, Any], vm_id: str) -> dict[str, Any]:
    """Record that a virtual machine was stopped or started (admin); what is not given keeps its value"""
    with use_case() as scope:
        return views.vm(inventory.update_vm(scope, vm_id, **args))


@blp.route("/vms/<id:vm_id>", methods=["DELETE"])
@blp.response(204)
@blp.errors(403, 404)
def destroy_vm(vm_id: str) -> None:
    """Remove a virtual machine from the inventory (admin); its restore points stay"""
    with use_case() as scope:
        inventory.destroy_vm(scope, vm_id)


@blp.route("/vms/<id:vm_id>/volumes", methods=["GET"])
@blp.arguments(s.VolumeQuery, location="query")
@blp.response(200, s.VolumePage)
@blp.errors(404)
def list_volumes(args: dict[str, Any], vm_id: str) -> dict[str, Any]:
    """List a virtual machine's volumes"""
    with use_case() as scope:
        rows = inventory.list_volumes(scope, vm_id)
        if kind := args.get("type"):
            rows = [v for v in rows if v.type.value == kind]
        return of_list(rows, args, views.volume)
