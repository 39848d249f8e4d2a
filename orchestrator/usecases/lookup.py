"""Tenant-scoped lookups: another tenant's object is NotFound, never a hint that it exists."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm.interfaces import ORMOption

from orchestrator.domain.errors import NotFound
from orchestrator.domain.models import Backup, BackupOffering, BackupProvider, Job, VirtualMachine
from orchestrator.engine.core import Scope


def vm(
    scope: Scope, vm_id: str, *, include_removed: bool = False, options: Sequence[ORMOption] = ()
) -> VirtualMachine:
    """``options``: loader options (what the caller reads of the VM, loaded with it)."""
    found = scope.session.get(VirtualMachine, vm_id, options=options)
    if (
        found is None
        or not scope.actor.can_see(found.account_id)
        or (found.removed_at is not None and not include_removed)
    ):
        raise NotFound.of("virtual machine", vm_id)
    return found


def backup(scope: Scope, backup_id: str) -> Backup:
    found = scope.session.get(Backup, backup_id)
    if found is None or not scope.actor.can_see(found.account_id):
        raise NotFound.of("backup", backup_id)
    return found


def job(scope: Scope, job_id: str) -> Job:
    found = scope.session.get(Job, job_id)
    if found is None or not scope.actor.can_see(found.account_id):
        raise NotFound.of("job", job_id)
    return found


def offering(scope: Scope, offering_id: str) -> BackupOffering:
    found = scope.session.get(BackupOffering, offering_id)
    if found is None or found.removed_at is not None:
        raise NotFound.of("backup offering", offering_id)
    return found


def provider(scope: Scope, provider_id: str) -> BackupProvider:
    return scope.get(BackupProvider, provider_id, "backup provider")
