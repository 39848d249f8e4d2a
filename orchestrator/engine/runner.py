"""The runner port: how committed jobs reach whatever executes them. The in-process runners
(``local_runners``) need no service at all; the Celery runner in ``workers/`` implements
the same interface for distributed sites."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from orchestrator.domain.models import Job, JobKind

if TYPE_CHECKING:
    from orchestrator.engine.core import Core


class Queued(NamedTuple):
    """A committed, queued job as a runner needs it: which, where to send it, what it is
    (known where the job was made, so delivering it reads nothing back)."""

    id: str
    queue: str
    kind: JobKind

    @classmethod
    def of(cls, job: Job) -> Queued:
        return cls(job.id, job.queue, job.kind)


class Runner(Protocol):
    def bind(self, core: Core) -> None:
        """Called once by the core that owns this runner."""

    def submit(self, jobs: Sequence[Queued]) -> None:
        """Deliver committed, queued jobs for execution (at least once)."""

    def holding(self, queues: set[str]) -> set[str]:
        """Those of ``queues`` that still hold messages not yet taken by a worker (the
        reconciler re-sends jobs of queues that hold none)."""
