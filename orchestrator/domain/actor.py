"""Who is asking. Every use case takes one; tenancy and roles are checked in the core."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from orchestrator.domain.errors import NotFound, PermissionDenied
from orchestrator.domain.models import Account, Role


@dataclass(frozen=True)
class Actor:
    account_id: str
    name: str
    role: Role

    @classmethod
    def of(cls, account: Account) -> Actor:
        return cls(account.id, account.name, account.role)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def require_admin(self, action: str) -> None:
        if not self.is_admin:
            raise PermissionDenied(f"only an admin may {action}")

    def can_see(self, account_id: str) -> bool:
        return self.is_admin or account_id == self.account_id


def acting_as(account_id: str) -> Callable[[Session], Actor]:
    """For work done on an account's behalf (its jobs, schedules, planned backups, retention):
    the account is read inside the use case's own transaction (``core.scope(acting_as(id))``)."""

    def load(session: Session) -> Actor:
        account = session.get(Account, account_id)
        if account is None:
            raise NotFound.of("account", account_id)
        return Actor.of(account)

    return load
