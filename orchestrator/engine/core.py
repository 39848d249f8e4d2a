"""The core's entry point: a database, the provider drivers, and a runner for jobs.

A use case runs inside a ``Scope``: one transaction, one actor. Jobs it creates are
handed to the runner only after the transaction commits, so a worker never sees a job
whose row is not there yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.orm import Session

from orchestrator.domain.actor import Actor
from orchestrator.domain.errors import NotFound
from orchestrator.domain.models import BackupProvider as ProviderRow
from orchestrator.domain.models import Job
from orchestrator.engine.runner import Queued
from orchestrator.infra.config import Settings
from orchestrator.infra.db import Database
from orchestrator.infra.sealing import Sealer
from providers import registry
from providers.base import BackupProvider

if TYPE_CHECKING:
    from orchestrator.engine.runner import Runner

T = TypeVar("T")


class Drivers:
    """Driver instances per provider row, each with a private data directory."""

    def __init__(self, data_root: Path) -> None:
        self.data_root = data_root
        self._cache: dict[tuple[str, str], BackupProvider] = {}

    def for_row(self, row: ProviderRow) -> BackupProvider:
        key = (row.id, repr(sorted(row.config.items())))
        driver = self._cache.get(key)
        if driver is None:
            driver = registry.create(row.driver, row.name, row.config, self.data_root / row.id)
            self._cache[key] = driver
        return driver


@dataclass
class Scope:
    session: Session
    actor: Actor
    core: Core
    pending_jobs: list[Queued] = field(default_factory=list)

    def driver(self, row: ProviderRow) -> BackupProvider:
        return self.core.drivers.for_row(row)

    def enqueue(self, job: Job) -> None:
        self.pending_jobs.append(Queued.of(job))

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


class Core:
    def __init__(self, settings: Settings, db: Database | None = None, runner: Runner | None = None) -> None:
        self.settings = settings
        self.db = db or Database.from_settings(settings)
        self.drivers = Drivers(settings.home / "providers")
        if runner is None:
            from orchestrator.engine.runner import InlineRunner

            runner = InlineRunner()
        self.runner = runner
        self.runner.bind(self)

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
