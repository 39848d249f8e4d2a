"""Who did what to which object, written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from orchestrator.core import Scope
from orchestrator.models import AuditEvent


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
