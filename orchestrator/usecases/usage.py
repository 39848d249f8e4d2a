"""What still uses a backup provider, a storage pool, a host or an account.

Removing one of them is refused with a Conflict that names what uses it, so the operator
knows what to move, destroy or wait for first. Counted in the removing transaction.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute

from orchestrator.domain.errors import Conflict
from orchestrator.domain.models import (
    FINAL_JOB_STATES,
    Backup,
    BackupOffering,
    Job,
    VirtualMachine,
    Volume,
)
from orchestrator.engine.core import Scope

Uses = dict[str, int]


def _count(scope: Scope, column: InstrumentedAttribute[str], *where: ColumnElement[bool]) -> int:
    return scope.session.scalar(select(func.count(column)).where(*where)) or 0


def _active_jobs(scope: Scope, *where: ColumnElement[bool]) -> int:
    return _count(scope, Job.id, Job.state.not_in(FINAL_JOB_STATES), *where)


def of_provider(scope: Scope, provider_id: str) -> Uses:
    # Deleted offerings count too: their rows stay for the restore points made under them.
    return {
        "offering": _count(scope, BackupOffering.id, BackupOffering.provider_id == provider_id),
        "restore point": _count(scope, Backup.id, Backup.provider_id == provider_id),
    }


def of_pool(scope: Scope, pool_id: str) -> Uses:
    return {
        "volume": _count(scope, Volume.id, Volume.pool_id == pool_id, Volume.removed_at.is_(None)),
        # A destroyed VM's volume rows stay with its restore points, which can recreate it here.
        "destroyed VM's volume": _count(
            scope, Volume.id, Volume.pool_id == pool_id, Volume.removed_at.is_not(None)
        ),
        "active job": _active_jobs(scope, Job.pool_id == pool_id),
    }


def of_host(scope: Scope, host_id: str) -> Uses:
    return {
        "virtual machine": _count(
            scope, VirtualMachine.id, VirtualMachine.host_id == host_id, VirtualMachine.removed_at.is_(None)
        ),
        "active job": _active_jobs(scope, Job.host_id == host_id),
    }


def of_account(scope: Scope, account_id: str) -> Uses:
    return {
        "virtual machine": _count(
            scope,
            VirtualMachine.id,
            VirtualMachine.account_id == account_id,
            VirtualMachine.removed_at.is_(None),
        ),
        # A destroyed VM stays with its restore points, which can recreate it.
        "destroyed virtual machine": _count(
            scope,
            VirtualMachine.id,
            VirtualMachine.account_id == account_id,
            VirtualMachine.removed_at.is_not(None),
        ),
        "restore point": _count(scope, Backup.id, Backup.account_id == account_id),
        "active job": _active_jobs(scope, Job.account_id == account_id),
    }


def refuse_if_used(kind: str, name: str, uses: Uses) -> None:
    """Conflict ``<kind> '<name>' is in use: 2 volumes, 1 active job`` when anything uses it."""
    found = [f"{n} {noun}{'' if n == 1 else 's'}" for noun, n in uses.items() if n]
    if found:
        raise Conflict(f"{kind} {name!r} is in use: {', '.join(found)}; it cannot be removed")
