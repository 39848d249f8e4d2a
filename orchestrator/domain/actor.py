"""Who is asking. Every use case takes one; tenancy and roles are checked in the core."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.errors import PermissionDenied
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
