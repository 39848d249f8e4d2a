"""What each kind of job carries beyond its subject, typed. A job row stores these as JSON
(``Job.params``); a handler reads them back with ``of(job)`` instead of digging in a dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Self

from orchestrator.domain.models import Job


@dataclass(frozen=True)
class JobParams:
    def to_json(self) -> dict[str, Any]:
        """The row's JSON; unset optional fields are left out."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def of(cls, job: Job) -> Self:
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in job.params.items() if key in names})


@dataclass(frozen=True)
class PlannedBackup(JobParams):
    """An SLA backup the planner placed: why there, and whether it already misses its deadline."""

    reason: str
    late: bool
    expected_end: str  # ISO 8601
    origin: Literal["sla"] = "sla"

    @classmethod
    def of_sla_job(cls, job: Job) -> PlannedBackup | None:
        """The planner's parameters of an SLA backup, planned or since released; None for
        any other job."""
        return cls.of(job) if job.params.get("origin") == "sla" else None


@dataclass(frozen=True)
class DeleteBackups(JobParams):
    """Restore points to delete, newest first; ``forced`` where the back end deletes whole chains."""

    ids: list[str]
    forced: bool = False


@dataclass(frozen=True)
class RestoreVm(JobParams):
    """Restore onto ``vm_id``; with ``target`` (a VMRef as a dict), onto a new VM made from it.
    ``stop``: the user asked the provider to stop the VM first if it is running."""

    vm_id: str
    target: dict[str, Any] | None = None
    stop: bool = False


@dataclass(frozen=True)
class RestoreVolume(JobParams):
    """Restore volume ``volume_id`` of the point as a new data disk attached to ``vm_id``."""

    volume_id: str
    vm_id: str


@dataclass(frozen=True)
class Ingest(JobParams):
    """Discover a host's unmanaged VMs, or import one (``uuid``) into ``account_id``."""

    action: Literal["discover", "import"]
    uuid: str | None = None
    account_id: str | None = None
    name: str | None = None
