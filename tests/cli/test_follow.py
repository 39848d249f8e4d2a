"""backup create and restore wait with progress: a bar on a terminal, a few lines otherwise,
nothing in --json; --no-wait prints the job at once."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.cli.test_backupctl import cloud, data, run  # noqa: F401  (fixtures)

# The dummy reports progress in 4 steps over this long, so the CLI polls it while it runs.
DURATION_S = 2.0
PROGRESS_LINE = re.compile(r"^job \S+ \(backup\) running: (\d+)% \(.* of 21\.0 GiB.*\)$", re.M)


@pytest.fixture
def slow(run, cloud):  # noqa: F811
    run("provider", "add", "slow", "--driver", "dummy", "--config", json.dumps({"duration_s": DURATION_S}))
    run(
        "offering",
        "import",
        "slow",
        "--zone",
        "zone-1",
        "--provider",
        "slow",
        "--external-id",
        "dummy-gold",
        "--rpo",
        "1d",
    )
    run("vm", "change-offering", "web-01", "slow")
    return cloud


def test_without_a_terminal_progress_is_a_few_plain_lines_then_the_job(run, slow):  # noqa: F811
    out = run("backup", "create", "web-01", as_="alice", TTY_COMPATIBLE="0").stdout
    percents = [int(p) for p in PROGRESS_LINE.findall(out)]
    # Polled about 4 times a second for 2 s, yet one line per tenth at most, in order.
    assert percents
    assert percents == sorted(set(percents))
    assert len(percents) <= 10
    assert "\x1b[" not in out
    assert "━" not in out
    assert re.search(r"^state\s+succeeded$", out, re.M)


def test_on_a_terminal_a_live_bar_shows_bytes_rate_and_time_left(run, slow):  # noqa: F811
    out = run("backup", "create", "web-01", as_="alice", TTY_COMPATIBLE="1", TERM="xterm").stdout
    assert "━" in out  # the bar
    assert "backup running" in out
    assert re.search(r"[\d.]+/21\.0 GiB", out)
    assert not PROGRESS_LINE.search(out)
    assert re.search(r"^state\s+succeeded$", out, re.M)


def test_json_holds_the_job_alone_even_on_a_terminal(run, slow):  # noqa: F811
    job = data(run("backup", "create", "web-01", "--json", as_="alice", TTY_COMPATIBLE="1"))
    assert job["state"] == "succeeded"
    assert job["progress"]["done"] == job["progress"]["total"] == 21 * 2**30


def test_no_wait_prints_the_queued_job_at_once_and_tick_runs_it(run, slow):  # noqa: F811
    started = time.monotonic()
    made = run("backup", "create", "web-01", "--no-wait", "--json", as_="alice")
    assert time.monotonic() - started < DURATION_S
    job = data(made)
    assert job["state"] == "queued"
    assert "backupctl serve" in made.stderr
    # The dispatcher sends a job nobody took once the lost-message grace has passed.
    run("tick", BACKUP_LOST_MESSAGE_GRACE_SECONDS="0")
    assert data(run("job", "show", job["id"], "--json", as_="alice"))["state"] == "succeeded"


def test_restores_wait_with_progress_and_take_no_wait_too(run, slow):  # noqa: F811
    point = data(run("backup", "create", "web-01", "--json", as_="alice"))["result"]["backup_id"]
    out = run("restore", "vm", point, "--stop", as_="alice", TTY_COMPATIBLE="0").stdout
    assert re.search(r"^job \S+ \(restore_vm\) running", out, re.M)
    queued = data(run("restore", "vm", point, "--stop", "--no-wait", "--json", as_="alice"))
    assert (queued["kind"], queued["state"]) == ("restore_vm", "queued")
