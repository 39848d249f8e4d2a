"""A running vCenter simulator per test (it starts in well under a second, and backups and
restores change its inventory). Without a Go toolchain and govmomi's sources the tests are
skipped, except with ``CI=true``, where that fails the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from providers.vsphere.connection import sessions
from tests.conftest import IN_CI
from tests.peers import vcsim


@pytest.fixture(scope="session")
def vcsim_binary() -> Path:
    try:
        return vcsim.binary()
    except vcsim.Unavailable as exc:
        if IN_CI:
            pytest.fail(f"the vCenter simulator is required in CI: {exc}")
        pytest.skip(str(exc))


@pytest.fixture
def vcenter(vcsim_binary: Path) -> Iterator[vcsim.Vcsim]:
    with vcsim.running(vcsim_binary) as sim:
        yield sim
        # Sessions this process keeps belong to this simulator alone.
        sessions.close_all()
