"""Who did what to which object, written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from orchestrator.domain.models import AuditEvent
from orchestrator.engine.core import Scope
from orchestrator.infra.paging import Page, paginate


def record(scope: Scope, action: str, object_type: str, object_id: str, **details: Any) -> None:
    scope.session.add(
        AuditEvent(
            actor_id=scope.actor.account_id,
            actor_name=scope.actor.name,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details,
        )
    )


def list_events(
    scope: Scope,
    *,
    object_id: str | None = None,
    action: str | None = None,
    page: int = 1,
    pagesize: int = 50,
) -> Page[AuditEvent]:
    """Admins see every event; users see what they did themselves."""
    stmt = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if not scope.actor.is_admin:
        stmt = stmt.where(AuditEvent.actor_id == scope.actor.account_id)
    if object_id:
        stmt = stmt.where(AuditEvent.object_id == object_id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return paginate(scope.session, stmt, page, pagesize)
