"""Shared fixtures. Every core test runs against SQLite and PostgreSQL.

PostgreSQL is reached at ``BACKUP_TEST_POSTGRES_URL`` (default 127.0.0.1:5432, user
postgres, database test); each test gets a schema of its own. With ``CI=true`` a missing
PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.bootstrap import build_core
from orchestrator.domain.actor import Actor
from orchestrator.engine.core import Core
from orchestrator.engine.runner import Queued
from orchestrator.infra.config import Settings
from orchestrator.infra.db import Database
from orchestrator.usecases import accounts, assignments, backup_providers, inventory, offerings
from tests.migrated import MigratedSchema

POSTGRES_URL = os.environ.get(
    "BACKUP_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
GiB = 2**30


def _postgres_available() -> str | None:
    try:
        engine = sa.create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except sa.exc.OperationalError as exc:
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def postgres_ready() -> None:
    problem = _postgres_available()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {POSTGRES_URL}: {problem}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}: {problem}")


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose connections use a fresh schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # Pre-ping: a test may restart PostgreSQL while this engine's connection idles.
    admin = sa.create_engine(POSTGRES_URL, pool_pre_ping=True)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    request.getfixturevalue("postgres_ready")
    with postgres_schema() as url:
        yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url, retry_base_seconds=0.0)


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> MigratedSchema:
    """Opens a test's fresh database at the newest revision without migrating it again."""
    return MigratedSchema(tmp_path_factory.mktemp("migrated"), postgres_schema)


@pytest.fixture
def core(settings: Settings, migrated: MigratedSchema) -> Iterator[Core]:
    db = migrated.database(settings.database_url)
    yield build_core(settings, db=db)
    db.dispose()


class Recorder:
    """A runner that only records what it is given: submitted jobs stay queued."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def bind(self, core: Core) -> None:
        self.core = core

    def submit(self, jobs: Sequence[Queued]) -> None:
        self.ids.extend(job.id for job in jobs)

    def holding(self, queues: set[str]) -> set[str]:
        return set(queues)  # everything it was given is still waiting


@pytest.fixture
def deferred(world: World, settings: Settings) -> Iterator[Core]:
    """A second core on the world's database whose jobs are queued but never run."""
    db = Database(settings.database_url)
    yield build_core(settings, db=db, runner=Recorder())
    db.dispose()


@dataclass
class World:
    """A small cloud: one zone (plus an empty second one), two tenants, a dummy provider
    with a gold offering (user-driven backups allowed) and a bronze one (not allowed).
    Alice's web1 (``alice_vm``) runs; her db1 (``alice_vm2``) is stopped."""

    core: Core
    admin: Actor
    alice: Actor
    bob: Actor
    zone_id: str
    zone2_id: str
    provider_id: str
    gold_id: str
    bronze_id: str
    alice_vm: str
    bob_vm: str
    alice_vm2: str
    pool_id: str


def add_provider(core: Core, admin: Actor, name: str, **config: object) -> str:
    with core.scope(admin) as s:
        return backup_providers.add(s, name=name, driver="dummy", config=config).id


def import_offering(core: Core, admin: Actor, provider: str, name: str, **kw: object) -> str:
    with core.scope(admin) as s:
        return offerings.import_offering(
            s,
            name=name,
            zone=kw.pop("zone", "zone1"),  # type: ignore[arg-type]
            provider=provider,
            external_id=kw.pop("external_id", "dummy-gold"),  # type: ignore[arg-type]
            rpo=kw.pop("rpo", "24h"),  # type: ignore[arg-type]
            **kw,  # type: ignore[arg-type]
        ).id


@pytest.fixture
def world(core: Core) -> World:
    accounts.bootstrap(core)
    admin = accounts.admin_actor(core)
    with core.scope(admin) as s:
        zone = inventory.create_zone(s, "zone1")
        zone2 = inventory.create_zone(s, "zone2")
        inventory.create_host(s, zone="zone1", name="kvm1", hypervisor="kvm")
        inventory.create_host(s, zone="zone2", name="kvm2", hypervisor="kvm")
        pool = inventory.create_pool(s, zone="zone1", name="pool1", path="/srv/pool1")
        inventory.create_pool(s, zone="zone2", name="pool2", path="/srv/pool2")
        accounts.create_account(s, "alice")
        accounts.create_account(s, "bob")
        vols = [{"pool": "pool1", "size": 10 * GiB}, {"pool": "pool1", "size": 2 * GiB}]
        alice_vm = inventory.register_vm(
            s, name="web1", account="alice", zone="zone1", host="kvm1", volumes=vols
        )
        alice_vm2 = inventory.register_vm(
            s, name="db1", account="alice", zone="zone1", host="kvm1", volumes=vols, state="Stopped"
        )
        bob_vm = inventory.register_vm(s, name="app1", account="bob", zone="zone1", host="kvm1", volumes=vols)
        ids = (zone.id, zone2.id, pool.id, alice_vm.id, alice_vm2.id, bob_vm.id)
    provider_id = add_provider(core, admin, "dummy")
    gold = import_offering(core, admin, provider_id, "gold", rpo="24h", allow_user_driven_backups=True)
    bronze = import_offering(
        core,
        admin,
        provider_id,
        "bronze",
        external_id="dummy-bronze",
        rpo="2d",
        allow_user_driven_backups=False,
    )
    alice = accounts.admin_actor(core, "alice")
    bob = accounts.admin_actor(core, "bob")
    zone_id, zone2_id, pool_id, alice_vm_id, alice_vm2_id, bob_vm_id = ids
    with core.scope(alice) as s:
        assignments.assign(s, alice_vm_id, gold)
    with core.scope(bob) as s:
        assignments.assign(s, bob_vm_id, gold)
    return World(
        core=core,
        admin=admin,
        alice=alice,
        bob=bob,
        zone_id=zone_id,
        zone2_id=zone2_id,
        provider_id=provider_id,
        gold_id=gold,
        bronze_id=bronze,
        alice_vm=alice_vm_id,
        bob_vm=bob_vm_id,
        alice_vm2=alice_vm2_id,
        pool_id=pool_id,
    )
