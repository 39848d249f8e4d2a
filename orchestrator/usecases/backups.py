"""Restore points: taking them (ad hoc, scheduled), listing and deleting them.

A restore point is ``Queued`` when asked for, ``BackingUp`` while the provider works and
``BackedUp`` only in the transaction that records the provider's finished result. A
failed attempt goes back to ``Queued`` for its retry, or to ``Failed`` for good.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from orchestrator.domain import validate
from orchestrator.domain.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unsupported,
)
from orchestrator.domain.jobparams import DeleteBackups
from orchestrator.domain.models import (
    LIVE_STATUSES,
    USABLE_STATUSES,
    Backup,
    BackupOffering,
    BackupOrigin,
    BackupSchedule,
    BackupStatus,
    BackupType,
    Job,
    JobKind,
    JobState,
    VirtualMachine,
)
from orchestrator.engine import routing
from orchestrator.engine.core import Scope
from orchestrator.infra.paging import DEFAULT_PAGESIZE, Page, PageQuery, paginate_rows
from orchestrator.usecases import audit, backup_providers, jobs, lookup
from orchestrator.usecases.accounts import account_id_of, find_account
from orchestrator.usecases.inventory import find_zone
from orchestrator.usecases.refs import vm_ref
from providers.base import Capability

IN_FLIGHT = (BackupStatus.ALLOCATED, BackupStatus.QUEUED, BackupStatus.BACKING_UP)
# What ``vm_ref`` and the offering checks read, loaded with the VM instead of one by one.
WITH_REF = (
    joinedload(VirtualMachine.host),
    joinedload(VirtualMachine.backup_offering).joinedload(BackupOffering.provider),
    selectinload(VirtualMachine.volumes),
)


def require_user_driven(scope: Scope, vm: VirtualMachine) -> None:
    """Users may take backups and keep schedules only where the offering allows it."""
    if vm.backup_offering is None:
        raise Conflict(f"virtual machine {vm.name} has no backup offering; assign one first")
    if not vm.backup_offering.allow_user_driven_backups and not scope.actor.is_admin:
        raise PermissionDenied(
            f"offering {vm.backup_offering.name!r} does not allow user-driven backups or schedules"
        )


def being_restored(session: Session, point_id: str) -> bool:
    """A restore of the point is queued or running (a PartiallyFailed point's status, which a
    volume restore leaves alone, does not say so)."""
    return bool(
        session.scalar(
            select(Job.id)
            .where(
                Job.subject_id == point_id,
                Job.kind.in_((JobKind.RESTORE_VM, JobKind.RESTORE_VOLUME)),
                Job.state.in_((JobState.QUEUED, JobState.RUNNING)),
            )
            .limit(1)
        )
    )


def _in_flight(session: Session, vm_id: str) -> Backup | None:
    return session.scalar(select(Backup).where(Backup.vm_id == vm_id, Backup.status.in_(IN_FLIGHT)).limit(1))


def newest_usable(
    session: Session, vm_id: str, offering_id: str, excluding: str | None = None
) -> Backup | None:
    """The VM's newest restorable point under the offering: what its next incremental builds on."""
    return session.scalar(
        select(Backup)
        .where(
            Backup.vm_id == vm_id,
            Backup.offering_id == offering_id,
            Backup.status.in_(USABLE_STATUSES),
            Backup.id != excluding,
        )
        .order_by(Backup.created_at.desc())
        .limit(1)
    )


def create_backup(
    scope: Scope,
    vm_id: str,
    *,
    idempotency_key: str | None = None,
    origin: BackupOrigin = BackupOrigin.ADHOC,
    schedule: BackupSchedule | None = None,
    planned: Job | None = None,
) -> Job:
    """Queue a backup of every volume of the VM as one restore point; returns its job.

    ``planned`` is a job the SLA planner made earlier (state ``planned``): it becomes the
    queued job of this restore point instead of a new one.
    """
    vm = lookup.vm(scope, vm_id, options=WITH_REF)
    if origin in (BackupOrigin.ADHOC, BackupOrigin.SCHEDULE):
        require_user_driven(scope, vm)
    offering = vm.backup_offering
    if offering is None:
        raise Conflict(f"virtual machine {vm.name} has no backup offering; assign one first")
    if schedule is not None and schedule.vm_id != vm.id:
        raise InvalidArgument(f"schedule {schedule.id} belongs to another virtual machine", field="schedule")
    if idempotency_key and (existing := _made_under(scope, idempotency_key, vm)):
        return existing
    try:
        point = _new_point(scope, vm, offering, origin, schedule)
        # The restore point and its job are written together: a request that loses a race
        # for the same key undoes both and answers what a retry would, the winner's job.
        # (Its reads come first: on SQLite a transaction that read before it writes cannot
        # wait for a racing writer.)
        with scope.savepoint():
            job = _queue(scope, vm, point, idempotency_key, origin, planned)
            if job.subject_id != point.id:
                raise Conflict(f"idempotency key {idempotency_key!r} was taken by job {job.id}")
            return job
    except (IntegrityError, Conflict):
        if idempotency_key and (existing := _made_under(scope, idempotency_key, vm)):
            return existing
        raise


def _made_under(scope: Scope, idempotency_key: str, vm: VirtualMachine) -> Job | None:
    """The backup job already made under the key, which must have been a backup of this VM."""
    existing = jobs.find_by_key(scope, idempotency_key, vm.account_id)
    if existing is None:
        return None
    made = scope.session.get(Backup, existing.subject_id) if existing.kind is JobKind.BACKUP else None
    if made is None or made.vm_id != vm.id:
        raise Conflict(
            f"idempotency key {idempotency_key!r} was used for another request", field="idempotency_key"
        )
    return existing


def _new_point(
    scope: Scope,
    vm: VirtualMachine,
    offering: BackupOffering,
    origin: BackupOrigin,
    schedule: BackupSchedule | None,
) -> Backup:
    """The VM's next restore point, not yet added (a Conflict while one is in flight)."""
    backup_providers.usable(scope, offering.provider)
    if running := _in_flight(scope.session, vm.id):
        raise Conflict(f"a backup of {vm.name} is already in progress (restore point {running.id})")
    # The type is decided here, so the point shows while it is made what it will be: an
    # incremental on the newest restorable point where the provider chains them, else a full.
    parent = (
        newest_usable(scope.session, vm.id, offering.id)
        if scope.driver(offering.provider).supports(Capability.INCREMENTAL)
        else None
    )
    ref = vm_ref(vm)
    return Backup(
        vm_id=vm.id,
        vm_name=vm.name,
        account_id=vm.account_id,
        zone_id=vm.zone_id,
        vm_metadata=ref.to_dict(),
        offering_id=offering.id,
        provider_id=offering.provider_id,
        schedule_id=schedule.id if schedule else None,
        origin=origin,
        status=BackupStatus.QUEUED,
        backup_type=BackupType.INCREMENTAL if parent else BackupType.FULL,
        parent_id=parent.id if parent else None,
        protected_size=sum(v.size for v in ref.volumes),
    )


def _queue(
    scope: Scope,
    vm: VirtualMachine,
    point: Backup,
    idempotency_key: str | None,
    origin: BackupOrigin,
    planned: Job | None,
) -> Job:
    scope.session.add(point)
    scope.session.flush()
    placement = routing.placement(JobKind.BACKUP, vm)
    # One backup of a VM at a time, however it was asked for (ad hoc, schedule, SLA plan).
    exclusive = jobs.Exclusive(f"backup:{vm.id}", f"a backup of {vm.name} is already in progress")
    if planned is not None:
        job = jobs.release(
            scope,
            planned,
            subject_type="backup",
            subject_id=point.id,
            placement=placement,
            exclusive=exclusive,
        )
        audit.record(scope, "backup.create", "backup", point.id, job=job.id, vm=vm.id, origin=origin.value)
        return job
    return jobs.on_restore_point(
        scope,
        JobKind.BACKUP,
        point,
        action="backup.create",
        placement=placement,
        idempotency_key=idempotency_key,
        exclusive=exclusive,
        vm=vm.id,
        origin=origin.value,
    )


class OfferingName(NamedTuple):
    name: str


class BackupRow(NamedTuple):
    """A restore point as lists show it, read with a plain column select: listing is the API's
    hottest path, and loading ORM objects (and each one's offering) took most of its time.
    The names are the model's, so a view renders a listed row and a loaded ``Backup`` alike."""

    id: str
    vm_id: str
    vm_name: str
    account_id: str
    zone_id: str
    offering_id: str
    provider_id: str
    origin: BackupOrigin
    schedule_id: str | None
    external_id: str | None
    backup_type: BackupType
    parent_id: str | None
    size: int
    protected_size: int
    status: BackupStatus
    created_at: datetime
    completed_at: datetime | None
    error: str | None
    failed_volumes: list[Any]
    offering: OfferingName
    # Of the VM's metadata, lists show only its volumes.
    vm_metadata: dict[str, Any]

    @classmethod
    def of(cls, row: Sequence[Any]) -> BackupRow:
        *columns, offering, volumes = row
        return cls._make([*columns, OfferingName(offering), {"volumes": volumes or []}])


_LISTED = (
    Backup.id,
    Backup.vm_id,
    Backup.vm_name,
    Backup.account_id,
    Backup.zone_id,
    Backup.offering_id,
    Backup.provider_id,
    Backup.origin,
    Backup.schedule_id,
    Backup.external_id,
    Backup.backup_type,
    Backup.parent_id,
    Backup.size,
    Backup.protected_size,
    Backup.status,
    Backup.created_at,
    Backup.completed_at,
    Backup.error,
    Backup.failed_volumes,
    BackupOffering.name,
    Backup.vm_metadata["volumes"],
)
# Newest first; the id breaks ties so that pages never overlap. Both run the way the
# (vm_id | account_id, created_at, id) indexes are ordered, read backwards.
_NEWEST_FIRST = (Backup.created_at.desc(), Backup.id.desc())
_LIKE_ESCAPE = "/"
# The filters a list of restore points may combine, each on its own bound parameter.
_FILTERS: dict[str, ColumnElement[bool]] = {
    "own_account": Backup.account_id == bindparam("own_account"),
    # By name or id, looked up in the same statement; an unknown one lists nothing, and
    # list_backups tells NotFound from an empty list only when the page comes back empty.
    "account": Backup.account_id == account_id_of(bindparam("account")),
    "backup_id": Backup.id == bindparam("backup_id"),
    "vm_id": Backup.vm_id == bindparam("vm_id"),
    "zone_id": Backup.zone_id == bindparam("zone_id"),
    "offering_id": Backup.offering_id == bindparam("offering_id"),
    "status": Backup.status == bindparam("status"),
    # Not NOT IN: SQLAlchemy renders an IN list anew at every execution, comparisons once.
    "live": and_(Backup.status != BackupStatus.REMOVED, Backup.status != BackupStatus.EXPUNGED),
    "keyword": Backup.vm_name.contains(bindparam("keyword"), escape=_LIKE_ESCAPE),
}


@cache
def _listing(filters: tuple[str, ...]) -> PageQuery:
    """The statements for one combination of filters, built on its first use (the combinations
    are a bounded few hundred, and in practice a handful)."""
    where = [_FILTERS[name] for name in filters]
    return PageQuery.of(
        select(*_LISTED)
        .join(BackupOffering, BackupOffering.id == Backup.offering_id)
        .where(*where)
        .order_by(*_NEWEST_FIRST),
        select(func.count()).select_from(Backup).where(*where),
    )


def _like_literal(text: str) -> str:
    """``text`` matched as written inside a LIKE pattern, not as its wildcards."""
    for special in (_LIKE_ESCAPE, "%", "_"):
        text = text.replace(special, _LIKE_ESCAPE + special)
    return text


def list_backups(
    scope: Scope,
    *,
    backup_id: str | None = None,
    vm_id: str | None = None,
    zone: str | None = None,
    account: str | None = None,
    offering_id: str | None = None,
    status: str | None = None,
    keyword: str | None = None,
    include_removed: bool = False,
    page: int = 1,
    pagesize: int = DEFAULT_PAGESIZE,
) -> Page[BackupRow]:
    params: dict[str, Any] = {}
    if not scope.actor.is_admin:
        params["own_account"] = scope.actor.account_id
    elif account:
        params["account"] = account
    if backup_id:
        params["backup_id"] = backup_id
    if vm_id:
        params["vm_id"] = vm_id
    if zone:
        params["zone_id"] = find_zone(scope, zone).id
    if offering_id:
        params["offering_id"] = offering_id
    if status:
        params["status"] = validate.parse_enum(BackupStatus, status, "status")
    elif not include_removed:
        params["live"] = None  # a fixed condition: nothing to bind
    if keyword := validate.keyword(keyword):
        params["keyword"] = _like_literal(keyword)
    found = paginate_rows(scope.session, _listing(tuple(params)), params, BackupRow.of, page, pagesize)
    if not found.items and "account" in params:
        find_account(scope.session, params["account"])  # unknown: NotFound, not an empty list
    return found


def show(scope: Scope, backup_id: str) -> Backup:
    return lookup.backup(scope, backup_id)


def descendants(session: Session, point: Backup) -> list[Backup]:
    """Live points that depend on ``point``, nearest first."""
    found: list[Backup] = []
    frontier = [point.id]
    while frontier:
        children = list(
            session.scalars(
                select(Backup).where(Backup.parent_id.in_(frontier), Backup.status.in_(LIVE_STATUSES))
            )
        )
        found.extend(children)
        frontier = [c.id for c in children]
    return found


def _chain_root(point: Backup) -> Backup:
    root = point
    while root.parent is not None and root.parent.status in LIVE_STATUSES:
        root = root.parent
    return root


def delete_backup(scope: Scope, backup_id: str, *, forced: bool = False) -> Job:
    """Delete a restore point. Where others depend on it and the provider cannot delete one
    point in the middle of a chain, this is Unsupported; ``forced`` then deletes the whole
    chain if the provider can do that."""
    point = lookup.backup(scope, backup_id)
    if point.status in (BackupStatus.REMOVED, BackupStatus.EXPUNGED):
        raise NotFound.of("backup", backup_id)
    if point.status in (*IN_FLIGHT, BackupStatus.RESTORING):
        raise Conflict(f"restore point {point.id} is {point.status.value}; wait until it ends")
    if point.status is BackupStatus.PARTIALLY_FAILED and being_restored(scope.session, point.id):
        raise Conflict(f"a volume of restore point {point.id} is being restored; wait until it ends")
    driver = scope.driver(point.provider)
    targets = [point]
    dependents = descendants(scope.session, point)
    if dependents and not driver.supports(Capability.DELETE_SINGLE_RESTORE_POINT):
        if not driver.supports(Capability.DELETE_CHAIN):
            raise Unsupported(
                f"provider {point.provider.name!r} cannot delete restore point {point.id}: "
                f"{len(dependents)} newer restore point(s) depend on it"
            )
        if not forced:
            raise Unsupported(
                f"provider {point.provider.name!r} cannot delete one restore point in the middle of a "
                f"chain ({len(dependents)} depend on it); forced=true deletes the whole chain"
            )
        root = _chain_root(point)
        chain = [root, *descendants(scope.session, root)]
        targets = chain
    return queue_delete(scope, point, targets, forced=forced)


def queue_delete(scope: Scope, subject: Backup, targets: list[Backup], *, forced: bool = False) -> Job:
    """One job deleting ``targets`` newest first, so no chain is left with an incremental
    whose parent is gone at any moment. A point already being deleted is a Conflict."""
    ids = [p.id for p in sorted(targets, key=lambda p: p.created_at, reverse=True)]
    return jobs.on_restore_point(
        scope,
        JobKind.DELETE_BACKUP,
        subject,
        action="backup.delete",
        params=DeleteBackups(ids=ids, forced=forced),
        exclusive=jobs.Exclusive(
            f"delete_backup:{subject.id}", f"restore point {subject.id} is already being deleted"
        ),
        forced=forced,
        ids=ids,
    )
