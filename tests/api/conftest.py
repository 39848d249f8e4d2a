"""A live API server on 127.0.0.1 over the test world, with jobs run by background threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

from api.app import create_app
from orchestrator.bootstrap import build_core
from orchestrator.engine.core import Core
from orchestrator.engine.local_runners import ThreadRunner
from orchestrator.infra.config import Settings
from orchestrator.usecases import accounts
from tests.migrated import MigratedSchema


@pytest.fixture
def core(settings: Settings, migrated: MigratedSchema) -> Iterator[Core]:
    db = migrated.database(settings.database_url)
    runner = ThreadRunner(workers=2)
    yield build_core(settings, db=db, runner=runner)
    runner.shutdown()
    db.dispose()


@dataclass(frozen=True)
class Keys:
    apikey: str
    secretkey: str


@dataclass
class Server:
    url: str
    keys: dict[str, Keys]

    @property
    def endpoint(self) -> str:
        return f"{self.url}/client/api"


@pytest.fixture
def server(world) -> Iterator[Server]:
    keys = {}
    for actor in (world.admin, world.alice, world.bob):
        with world.core.scope(actor) as s:
            issued = accounts.create_key(s, actor.account_id)
        keys[actor.name] = Keys(issued.apikey, issued.secretkey)
    httpd = make_server("127.0.0.1", 0, create_app(world.core), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{httpd.server_port}", keys)
    httpd.shutdown()
    thread.join(timeout=5)
