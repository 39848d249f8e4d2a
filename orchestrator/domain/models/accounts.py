from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from orchestrator.domain.models.base import Base, CreatedMixin, IdMixin, enum_column


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


class Account(IdMixin, CreatedMixin, Base):
    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[Role] = mapped_column(enum_column(Role), default=Role.USER)
    # A disabled account keeps everything it owns, but none of its keys authenticates.
    disabled_at: Mapped[datetime | None]

    keys: Mapped[list[ApiKey]] = relationship(back_populates="account", cascade="all, delete-orphan")

    @property
    def state(self) -> str:
        return "disabled" if self.disabled_at else "enabled"


class ApiKey(IdMixin, CreatedMixin, Base):
    """A key pair. The secret is never stored in clear: a hash verifies bearer use, and a
    sealed (encrypted) copy lets the server check CloudStack HMAC signatures."""

    __tablename__ = "api_keys"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    api_key: Mapped[str] = mapped_column(String(128), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    secret_sealed: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None]
    # Unlike a revoked key, a disabled one can be enabled again.
    disabled_at: Mapped[datetime | None]

    account: Mapped[Account] = relationship(back_populates="keys")

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        return "disabled" if self.disabled_at else "active"
