"""Waiting for a backup or restore job to end, and showing how far it got meanwhile.

On a terminal a live bar (bytes done of total, rate, time left); otherwise, for logs and
pipes, a plain line when the job changes state or passes another tenth of its work, never
one per poll. ``--json`` shows nothing while waiting: stdout holds the job alone. Whether
stdout is a terminal is rich's call, which ``TTY_COMPATIBLE=1`` (a bar) or ``0`` (lines)
overrides. ``--no-wait`` prints the job at once instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from api.cli.app import App
from api.cli.output import finish_job, human_bytes
from orchestrator.domain.models import Job
from orchestrator.engine.core import Scope

F = TypeVar("F", bound=Callable[..., Any])
Watch = Callable[[dict[str, Any]], None]

# Plain lines mark every tenth of the work.
LINE_STEPS = 10


def no_wait_option(fn: F) -> F:
    return click.option(
        "--no-wait",
        is_flag=True,
        help="Print the job at once instead of waiting for it to end (follow it with `job show`; "
        "on the embedded default `backupctl serve` or `tick` runs it).",
    )(fn)


def run_and_finish(app: App, make_job: Callable[[Scope], Job], as_json: bool, no_wait: bool) -> None:
    """Create the job; wait for it to end while showing its progress, unless ``no_wait``."""
    if no_wait:
        job_id, pending = app.create_job(make_job)
        if app.runs_jobs_here:
            click.echo(
                f"job {job_id} is queued: `backupctl serve` (or the next `backupctl tick`) runs it",
                err=True,
            )
        else:
            app.core.runner.submit(pending)
        finish_job(app.show_job(job_id), as_json)
        return
    with watching(as_json) as watch:
        job = app.run_job(make_job, wait=float("inf"), watch=watch)
    finish_job(job, as_json)


@contextmanager
def watching(as_json: bool) -> Iterator[Watch]:
    """What shows a job while it runs: nothing (``--json``), a bar, or plain lines."""
    console = None if as_json else Console()
    if console is None:
        yield lambda _job: None
    elif console.is_terminal:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            _Rate(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar:
            yield _BarWatch(bar)
    else:
        yield _LineWatch()


class _Rate(ProgressColumn):
    """Bytes per second in binary units, as every size here is shown (rich's own column
    counts in decimal ones)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{human_bytes(int(speed))}/s", style="progress.data.speed")


class _BarWatch:
    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: TaskID | None = None

    def __call__(self, job: dict[str, Any]) -> None:
        done, total = job["progress"]["done"], job["progress"]["total"]
        description = f"{job['kind']} {job['state']}"
        if self.task is None:
            self.task = self.bar.add_task(description, total=total or None, completed=done)
        else:
            self.bar.update(self.task, description=description, total=total or None, completed=done)


class _LineWatch:
    def __init__(self) -> None:
        self.state: str | None = None
        self.step = -1
        # (time, bytes done) when the job was first seen running: the rate is measured from here.
        self.start: tuple[float, int] | None = None

    def __call__(self, job: dict[str, Any]) -> None:
        done, total = job["progress"]["done"], job["progress"]["total"]
        step = LINE_STEPS * done // total if total else 0
        if job["state"] == self.state and step <= self.step:
            return
        now = time.monotonic()
        if job["state"] == "running" and self.start is None:
            self.start = (now, done)
        self.state, self.step = job["state"], step
        click.echo(f"job {job['id']} ({job['kind']}) {job['state']}{self._figures(now, done, total)}")

    def _figures(self, now: float, done: int, total: int) -> str:
        if not total:
            return ""
        shown = f": {100 * done // total}% ({human_bytes(done)} of {human_bytes(total)}"
        if self.start is not None and now > self.start[0] and done > self.start[1]:
            rate = (done - self.start[1]) / (now - self.start[0])
            left = timedelta(seconds=round((total - done) / rate))
            shown += f", {human_bytes(round(rate))}/s, {left} left"
        return shown + ")"
