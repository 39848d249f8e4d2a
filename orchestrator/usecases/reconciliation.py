"""Counting the copies a back end holds that no restore point records.

A copy goes untracked when the attempt that wrote it lost its job to another worker and
could not remove it (its process died on the way and no later attempt succeeded, or the
back end cannot tell attempts apart), when the record of it was lost (a database restored
from an older dump), or when something wrote to the back end behind the framework's back.
A reconcile lists what the back end holds (providers that can: ``list_restore_points``),
compares it with the restore points of the database, logs what it found and stores the
count on the provider, where the API shows it and the metrics export it.

It deletes no copy. A copy whose attempt is still running looks untracked until its job
records it, and after a database restore the "untracked" copies are the only data of
restore points the database forgot: whether a copy is garbage is the operator's call.

It does remove what interrupted backups left outside the back end's store, on the hosts of
the provider's VMs (``release_leftovers``: a hypervisor snapshot a killed worker never
removed), except what backups still running need: such leftovers hold no restore point.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from orchestrator.domain.models import Backup, BackupProvider, BackupStatus, Host, VirtualMachine, utcnow
from orchestrator.engine.core import Scope
from orchestrator.usecases import backup_providers
from orchestrator.usecases.backups import IN_FLIGHT
from orchestrator.usecases.refs import host_ref
from providers.base import Capability, StoredPoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Untracked:
    copy: StoredPoint
    why: str


@dataclass(frozen=True)
class Reconciled:
    provider: BackupProvider
    # Copies the back end listed.
    listed: int
    untracked: list[Untracked]
    # Copies of restore points still being backed up: not counted either way.
    in_flight: int
    # What interrupted backups had left on the hosts, removed.
    released: list[str] = field(default_factory=list)


def reconcile(scope: Scope, provider: str) -> Reconciled:
    """Compare what the provider's back end holds with the restore points recorded, and
    store the number of untracked copies on the provider (admins)."""
    scope.actor.require_admin("reconcile a provider with its back end")
    row = backup_providers.find(scope, provider)
    driver = scope.driver(row)
    driver.require(Capability.LIST_RESTORE_POINTS, "list its restore points")
    stored = driver.list_restore_points()
    recorded = {
        point_id: (external_id, status)
        for point_id, external_id, status in scope.session.execute(
            select(Backup.id, Backup.external_id, Backup.status).where(Backup.provider_id == row.id)
        )
    }
    untracked: list[Untracked] = []
    in_flight = 0
    for copy in stored:
        point = recorded.get(copy.restore_point_id)
        if point is None:
            untracked.append(Untracked(copy, f"no restore point {copy.restore_point_id} is recorded"))
        elif point[1] in IN_FLIGHT:
            in_flight += 1
        elif point[0] != copy.external_id:
            untracked.append(Untracked(copy, f"its restore point records copy {point[0]}"))
        elif point[1] is BackupStatus.EXPUNGED:
            untracked.append(Untracked(copy, "its restore point was expunged"))
    running = frozenset(point_id for point_id, (_, status) in recorded.items() if status in IN_FLIGHT)
    with_points = (
        select(VirtualMachine.host_id)
        .join(Backup, Backup.vm_id == VirtualMachine.id)
        .where(Backup.provider_id == row.id)
    )
    hosts = scope.session.scalars(select(Host).where(Host.id.in_(with_points)))
    released = driver.release_leftovers([ref for host in hosts if (ref := host_ref(host))], running)
    if released:
        log.warning(
            "provider %s: removed what interrupted backups left: %s", row.name, ", ".join(released[:20])
        )
    row.untracked_copies = len(untracked)
    row.reconciled_at = utcnow()
    if untracked:
        log.warning(
            "provider %s holds %d copies no restore point records: %s",
            row.name,
            len(untracked),
            ", ".join(u.copy.external_id for u in untracked[:20]),
        )
    return Reconciled(row, len(stored), untracked, in_flight, released)
