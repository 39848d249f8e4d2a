"""Putting a VM under an offering, taking it out, and moving it to another offering.

Changing offering (gold → bronze): restore points taken under the old offering stay
attached to it, keep its retention and stay restorable; the next backup under the new
offering starts a new chain with a FULL. If the old provider deletes a VM's backups when
the VM leaves it (``removes_backups_on_unassign``), the change would lose them, so it
needs ``forced`` — as removing the VM would.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select

from orchestrator.domain.errors import Conflict, InvalidArgument
from orchestrator.domain.models import LIVE_STATUSES, Backup, BackupSchedule, BackupStatus, VirtualMachine
from orchestrator.engine.core import Scope
from orchestrator.usecases import audit, backup_providers, jobs, lookup
from orchestrator.usecases.refs import vm_ref
from providers.base import Capability


def _live_points(scope: Scope, vm: VirtualMachine) -> list[Backup]:
    return list(
        scope.session.scalars(
            select(Backup).where(
                Backup.vm_id == vm.id,
                Backup.offering_id == vm.backup_offering_id,
                Backup.status.in_(LIVE_STATUSES),
            )
        )
    )


def _busy(scope: Scope, vm: VirtualMachine) -> bool:
    busy = (BackupStatus.ALLOCATED, BackupStatus.QUEUED, BackupStatus.BACKING_UP, BackupStatus.RESTORING)
    return bool(
        scope.session.scalar(
            select(func.count()).select_from(Backup).where(Backup.vm_id == vm.id, Backup.status.in_(busy))
        )
    )


def assign(scope: Scope, vm_id: str, offering_id: str) -> VirtualMachine:
    vm = lookup.vm(scope, vm_id)
    offering = lookup.offering(scope, offering_id)
    if vm.backup_offering_id == offering.id:
        return vm
    if vm.backup_offering_id is not None:
        current = vm.backup_offering
        assert current is not None  # its foreign key is set
        raise Conflict(f"virtual machine {vm.name} already has offering {current.name!r}; change it instead")
    if offering.zone_id != vm.zone_id:
        raise InvalidArgument(
            f"offering {offering.name!r} is in another zone than virtual machine {vm.name}", field="offering"
        )
    backup_providers.usable(scope, offering.provider)
    scope.driver(offering.provider).assign_vm(vm_ref(vm), offering.external_id)
    vm.backup_offering_id = offering.id
    vm.backup_offering = offering
    audit.record(scope, "vm.assign", "vm", vm.id, offering=offering.id)
    return vm


def _release(scope: Scope, vm: VirtualMachine, *, forced: bool, action: str) -> None:
    """Detach the VM from its current offering at the provider."""
    offering = vm.backup_offering
    if offering is None:
        raise Conflict(f"virtual machine {vm.name} has no backup offering")
    if _busy(scope, vm):
        raise Conflict(
            f"virtual machine {vm.name} has a backup or restore in progress; try again when it ends"
        )
    driver = scope.driver(offering.provider)
    points = _live_points(scope, vm)
    removes = driver.supports(Capability.REMOVES_BACKUPS_ON_UNASSIGN)
    if removes and points and not forced:
        raise Conflict(
            f"{action} would delete {len(points)} restore point(s) of {vm.name}: provider "
            f"{offering.provider.name!r} removes backups with the VM; pass forced=true to accept that"
        )
    driver.remove_vm(vm_ref(vm), offering.external_id, forced=forced)
    if removes:
        for point in points:
            point.status = BackupStatus.REMOVED


def remove(scope: Scope, vm_id: str, *, forced: bool = False) -> VirtualMachine:
    """Take the VM out of its offering. Its schedules go too; whether its restore points are
    kept follows the provider (``removes_backups_on_unassign``)."""
    vm = lookup.vm(scope, vm_id)
    _release(scope, vm, forced=forced, action="removing the VM from its offering")
    old = vm.backup_offering_id
    vm.backup_offering_id = None
    vm.backup_offering = None
    scope.session.execute(delete(BackupSchedule).where(BackupSchedule.vm_id == vm.id))
    jobs.cancel_planned(scope, [vm.id], "the virtual machine left its offering")
    audit.record(scope, "vm.unassign", "vm", vm.id, offering=old, forced=forced)
    return vm


def change(scope: Scope, vm_id: str, offering_id: str, *, forced: bool = False) -> VirtualMachine:
    """Move the VM to another offering; see the module's docstring for what happens to its chain."""
    vm = lookup.vm(scope, vm_id)
    offering = lookup.offering(scope, offering_id)
    if vm.backup_offering_id is None:
        return assign(scope, vm_id, offering_id)
    if vm.backup_offering_id == offering.id:
        return vm
    if offering.zone_id != vm.zone_id:
        raise InvalidArgument(
            f"offering {offering.name!r} is in another zone than virtual machine {vm.name}", field="offering"
        )
    backup_providers.usable(scope, offering.provider)
    old = vm.backup_offering_id
    _release(scope, vm, forced=forced, action="changing the offering")
    scope.driver(offering.provider).assign_vm(vm_ref(vm), offering.external_id)
    vm.backup_offering_id = offering.id
    vm.backup_offering = offering
    if not offering.allow_user_driven_backups:
        # The new offering does not let users schedule their own backups.
        scope.session.execute(delete(BackupSchedule).where(BackupSchedule.vm_id == vm.id))
    audit.record(scope, "vm.change_offering", "vm", vm.id, old=old, new=offering.id, forced=forced)
    return vm
