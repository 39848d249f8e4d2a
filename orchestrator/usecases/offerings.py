"""SLA offerings (gold, silver, bronze...): a provider's policy plus RPO, retention and windows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select

from orchestrator.domain import validate
from orchestrator.domain.errors import Conflict, InvalidArgument, NotFound
from orchestrator.domain.models import BackupOffering, VirtualMachine, utcnow
from orchestrator.domain.sla import ServiceLevel
from orchestrator.engine.core import Scope
from orchestrator.infra.paging import DEFAULT_PAGESIZE, Page, paginate
from orchestrator.usecases import audit, backup_providers, lookup, planning
from orchestrator.usecases.inventory import find_zone

RETENTION_FIELDS = ("retention_count", "keep_daily", "keep_weekly", "keep_monthly")
SLA_FIELDS = ("rpo", "timezone", "windows", "blackouts")


def _check_name_free(scope: Scope, zone_id: str, name: str, except_id: str | None = None) -> None:
    stmt = select(BackupOffering.id).where(
        BackupOffering.zone_id == zone_id, BackupOffering.name == name, BackupOffering.removed_at.is_(None)
    )
    if except_id:
        stmt = stmt.where(BackupOffering.id != except_id)
    if scope.session.scalar(stmt):
        raise Conflict(f"an offering named {name!r} already exists in this zone", field="name")


def _apply_sla(offering: BackupOffering, level: ServiceLevel) -> None:
    offering.rpo_seconds = level.rpo_seconds
    offering.timezone = level.timezone
    offering.windows = [w.to_dict() for w in level.windows]
    offering.blackouts = [b.to_dict() for b in level.blackouts]


def import_offering(
    scope: Scope,
    *,
    name: str,
    zone: str,
    provider: str,
    external_id: str,
    rpo: str | int,
    description: str = "",
    timezone: str = "UTC",
    windows: Sequence[Mapping[str, Any]] = (),
    blackouts: Sequence[Mapping[str, Any]] = (),
    retention_count: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    keep_monthly: int | None = None,
    allow_user_driven_backups: bool = True,
) -> BackupOffering:
    scope.actor.require_admin("import backup offerings")
    name = validate.name(name)
    z = find_zone(scope, zone)
    prov = backup_providers.find(scope, provider)
    backup_providers.usable(scope, prov)
    if prov.zone_id and prov.zone_id != z.id:
        raise InvalidArgument(f"zone: provider {prov.name!r} serves another zone", field="zone")
    known = {o.external_id for o in scope.driver(prov).list_offerings(z.id)}
    if external_id not in known:
        raise InvalidArgument(
            f"external_id: provider {prov.name!r} has no offering {external_id!r} in zone {z.name} "
            f"(it has: {', '.join(sorted(known)) or 'none'})",
            field="external_id",
        )
    _check_name_free(scope, z.id, name)
    level = ServiceLevel.parse(rpo=rpo, timezone=timezone, windows=windows, blackouts=blackouts)
    offering = BackupOffering(
        name=name,
        description=validate.text(description, "description"),
        zone_id=z.id,
        provider_id=prov.id,
        external_id=external_id,
        allow_user_driven_backups=bool(allow_user_driven_backups),
    )
    _apply_sla(offering, level)
    for field, value in zip(
        RETENTION_FIELDS, (retention_count, keep_daily, keep_weekly, keep_monthly), strict=True
    ):
        setattr(offering, field, validate.non_negative(value, field))
    scope.session.add(offering)
    scope.session.flush()
    audit.record(scope, "offering.import", "offering", offering.id, name=name, external_id=external_id)
    return offering


def list_offerings(
    scope: Scope,
    *,
    zone: str | None = None,
    keyword: str | None = None,
    page: int = 1,
    pagesize: int = DEFAULT_PAGESIZE,
) -> Page[BackupOffering]:
    stmt = select(BackupOffering).where(BackupOffering.removed_at.is_(None)).order_by(BackupOffering.name)
    if zone:
        stmt = stmt.where(BackupOffering.zone_id == find_zone(scope, zone).id)
    if keyword := validate.keyword(keyword):
        stmt = stmt.where(BackupOffering.name.contains(keyword, autoescape=True))
    return paginate(scope.session, stmt, page, pagesize)


def show(scope: Scope, offering_id: str) -> BackupOffering:
    return lookup.offering(scope, offering_id)


def update_offering(scope: Scope, offering_id: str, **changes: Any) -> BackupOffering:
    """Change name, description, SLA (rpo, timezone, windows, blackouts), retention or the
    user-driven flag. Fields not given keep their value; the result is validated as a whole."""
    scope.actor.require_admin("update backup offerings")
    offering = lookup.offering(scope, offering_id)
    allowed = {"name", "description", "allow_user_driven_backups", *SLA_FIELDS, *RETENTION_FIELDS}
    if unknown := sorted(set(changes) - allowed):
        raise InvalidArgument(f"cannot update {', '.join(unknown)}; updatable: {', '.join(sorted(allowed))}")
    changes = {k: v for k, v in changes.items() if v is not None}
    # Everything is validated before anything changes: a refused update leaves no trace.
    name = validate.name(changes["name"]) if "name" in changes else offering.name
    if name != offering.name:
        _check_name_free(scope, offering.zone_id, name, except_id=offering.id)
    level = None
    if any(f in changes for f in SLA_FIELDS):
        level = ServiceLevel.parse(
            rpo=changes.get("rpo", offering.rpo_seconds),
            timezone=changes.get("timezone", offering.timezone),
            windows=changes.get("windows", offering.windows),
            blackouts=changes.get("blackouts", offering.blackouts),
        )
    retention = {f: validate.non_negative(changes[f], f) for f in RETENTION_FIELDS if f in changes}
    offering.name = name
    if "description" in changes:
        offering.description = validate.text(changes["description"], "description")
    if "allow_user_driven_backups" in changes:
        offering.allow_user_driven_backups = bool(changes["allow_user_driven_backups"])
    for field, value in retention.items():
        setattr(offering, field, value)
    if level is not None:
        _apply_sla(offering, level)
        # Jobs planned under the old SLA would start at times it no longer allows.
        planning.replan_offering(scope, offering.id, f"re-planned: offering {name!r} changed its SLA")
    audit.record(scope, "offering.update", "offering", offering.id, fields=sorted(changes))
    return offering


def delete_offering(scope: Scope, offering_id: str) -> BackupOffering:
    """Refused while VMs are assigned. Restore points made under it stay restorable."""
    scope.actor.require_admin("delete backup offerings")
    offering = lookup.offering(scope, offering_id)
    assigned = scope.session.scalar(
        select(func.count())
        .select_from(VirtualMachine)
        .where(VirtualMachine.backup_offering_id == offering.id, VirtualMachine.removed_at.is_(None))
    )
    if assigned:
        raise Conflict(
            f"offering {offering.name!r} is in use by {assigned} virtual machine(s); "
            "remove them from it first"
        )
    offering.removed_at = utcnow()
    audit.record(scope, "offering.delete", "offering", offering.id, name=offering.name)
    return offering


def find(scope: Scope, value: str, zone_id: str | None = None) -> BackupOffering:
    """An offering by id, or by name: the one in ``zone_id`` when names repeat across zones.
    An offering found only in another zone is returned all the same, so that the use case
    says it is in another zone instead of not found."""
    stmt = select(BackupOffering).where(
        (BackupOffering.id == value) | (BackupOffering.name == value), BackupOffering.removed_at.is_(None)
    )
    found = scope.session.scalars(stmt).all()
    if not found:
        raise NotFound.of("backup offering", value)
    if zone_id and (in_zone := [o for o in found if o.zone_id == zone_id]):
        found = in_zone
    if len(found) > 1:
        raise InvalidArgument(
            f"offering name {value!r} exists in several zones: use its id", field="offering"
        )
    return found[0]
