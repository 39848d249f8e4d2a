"""The core's kernel: a database, the provider drivers, a runner for jobs, and the table of
job handlers it was given.

A use case runs inside a ``Scope``: one transaction, one actor. Jobs it creates are
handed to the runner only after the transaction commits, so a worker never sees a job
whose row is not there yet.

The engine knows job kinds only through ``Handlers``: the use-case layer builds the table
and ``orchestrator.bootstrap`` hands it to the core, so nothing here imports a use case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from orchestrator.domain.actor import Actor
from orchestrator.domain.errors import NotFound
from orchestrator.domain.models import BackupProvider, Job, JobKind
from orchestrator.engine.runner import Queued, Runner
from orchestrator.infra.config import Settings
from orchestrator.infra.db import Database, persist
from orchestrator.infra.sealing import Sealer
from providers import registry
from providers.base import ProviderDriver

T = TypeVar("T")

# What a job's run step returns: the step that records success, run in the transaction that
# marks the job succeeded.
Finish = Callable[[Session], dict[str, Any]]
# Reports work done out of work to do (bytes for data-moving jobs, items for the others).
ProgressFn = Callable[[int, int], None]


class Drivers:
    """Driver instances per provider row, each with a private data directory. A row's secret
    settings are stored sealed: ``unseal`` opens them for the driver, never for the row."""

    def __init__(self, data_root: Path, unseal: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.data_root = data_root
        self._unseal = unseal
        self._cache: dict[tuple[str, str], ProviderDriver] = {}

    def for_row(self, row: BackupProvider) -> ProviderDriver:
        key = (row.id, repr(sorted(row.config.items())))
        driver = self._cache.get(key)
        if driver is None:
            driver = registry.create(row.driver, row.name, self._unseal(row.config), self.data_root / row.id)
            driver.open_sealed = lambda sealed: self._unseal(dict(sealed))
            self._cache[key] = driver
        return driver


@dataclass
class Scope:
    session: Session
    actor: Actor
    core: Core
    pending_jobs: list[Queued] = field(default_factory=list)

    def driver(self, row: BackupProvider) -> ProviderDriver:
        return self.core.drivers.for_row(row)

    def enqueue(self, job: Job) -> None:
        self.pending_jobs.append(Queued.of(job))

    def take_pending(self) -> list[Queued]:
        """The jobs queued so far, for the caller to hand to the runner itself once the scope
        has committed (or to leave to the dispatcher) instead of the scope doing it."""
        taken, self.pending_jobs = self.pending_jobs, []
        return taken

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: what it did, jobs it queued included, is undone if it raises
        while the rest of the scope's transaction carries on."""
        queued = len(self.pending_jobs)
        try:
            with self.session.begin_nested():
                yield
        except BaseException:
            del self.pending_jobs[queued:]
            raise

    def get(self, model: type[T], ident: str, kind: str) -> T:
        obj = self.session.get(model, ident)
        if obj is None:
            raise NotFound.of(kind, ident)
        return obj


@dataclass(frozen=True)
class JobHandler:
    """What the engine does for one kind of job."""

    # Does the work, outside any transaction; returns the step that records success.
    run: Callable[[Core, Job, ProgressFn], Finish]
    # Records on the job's subject that this attempt failed; ``final`` when no retry follows.
    on_failure: Callable[[Session, Job, str, bool], None]
    # Follow-up work (e.g. pruning) as the job's owner, in the transaction that records
    # success but behind a savepoint: its failure does not undo the job.
    after: Callable[[Scope, Job], None] | None = None
    # Removes at the back end what a run that lost its lease wrote (partial or complete),
    # so a worker presumed dead leaves no second copy beside the new attempt's;
    # ``job.attempts`` is that run's attempt.
    abandon: Callable[[Core, Job], None] | None = None


class Handlers:
    """The job kinds this installation runs, each with its handler."""

    def __init__(self, table: Mapping[JobKind, JobHandler]) -> None:
        self._table = dict(table)

    def __getitem__(self, kind: JobKind) -> JobHandler:
        try:
            return self._table[kind]
        except KeyError:
            raise NotImplementedError(f"no handler for {kind.value} jobs in this version") from None


class Core:
    """Assembled once per process by ``orchestrator.bootstrap.build_core``."""

    def __init__(self, settings: Settings, db: Database, runner: Runner, handlers: Handlers) -> None:
        self.settings = settings
        self.db = db
        # Through the core's sealer, which reads the master key when the first driver is built.
        self.drivers = Drivers(settings.home / "providers", lambda config: self.sealer.unseal_config(config))
        self.handlers = handlers
        self.runner = runner
        self.runner.bind(self)

    def durably(self, step: Callable[[], T]) -> T:
        """Run a database step (its own transaction) again while the database cannot be
        reached, for up to ``settings.db_retry_seconds``: a worker's writes wait out a
        database restart instead of failing the job. The step must be safe to repeat."""
        return persist(step, for_seconds=self.settings.db_retry_seconds)

    @cached_property
    def sealer(self) -> Sealer:
        return Sealer(self.settings.home)

    @contextmanager
    def scope(self, actor: Actor | Callable[[Session], Actor]) -> Iterator[Scope]:
        """``actor`` may be a function that authenticates inside the same transaction."""
        with self.db.session() as session:
            scope = Scope(session, actor(session) if callable(actor) else actor, self)
            yield scope
        if scope.pending_jobs:
            self.runner.submit(scope.pending_jobs)
