"""Objects in CloudStack's response shapes (names and fields as CloudStack clients expect)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.domain.models import (
    Account,
    Backup,
    BackupOffering,
    BackupProvider,
    BackupSchedule,
    Host,
    Job,
    JobState,
    Role,
    VirtualMachine,
    Volume,
    Zone,
)
from orchestrator.usecases.backups import BackupRow
from providers.base import ProviderOffering

# CloudStack's async job states and result codes.
PENDING, SUCCEEDED, FAILED = 0, 1, 2
INTERNAL_ERROR = 530


def ts(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S%z") if value else None


def zone(row: Zone) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "description": row.description, "allocationstate": "Enabled"}


def account(row: Account) -> dict[str, Any]:
    admin = row.role is Role.ADMIN
    return {
        "id": row.id,
        "name": row.name,
        "accounttype": 1 if admin else 0,
        "roletype": "Admin" if admin else "User",
        "state": "locked" if row.disabled_at else "enabled",
        "created": ts(row.created_at),
    }


def provider(row: BackupProvider) -> dict[str, Any]:
    return {"name": row.name, "description": f"{row.driver} backup provider", "id": row.id}


def provider_offering(item: ProviderOffering, zone_id: str | None) -> dict[str, Any]:
    return {
        "externalid": item.external_id,
        "name": item.name,
        "description": item.description,
        "zoneid": zone_id,
    }


def offering(row: BackupOffering) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "externalid": row.external_id,
        "zoneid": row.zone_id,
        "zonename": row.zone.name,
        "provider": row.provider.name,
        "allowuserdrivenbackups": row.allow_user_driven_backups,
        "created": ts(row.created_at),
    }


def vm(row: VirtualMachine) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "displayname": row.name,
        "state": row.state.value,
        "account": row.account.name,
        "accountid": row.account_id,
        "zoneid": row.zone_id,
        "zonename": row.zone.name,
        "hostid": row.host_id,
        "backupofferingid": row.backup_offering_id,
        "backupofferingname": row.backup_offering.name if row.backup_offering else None,
    }


def unmanaged_instance(found: dict[str, Any], host: Host) -> dict[str, Any]:
    """A VM a host runs outside the inventory, as CloudStack's UnmanagedInstanceResponse
    names it (``clusterid`` is the host record: for a vCenter, its datacenter or cluster)."""
    on = {"Running": "PowerOn", "Stopped": "PowerOff"}
    disks = [d for d in found.get("disks", []) if d.get("device") == "disk"]
    nics = found.get("nics", [])
    return {
        "name": found["name"],
        "clusterid": host.id,
        "hostname": found.get("esx_host") or host.name,
        "powerstate": on.get(found.get("state", ""), "PowerUnknown"),
        "cpunumber": found.get("vcpus"),
        "memory": (found.get("memory_bytes") or 0) // 2**20,
        "osid": found.get("guest_id"),
        "osdisplayname": found.get("guest_os"),
        "disk": [
            {
                "id": str(disk.get("key", disk["target"])),
                "label": disk["target"],
                "capacity": disk.get("size_bytes"),
                "imagepath": disk.get("path"),
                "controller": disk.get("bus"),
                "controllerunit": disk.get("unit"),
                "position": position,
                "datastorename": disk.get("datastore"),
                "datastorepath": disk.get("datastore_url"),
            }
            for position, disk in enumerate(disks)
        ],
        "nic": [
            {
                "id": str(nic.get("key", position)),
                "deviceid": str(position),
                "networkname": nic.get("source"),
                "macaddress": nic.get("mac"),
                "vlanid": nic.get("vlan"),
                "adaptertype": nic.get("model"),
            }
            for position, nic in enumerate(nics)
        ],
    }


def volume(row: Volume) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "type": row.type.value,
        "deviceid": row.device_id,
        "size": row.size,
        "virtualmachineid": row.vm_id,
        "vmname": row.vm.name if row.vm else None,
        "storageid": row.pool_id,
        "storage": row.pool.name,
        "path": row.path,
        "zoneid": row.pool.zone_id,
    }


def backup(row: Backup | BackupRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "virtualmachineid": row.vm_id,
        "virtualmachinename": row.vm_name,
        "externalid": row.external_id,
        "type": row.backup_type.value,
        "date": ts(row.created_at),
        # CloudStack's pair: what the point stored at the back end, and what it restores.
        "size": row.size,
        "virtualsize": row.protected_size,
        "status": row.status.value,
        "volumes": [
            {
                "uuid": v["id"],
                "type": v["type"],
                "size": v["size"],
                "path": v["path"],
                "deviceid": v["device_id"],
            }
            for v in row.vm_metadata.get("volumes", [])
        ],
        "backupofferingid": row.offering_id,
        "backupofferingname": row.offering.name,
        "accountid": row.account_id,
        "zoneid": row.zone_id,
    }


def schedule(row: BackupSchedule) -> dict[str, Any]:
    return {
        "id": row.id,
        "virtualmachineid": row.vm_id,
        "virtualmachinename": row.vm.name,
        "intervaltype": row.interval_type.value,
        "schedule": row.schedule,
        "timezone": row.timezone,
        "maxbackups": row.max_backups,
    }


def job_status(row: Job) -> int:
    if row.state is JobState.SUCCEEDED:
        return SUCCEEDED
    if row.state in (JobState.FAILED, JobState.CANCELLED):
        return FAILED
    return PENDING


def async_job(row: Job, result: dict[str, Any] | None) -> dict[str, Any]:
    status = job_status(row)
    out: dict[str, Any] = {
        "jobid": row.id,
        "jobstatus": status,
        "jobresultcode": INTERNAL_ERROR if status == FAILED else 0,
        "jobresulttype": "object",
        "jobprocstatus": 0,
        "cmd": row.kind.value,
        "created": ts(row.created_at),
        "jobinstancetype": row.subject_type,
        "jobinstanceid": row.subject_id,
        "userid": row.requested_by,
        "accountid": row.account_id,
    }
    if status == FAILED:
        out["jobresult"] = {"errorcode": INTERNAL_ERROR, "errortext": row.error or row.state.value}
    elif status == SUCCEEDED:
        out["jobresult"] = result or {"success": True}
        out["completed"] = ts(row.finished_at)
    return out
