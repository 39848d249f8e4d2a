"""The planner's plain data: what it is given and what it answers. No database, no ORM."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.domain.sla import ServiceLevel

# Used for a VM never backed up: a conservative sustained read rate, bytes per second.
DEFAULT_THROUGHPUT = 100 * 2**20


@dataclass(frozen=True)
class Offering:
    id: str
    level: ServiceLevel


@dataclass(frozen=True)
class Host:
    id: str
    max_concurrent: int


@dataclass(frozen=True)
class Pool:
    id: str
    max_concurrent: int
    bandwidth: float | None = None  # bytes/s; None = not a constraint


@dataclass(frozen=True)
class VM:
    id: str
    offering_id: str
    host_id: str
    # Bytes the next backup is expected to read from each pool (an EWMA of history).
    pool_bytes: Mapping[str, int]
    last_good: datetime | None = None
    throughput: float = DEFAULT_THROUGHPUT  # bytes/s this VM's backups achieve

    @property
    def bytes(self) -> int:
        return sum(self.pool_bytes.values())

    @property
    def primary_pool(self) -> str:
        return max(self.pool_bytes, key=lambda p: (self.pool_bytes[p], p))


@dataclass(frozen=True)
class FixedJob:
    """Work the planner must make room for but never moves (ad hoc, user schedules, running)."""

    vm_id: str
    host_id: str
    pool_bytes: Mapping[str, int]
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PlannedJob:
    vm_id: str
    offering_id: str
    start: datetime
    end: datetime  # expected finish
    deadline: datetime  # last_good + RPO: the restore point must be taken by then
    pool_id: str  # the pool the VM's backup reads from most (its queue is the engine's choice)
    reason: str
    late: bool = False

    @property
    def lateness_seconds(self) -> float:
        return max(0.0, (self.start - self.deadline).total_seconds())


@dataclass(frozen=True)
class Unplaceable:
    vm_id: str
    reason: str


@dataclass
class Plan:
    jobs: list[PlannedJob] = field(default_factory=list)
    unplaceable: list[Unplaceable] = field(default_factory=list)

    @property
    def late(self) -> list[PlannedJob]:
        return [j for j in self.jobs if j.late]
