"""Plain-dict views of the domain objects, shared by the CLI's ``--json`` and the API.

Secrets in provider configuration are never rendered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.domain.jobparams import PlannedBackup
from orchestrator.domain.models import (
    Account,
    ApiKey,
    AuditEvent,
    Backup,
    BackupOffering,
    BackupProvider,
    BackupSchedule,
    Host,
    Job,
    JobLog,
    StoragePool,
    VirtualMachine,
    Volume,
    Zone,
)
from orchestrator.domain.secrets import redact
from orchestrator.domain.sla import format_duration
from orchestrator.engine import routing
from orchestrator.planner.model import PlannedJob
from orchestrator.usecases.backups import BackupRow
from orchestrator.usecases.ingest import Connected
from orchestrator.usecases.planning import PlanView
from orchestrator.usecases.reconciliation import Reconciled
from providers import hypervisor
from providers.base import ProviderDriver, ProviderOffering


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def account(row: Account) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role.value,
        "state": row.state,
        "created": _ts(row.created_at),
    }


def api_key(row: ApiKey) -> dict[str, Any]:
    """A key as listed: neither its secret nor the API key itself, only what identifies it."""
    return {
        "id": row.id,
        "account": row.account.name,
        "account_id": row.account_id,
        "state": row.state,
        "created": _ts(row.created_at),
    }


def zone(row: Zone) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "description": row.description}


def host(row: Host) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "zone_id": row.zone_id,
        "hypervisor": row.hypervisor.value,
        "address": row.address,
        "max_concurrent_backups": row.max_concurrent_backups,
        "connection": _connection(row),
    }


def connected_host(connected: Connected) -> dict[str, Any]:
    return {**host(connected.host), "warnings": connected.warnings}


def _connection(row: Host) -> dict[str, Any]:
    """How the host is reached, as its driver allows showing it."""
    if not row.connection:
        return {}
    return hypervisor.driver_class(row.hypervisor.value).public_connection(row.connection)


def pool(row: StoragePool) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "zone_id": row.zone_id,
        "path": row.path,
        "max_concurrent_backups": row.max_concurrent_backups,
        "bandwidth_bytes_per_s": row.bandwidth_bytes_per_s,
    }


def volume(row: Volume) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "vm_id": row.vm_id,
        "pool_id": row.pool_id,
        "type": row.type.value,
        "device_id": row.device_id,
        "size": row.size,
        "path": row.path,
        "format": row.format,
    }


def vm(row: VirtualMachine) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "account_id": row.account_id,
        "account": row.account.name,
        "zone_id": row.zone_id,
        "host_id": row.host_id,
        "state": row.state.value,
        "backup_offering_id": row.backup_offering_id,
        "backup_offering": row.backup_offering.name if row.backup_offering else None,
        "volumes": [volume(v) for v in row.live_volumes],
        "created": _ts(row.created_at),
    }


def provider(row: BackupProvider, driver: ProviderDriver | None = None) -> dict[str, Any]:
    out = {
        "id": row.id,
        "name": row.name,
        "driver": row.driver,
        "zone_id": row.zone_id,
        "enabled": row.enabled,
        "config": redact(row.config),
        "untracked_copies": row.untracked_copies,
        "reconciled_at": _ts(row.reconciled_at),
    }
    if driver is not None:
        out["capabilities"] = sorted(c.value for c in driver.capabilities)
    return out


def reconciled(result: Reconciled) -> dict[str, Any]:
    return {
        "provider": provider(result.provider),
        "listed": result.listed,
        "in_flight": result.in_flight,
        "released": result.released,
        "untracked": [
            {
                "external_id": u.copy.external_id,
                "restore_point_id": u.copy.restore_point_id,
                "vm_id": u.copy.vm_id,
                "why": u.why,
            }
            for u in result.untracked
        ],
    }


def provider_offering(item: ProviderOffering) -> dict[str, Any]:
    return {"external_id": item.external_id, "name": item.name, "description": item.description}


def offering(row: BackupOffering) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "zone_id": row.zone_id,
        "provider_id": row.provider_id,
        "provider": row.provider.name,
        "external_id": row.external_id,
        "rpo": format_duration(row.rpo_seconds),
        "rpo_seconds": row.rpo_seconds,
        "retention_count": row.retention_count,
        "keep_daily": row.keep_daily,
        "keep_weekly": row.keep_weekly,
        "keep_monthly": row.keep_monthly,
        "timezone": row.timezone,
        "windows": row.windows,
        "blackouts": row.blackouts,
        "allow_user_driven_backups": row.allow_user_driven_backups,
        "created": _ts(row.created_at),
    }


def schedule(row: BackupSchedule) -> dict[str, Any]:
    return {
        "id": row.id,
        "vm_id": row.vm_id,
        "vm_name": row.vm.name,
        "interval_type": row.interval_type.value,
        "schedule": row.schedule,
        "timezone": row.timezone,
        "max_backups": row.max_backups,
        "next_run": _ts(row.next_run_at),
    }


def backup(row: Backup | BackupRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "vm_id": row.vm_id,
        "vm_name": row.vm_name,
        "account_id": row.account_id,
        "zone_id": row.zone_id,
        "offering_id": row.offering_id,
        "offering": row.offering.name,
        "provider_id": row.provider_id,
        "origin": row.origin.value,
        "schedule_id": row.schedule_id,
        "external_id": row.external_id,
        "type": row.backup_type.value,
        "parent_id": row.parent_id,
        # What it restores (the VM's volumes) and what it added at the back end.
        "logical_size": row.protected_size,
        "stored_size": row.size,
        "status": row.status.value,
        "date": _ts(row.created_at),
        "completed": _ts(row.completed_at),
        "volumes": row.vm_metadata.get("volumes", []),
        "failed_volumes": row.failed_volumes,
        "error": row.error,
    }


def job(row: Job) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind.value,
        "state": row.state.value,
        "account_id": row.account_id,
        "subject_type": row.subject_type,
        "subject_id": row.subject_id,
        "queue": row.queue,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "not_before": _ts(row.not_before),
        "deadline": _ts(row.deadline),
        "reason": planned.reason if (planned := PlannedBackup.of_sla_job(row)) else None,
        "progress": {"done": row.progress_done, "total": row.progress_total},
        "result": row.result,
        "error": row.error,
        "worker": row.leased_by,
        "cancel_requested": _ts(row.cancel_requested_at),
        "created": _ts(row.created_at),
        "started": _ts(row.started_at),
        "finished": _ts(row.finished_at),
    }


def job_log(row: JobLog) -> dict[str, Any]:
    return {"at": _ts(row.at), "level": row.level, "message": row.message}


def planned_job(job: PlannedJob, vm_name: str | None = None, pool_name: str | None = None) -> dict[str, Any]:
    return {
        "vm_id": job.vm_id,
        "vm_name": vm_name,
        "offering_id": job.offering_id,
        "queue": routing.pool_queue(job.pool_id),
        "pool_name": pool_name,
        "start": _ts(job.start),
        "end": _ts(job.end),
        "deadline": _ts(job.deadline),
        "late": job.late,
        "lateness_s": job.lateness_seconds,
        "reason": job.reason,
    }


def plan(shown: PlanView, pool_id: str | None = None) -> dict[str, Any]:
    """A plan's jobs (those of one pool with ``pool_id``), how many are late, and the VMs it
    could not place."""
    jobs = [
        planned_job(j, shown.vm_names.get(j.vm_id), shown.pool_names.get(j.pool_id))
        for j in shown.plan.jobs
        if not pool_id or j.pool_id == pool_id
    ]
    return {
        "jobs": jobs,
        "late": sum(j["late"] for j in jobs),
        "unplaceable": [
            {"vm_id": u.vm_id, "vm_name": shown.vm_names.get(u.vm_id), "reason": u.reason}
            for u in shown.plan.unplaceable
        ],
    }


def audit_event(row: AuditEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": _ts(row.at),
        "actor": row.actor_name,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "details": row.details,
    }
