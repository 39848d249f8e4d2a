"""What the cloud has: zones, hosts, storage pools, VMs and their volumes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from orchestrator.domain.models.base import Base, CreatedMixin, IdMixin, enum_column

if TYPE_CHECKING:
    from orchestrator.domain.models.accounts import Account
    from orchestrator.domain.models.offerings import BackupOffering


class Hypervisor(StrEnum):
    KVM = "kvm"
    VMWARE = "vmware"


class VMState(StrEnum):
    RUNNING = "Running"
    STOPPED = "Stopped"
    DESTROYED = "Destroyed"


class VolumeType(StrEnum):
    ROOT = "ROOT"
    DATADISK = "DATADISK"


class Zone(IdMixin, CreatedMixin, Base):
    __tablename__ = "zones"

    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(String(1024), default="")


class Host(IdMixin, CreatedMixin, Base):
    __tablename__ = "hosts"
    __table_args__ = (UniqueConstraint("zone_id", "name"),)

    name: Mapped[str] = mapped_column(String(255))
    zone_id: Mapped[str] = mapped_column(ForeignKey("zones.id"), index=True)
    hypervisor: Mapped[Hypervisor] = mapped_column(enum_column(Hypervisor))
    address: Mapped[str] = mapped_column(String(255), default="")
    max_concurrent_backups: Mapped[int] = mapped_column(Integer, default=2)
    # How workers reach the host (its driver checks it): transport, address, key and
    # known_hosts paths. Key auth only, so no secret is ever stored here.
    connection: Mapped[dict[str, Any]] = mapped_column(default=dict)

    zone: Mapped[Zone] = relationship()


class StoragePool(IdMixin, CreatedMixin, Base):
    __tablename__ = "storage_pools"
    __table_args__ = (UniqueConstraint("zone_id", "name"),)

    name: Mapped[str] = mapped_column(String(255))
    zone_id: Mapped[str] = mapped_column(ForeignKey("zones.id"), index=True)
    path: Mapped[str] = mapped_column(String(1024), default="")
    max_concurrent_backups: Mapped[int] = mapped_column(Integer, default=4)
    bandwidth_bytes_per_s: Mapped[int | None] = mapped_column(BigInteger)

    zone: Mapped[Zone] = relationship()


class VirtualMachine(IdMixin, CreatedMixin, Base):
    __tablename__ = "virtual_machines"

    name: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    zone_id: Mapped[str] = mapped_column(ForeignKey("zones.id"), index=True)
    host_id: Mapped[str | None] = mapped_column(ForeignKey("hosts.id"), index=True)
    state: Mapped[VMState] = mapped_column(enum_column(VMState), default=VMState.RUNNING)
    backup_offering_id: Mapped[str | None] = mapped_column(ForeignKey("backup_offerings.id"), index=True)
    # Hypervisor-level description (cpus, memory, nics, ...), copied into each restore point.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    removed_at: Mapped[datetime | None]

    account: Mapped[Account] = relationship()
    zone: Mapped[Zone] = relationship()
    host: Mapped[Host | None] = relationship()
    backup_offering: Mapped[BackupOffering | None] = relationship()
    volumes: Mapped[list[Volume]] = relationship(back_populates="vm", order_by="Volume.device_id")

    @property
    def live_volumes(self) -> list[Volume]:
        return [v for v in self.volumes if v.removed_at is None]


class Volume(IdMixin, CreatedMixin, Base):
    __tablename__ = "volumes"

    name: Mapped[str] = mapped_column(String(255))
    vm_id: Mapped[str | None] = mapped_column(ForeignKey("virtual_machines.id"), index=True)
    pool_id: Mapped[str] = mapped_column(ForeignKey("storage_pools.id"), index=True)
    type: Mapped[VolumeType] = mapped_column(enum_column(VolumeType))
    device_id: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    path: Mapped[str] = mapped_column(String(1024), default="")
    format: Mapped[str] = mapped_column(String(16), default="qcow2")
    removed_at: Mapped[datetime | None]

    vm: Mapped[VirtualMachine | None] = relationship(back_populates="volumes")
    pool: Mapped[StoragePool] = relationship()
