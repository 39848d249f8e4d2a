"""backupctl against a worker elsewhere: backup create waits for the worker to end the job,
showing its progress; --no-wait publishes the job and returns at once."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from api.cli.main import cli
from orchestrator.domain.models import JobState
from orchestrator.infra.config import Settings
from tests.conftest import World
from tests.distributed.conftest import Processes, environment, job_rows, wait_for
from tests.distributed.test_workers import slow_vms


def _cli(settings: Settings, *args: str) -> str:
    env = {**environment(settings), "TTY_COMPATIBLE": "0"}
    result = CliRunner().invoke(cli, ["--as", "alice", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_backup_create_waits_for_the_worker_with_progress(
    world: World, settings: Settings, processes: Processes
) -> None:
    vm_id = slow_vms(world, 1, duration=2.0)[0]
    processes.worker("--pools", "pool1")

    out = _cli(settings, "backup", "create", vm_id)

    assert re.search(r"^job \S+ \(backup\) running: \d+% ", out, re.M), out
    assert re.search(r"^state\s+succeeded$", out, re.M), out
    assert re.search(r"^worker\s+(?!inline)\S+", out, re.M), out


def test_no_wait_publishes_the_job_and_returns_at_once(
    world: World, settings: Settings, processes: Processes
) -> None:
    vm_id = slow_vms(world, 1, duration=2.0)[0]

    job = json.loads(_cli(settings, "backup", "create", vm_id, "--no-wait", "--json"))

    assert job["state"] == "queued"
    processes.worker("--pools", "pool1")
    rows = wait_for(
        lambda: [r for r in job_rows(world.core, [job["id"]]) if r.state is JobState.SUCCEEDED],
        what="the published job to succeed",
    )
    assert rows[0].leased_by != "inline"
