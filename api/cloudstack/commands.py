"""The backup framework's CloudStack commands, each one hop from the use case it calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from api.cloudstack import render
from api.cloudstack.params import Params
from orchestrator.domain.errors import Conflict, InvalidArgument, NotFound, Unsupported
from orchestrator.domain.jobparams import Ingest, RestoreVm
from orchestrator.domain.models import (
    BackupOffering,
    BackupSchedule,
    IntervalType,
    Job,
    JobKind,
    JobState,
    Volume,
)
from orchestrator.engine.core import Scope
from orchestrator.usecases import (
    accounts,
    assignments,
    backup_providers,
    backups,
    ingest,
    inventory,
    jobs,
    lookup,
    offerings,
    restores,
    schedules,
)
from providers.base import Capability


@dataclass(frozen=True)
class Call:
    scope: Scope
    params: Params


@dataclass(frozen=True)
class Listing:
    """A list answer: ``{"count": total, name: items}``."""

    name: str
    items: list[dict[str, Any]]
    total: int


@dataclass(frozen=True)
class Command:
    name: str
    handler: Callable[[Call], Any]
    admin: bool = False
    # A capability some enabled provider must have for the command to exist for the caller.
    needs: Capability | None = None
    # Answers a job id at once; the caller polls queryAsyncJobResult.
    is_async: bool = False


COMMANDS: dict[str, Command] = {}


def command(
    name: str, *, admin: bool = False, needs: Capability | None = None, is_async: bool = False
) -> Callable[[Any], Any]:
    def register(fn: Callable[[Call], Any]) -> Callable[[Call], Any]:
        COMMANDS[name.lower()] = Command(name, fn, admin, needs, is_async)
        return fn

    return register


class PageArgs(TypedDict):
    page: int
    pagesize: int


def _paging(p: Params) -> PageArgs:
    return {"page": p.int("page", 1) or 1, "pagesize": p.int("pagesize", 500) or 500}


def _offering(call: Call) -> BackupOffering:
    return lookup.offering(call.scope, call.params.required("id"))


# -- inventory ---------------------------------------------------------------------------------


@command("listZones")
def list_zones(call: Call) -> Listing:
    rows = [render.zone(z) for z in inventory.list_zones(call.scope)]
    if zone_id := call.params.str("id"):
        rows = [z for z in rows if z["id"] == zone_id]
    return Listing("zone", rows, len(rows))


@command("listVirtualMachines")
def list_vms(call: Call) -> Listing:
    p = call.params
    if vm_id := p.str("id"):
        rows = [render.vm(inventory.show_vm(call.scope, vm_id))]
        return Listing("virtualmachine", rows, 1)
    page = inventory.list_vms(
        call.scope,
        zone=p.str("zoneid"),
        offering_id=p.str("backupofferingid"),
        keyword=p.str("keyword") or p.str("name"),
        **_paging(p),
    )
    return Listing("virtualmachine", [render.vm(v) for v in page.items], page.total)


@command("listVolumes")
def list_volumes(call: Call) -> Listing:
    rows = inventory.list_volumes(call.scope, call.params.str("virtualmachineid"))
    if volume_id := call.params.str("id"):
        rows = [v for v in rows if v.id == volume_id]
    return Listing("volume", [render.volume(v) for v in rows], len(rows))


@command("deleteHost", admin=True)
def delete_host(call: Call) -> dict[str, Any]:
    inventory.remove_host(call.scope, call.params.required("id"))
    return {"success": True}


@command("deleteStoragePool", admin=True)
def delete_pool(call: Call) -> dict[str, Any]:
    inventory.remove_pool(call.scope, call.params.required("id"))
    return {"success": True}


# -- ingestion (CloudStack's VM import) --------------------------------------------------------


def _unmanaged(call: Call) -> tuple[str, list[dict[str, Any]]]:
    """The ``clusterid`` host's unmanaged VMs, as its latest discovery found them. Discovery is
    a job (reaching a vCenter or a KVM host takes seconds): the dispatcher repeats it, and
    ``POST /hosts/{id}/discover`` or ``backupctl host rediscover`` runs one now."""
    host = call.params.required("clusterid")
    found = ingest.unmanaged(call.scope, host)
    if found.job is None:
        raise Conflict(
            f"host {host} has not been discovered yet: run a discovery (POST /hosts/{host}/discover "
            "or backupctl host rediscover), then list again",
            field="clusterid",
        )
    return found.job.subject_id, found.vms


@command("listUnmanagedInstances", admin=True)
def list_unmanaged(call: Call) -> Listing:
    host_id, found = _unmanaged(call)
    p = call.params
    if name := p.str("name"):
        found = [vm for vm in found if vm["name"] == name]
    if keyword := p.str("keyword"):
        found = [vm for vm in found if keyword.lower() in vm["name"].lower()]
    paging = _paging(p)
    start = (paging["page"] - 1) * paging["pagesize"]
    host = inventory.find_host(call.scope, host_id)
    rows = [render.unmanaged_instance(vm, host) for vm in found[start : start + paging["pagesize"]]]
    return Listing("unmanagedinstance", rows, len(found))


# Required or common in CloudStack's importUnmanagedInstance but about the cloud's own sizing
# and template, which this service does not keep: accepted and left to the cloud.
_CLOUD_ONLY = ("serviceofferingid", "templateid")


@command("importUnmanagedInstance", admin=True, is_async=True)
def import_unmanaged(call: Call) -> Job:
    p = call.params
    host_id, found = _unmanaged(call)
    name = p.required("name")
    for ignored in _CLOUD_ONLY:
        p.str(ignored)
    vm = next((vm for vm in found if vm["name"] == name), None)
    if vm is None:
        raise InvalidArgument(
            f"no unmanaged instance named {name} on cluster {host_id} (as last discovered)", field="name"
        )
    owner = p.str("account") or call.scope.actor.name
    return ingest.import_vm(
        call.scope, host=host_id, uuid=vm["uuid"], account=owner, name=p.str("displayname")
    )


# -- accounts ----------------------------------------------------------------------------------


def _account_ref(p: Params) -> str:
    """CloudStack names an account by ``id``, or by ``account`` (its name)."""
    if ref := p.str("id") or p.str("account"):
        return ref
    raise InvalidArgument("Unable to execute API command due to missing parameter id", field="id")


@command("listAccounts")
def list_accounts(call: Call) -> Listing:
    rows = accounts.list_accounts(call.scope)
    if ref := call.params.str("id") or call.params.str("name"):
        rows = [a for a in rows if ref in (a.id, a.name)]
    return Listing("account", [render.account(a) for a in rows], len(rows))


@command("enableAccount", admin=True)
def enable_account(call: Call) -> dict[str, Any]:
    return {
        "account": render.account(accounts.set_account_enabled(call.scope, _account_ref(call.params), True))
    }


@command("disableAccount", admin=True)
def disable_account(call: Call) -> dict[str, Any]:
    # lock=true is CloudStack's "lock": the account's keys stop working and what it owns runs
    # on. lock=false would also stop its VMs, which this service does not manage.
    if not call.params.bool("lock"):
        raise Unsupported("disableAccount: only lock=true is supported (the account's VMs are left running)")
    row = accounts.set_account_enabled(call.scope, _account_ref(call.params), False)
    return {"account": render.account(row)}


@command("deleteAccount", admin=True)
def delete_account(call: Call) -> dict[str, Any]:
    accounts.delete_account(call.scope, call.params.required("id"))
    return {"success": True}


# -- providers and offerings ------------------------------------------------------------------


@command("listBackupProviders", admin=True)
def list_providers(call: Call) -> Listing:
    rows = backup_providers.list_providers(call.scope)
    if name := call.params.str("name"):
        rows = [r for r in rows if r.name == name]
    return Listing("providers", [render.provider(r) for r in rows], len(rows))


@command("listBackupProviderOfferings", admin=True)
def list_provider_offerings(call: Call) -> Listing:
    zone_id = call.params.required("zoneid")
    zone = inventory.find_zone(call.scope, zone_id)
    rows: list[dict[str, Any]] = []
    for provider in backup_providers.list_providers(call.scope):
        if provider.enabled and provider.zone_id in (None, zone.id):
            items = backup_providers.list_offerings(call.scope, provider.id, zone.id)
            rows.extend(render.provider_offering(o, zone.id) for o in items)
    return Listing("backupoffering", rows, len(rows))


@command("importBackupOffering", admin=True)
def import_offering(call: Call) -> dict[str, Any]:
    p = call.params
    zone = inventory.find_zone(call.scope, p.required("zoneid"))
    external_id = p.required("externalid")
    provider = p.str("provider") or _provider_for(call, zone.id, external_id)
    row = offerings.import_offering(
        call.scope,
        name=p.required("name"),
        description=p.str("description") or "",
        zone=zone.id,
        provider=provider,
        external_id=external_id,
        rpo=p.str("rpo") or "1d",
        timezone=p.str("timezone") or "UTC",
        allow_user_driven_backups=p.bool("allowuserdrivenbackups", True),
        retention_count=p.int("retention"),
    )
    return {"backupoffering": render.offering(row)}


def _provider_for(call: Call, zone_id: str, external_id: str) -> str:
    """CloudStack has one provider per zone; here the one offering ``externalid`` is chosen."""
    for provider in backup_providers.list_providers(call.scope):
        if provider.enabled and provider.zone_id in (None, zone_id):
            items = backup_providers.list_offerings(call.scope, provider.id, zone_id)
            if any(o.external_id == external_id for o in items):
                return provider.id
    raise InvalidArgument(f"no provider in this zone offers externalid {external_id}", field="externalid")


@command("listBackupOfferings")
def list_offerings(call: Call) -> Listing:
    p = call.params
    if offering_id := p.str("id"):
        return Listing("backupoffering", [render.offering(lookup.offering(call.scope, offering_id))], 1)
    page = offerings.list_offerings(call.scope, zone=p.str("zoneid"), keyword=p.str("keyword"), **_paging(p))
    return Listing("backupoffering", [render.offering(o) for o in page.items], page.total)


@command("updateBackupOffering", admin=True)
def update_offering(call: Call) -> dict[str, Any]:
    p = call.params
    changes: dict[str, Any] = {
        "name": p.str("name"),
        "description": p.str("description"),
        "rpo": p.str("rpo"),
        "timezone": p.str("timezone"),
    }
    if p.str("allowuserdrivenbackups") is not None:
        changes["allow_user_driven_backups"] = p.bool("allowuserdrivenbackups")
    row = offerings.update_offering(call.scope, _offering(call).id, **changes)
    return {"backupoffering": render.offering(row)}


@command("deleteBackupOffering", admin=True)
def delete_offering(call: Call) -> dict[str, Any]:
    offerings.delete_offering(call.scope, _offering(call).id)
    return {"success": True}


# -- assignment and schedules -----------------------------------------------------------------


@command("assignVirtualMachineToBackupOffering")
def assign(call: Call) -> dict[str, Any]:
    p = call.params
    assignments.assign(call.scope, p.required("virtualmachineid"), p.required("backupofferingid"))
    return {"success": True}


@command("removeVirtualMachineFromBackupOffering")
def unassign(call: Call) -> dict[str, Any]:
    p = call.params
    assignments.remove(call.scope, p.required("virtualmachineid"), forced=p.bool("forced"))
    return {"success": True}


@command("createBackupSchedule")
def create_schedule(call: Call) -> dict[str, Any]:
    p = call.params
    row = schedules.create(
        call.scope,
        vm_id=p.required("virtualmachineid"),
        interval_type=p.required("intervaltype"),
        schedule=p.required("schedule"),
        timezone=p.required("timezone"),
        max_backups=p.int("maxbackups", 0) or 0,
    )
    return {"backupschedule": render.schedule(row)}


def _schedule(call: Call) -> BackupSchedule:
    p = call.params
    if schedule_id := p.str("id"):
        return schedules.show(call.scope, schedule_id)
    vm_id = p.required("virtualmachineid")
    found = schedules.list_schedules(call.scope, vm_id)
    if interval := p.str("intervaltype"):
        found = [s for s in found if s.interval_type is IntervalType(interval.upper())]
    if not found:
        raise NotFound(f"virtual machine {vm_id} has no such backup schedule")
    return found[0]


@command("updateBackupSchedule")
def update_schedule(call: Call) -> dict[str, Any]:
    p = call.params
    current = _schedule(call)
    row = schedules.update(
        call.scope,
        current.id,
        schedule=p.str("schedule"),
        timezone=p.str("timezone"),
        max_backups=p.int("maxbackups"),
    )
    return {"backupschedule": render.schedule(row)}


@command("listBackupSchedule")
def list_schedules(call: Call) -> Listing:
    rows = schedules.list_schedules(call.scope, call.params.str("virtualmachineid"))
    return Listing("backupschedule", [render.schedule(r) for r in rows], len(rows))


@command("deleteBackupSchedule")
def delete_schedule(call: Call) -> dict[str, Any]:
    p = call.params
    if p.str("id") is None and p.str("intervaltype") is None:
        for row in schedules.list_schedules(call.scope, p.required("virtualmachineid")):
            schedules.delete(call.scope, row.id)
    else:
        schedules.delete(call.scope, _schedule(call).id)
    return {"success": True}


# -- backups and restores ---------------------------------------------------------------------


@command("createBackup", is_async=True)
def create_backup(call: Call) -> Job:
    return backups.create_backup(call.scope, call.params.required("virtualmachineid"))


@command("listBackups")
def list_backups(call: Call) -> Listing:
    p = call.params
    page = backups.list_backups(
        call.scope,
        backup_id=p.str("id"),
        vm_id=p.str("virtualmachineid"),
        zone=p.str("zoneid"),
        account=p.str("account"),
        offering_id=p.str("backupofferingid"),
        keyword=p.str("keyword"),
        **_paging(p),
    )
    return Listing("backup", [render.backup(b) for b in page.items], page.total)


@command("deleteBackup", is_async=True)
def delete_backup(call: Call) -> Job:
    p = call.params
    return backups.delete_backup(call.scope, p.required("id"), forced=p.bool("forced"))


@command("restoreBackup", is_async=True)
def restore_backup(call: Call) -> Job:
    p = call.params
    return restores.restore_vm(call.scope, p.required("id"), stop=p.bool("stop"))


@command("restoreVolumeFromBackupAndAttachToVM", needs=Capability.RESTORE_VOLUME, is_async=True)
def restore_volume(call: Call) -> Job:
    p = call.params
    return restores.restore_volume(
        call.scope, p.required("id"), p.required("volumeid"), p.required("virtualmachineid")
    )


@command("createVMFromBackup", needs=Capability.RESTORE_TO_NEW_VM, is_async=True)
def create_vm_from_backup(call: Call) -> Job:
    p = call.params
    name = p.str("name") or p.str("displayname")
    if name is None:
        raise InvalidArgument("Unable to execute API command due to missing parameter name", field="name")
    return restores.restore_to_new_vm(call.scope, p.required("backupid"), name, host=p.str("hostid"))


# -- async jobs and discovery ------------------------------------------------------------------


@command("queryAsyncJobResult")
def query_job(call: Call) -> dict[str, Any]:
    job = jobs.show(call.scope, call.params.required("jobid"))
    return render.async_job(job, job_result(call.scope, job))


def job_result(scope: Scope, job: Job) -> dict[str, Any] | None:
    """What a finished job answers, in the shape of the object it made or touched."""
    if job.state is not JobState.SUCCEEDED:
        return None
    if job.subject_type == "backup" and job.kind.value == "backup":
        return {"backup": render.backup(backups.show(scope, job.subject_id))}
    if job.kind is JobKind.RESTORE_VM and (restored := RestoreVm.of(job)).target is not None:
        return {"virtualmachine": render.vm(inventory.show_vm(scope, restored.vm_id))}
    if job.kind is JobKind.INGEST and Ingest.of(job).action == "import" and job.result:
        return {"virtualmachine": render.vm(inventory.show_vm(scope, job.result["vm_id"]))}
    if job.kind.value == "restore_volume" and job.result:
        volume = scope.session.get(Volume, job.result["volume_id"])
        return {"volume": render.volume(volume)} if volume else {"success": True}
    return {"success": True}


@command("listAsyncJobs")
def list_jobs(call: Call) -> Listing:
    page = jobs.list_jobs(call.scope, **_paging(call.params))
    rows = [render.async_job(j, None) for j in page.items]
    return Listing("asyncjobs", rows, page.total)


@command("listApis")
def list_apis(call: Call) -> Listing:
    visible = available(call.scope)
    if name := call.params.str("name"):
        visible = [c for c in visible if c.name.lower() == name.lower()]
    rows = [{"name": c.name, "isasync": c.is_async, "since": "4.14.0"} for c in visible]
    return Listing("api", rows, len(rows))


def available(scope: Scope) -> list[Command]:
    """Commands this caller may use: role allows it and some enabled provider can do it."""
    caps = backup_providers.capabilities_in_use(scope)
    return [
        c
        for c in COMMANDS.values()
        if (scope.actor.is_admin or not c.admin) and (c.needs is None or c.needs in caps)
    ]


def check_available(scope: Scope, cmd: Command) -> None:
    if cmd.needs is not None and cmd.needs not in backup_providers.capabilities_in_use(scope):
        raise Unsupported(
            f"{cmd.name} is not available: no enabled backup provider supports {cmd.needs.value}"
        )
    if cmd.admin:
        scope.actor.require_admin(f"call {cmd.name}")
