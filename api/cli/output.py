"""Tables for people, JSON for scripts, and one place that turns errors into exit codes."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import click
from tabulate import tabulate

from orchestrator.domain import errors
from orchestrator.infra.paging import DEFAULT_PAGESIZE

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES: dict[type[errors.DomainError], int] = {
    errors.InvalidArgument: 2,
    errors.NotFound: 3,
    errors.Conflict: 4,
    errors.Unsupported: 5,
    errors.PermissionDenied: 6,
    errors.AuthenticationFailed: 7,
    errors.Unavailable: 8,
}


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def paging_options(fn: F) -> F:
    fn = click.option(
        "--pagesize", type=int, default=DEFAULT_PAGESIZE, show_default=True, help="Items per page."
    )(fn)
    return click.option("--page", type=int, default=1, show_default=True, help="Page number, from 1.")(fn)


def _human(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping) and set(value) == {"done", "total"}:
        return f"{value['done']}/{value['total']}" if value["total"] else "-"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def emit(data: Any, as_json: bool, columns: Sequence[str] | None = None) -> None:
    """A list becomes a table of ``columns``; a single object a two-column listing."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if isinstance(data, list):
        if not data:
            click.echo("(none)")
            return
        cols = list(columns or data[0].keys())
        click.echo(tabulate([[_human(row.get(c)) for c in cols] for row in data], headers=cols))
        return
    rows: Iterable[tuple[str, str]] = ((k, _human(v)) for k, v in data.items())
    click.echo(tabulate(list(rows), tablefmt="plain"))


def handle_errors(fn: F) -> F:
    """Domain errors print their message (as JSON with --json) and exit non-zero, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except errors.DomainError as exc:
            code = next((c for t, c in EXIT_CODES.items() if isinstance(exc, t)), 1)
            if kwargs.get("as_json"):
                click.echo(json.dumps(exc.to_dict()))
            else:
                click.echo(f"error: {exc.message}", err=True)
            sys.exit(code)

    return wrapper  # type: ignore[return-value]


def finish_job(job: dict[str, Any], as_json: bool) -> None:
    """Print the job; a job that failed makes the command fail too."""
    emit(job, as_json)
    if job["state"] == "failed":
        sys.exit(1)
