"""Tables for people, JSON for scripts, and one place that turns errors into exit codes."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import humanize
from tabulate import tabulate

from orchestrator.domain import errors, validate
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


# Columns that hold byte counts, shown as 70.0 GiB; ``--json`` keeps the raw numbers.
BYTE_FIELDS = frozenset({"size", "logical_size", "stored_size", "bandwidth_bytes_per_s"})
# Jobs whose progress counts bytes; the others count items.
BYTE_PROGRESS_KINDS = frozenset({"backup", "restore_vm", "restore_volume"})
TIME_RANGE_FIELDS = frozenset({"windows", "blackouts"})
# Columns that hold ISO timestamps (all UTC), shown to the second.
TIMESTAMP_FIELDS = frozenset(
    {"at", "cancel_requested", "completed", "created", "date", "deadline", "end", "finished", "next_run"}
    | {"not_before", "start", "started"}
)


def human_bytes(value: int) -> str:
    return humanize.naturalsize(value, binary=True)


def _time_ranges(key: str, ranges: list[Mapping[str, Any]]) -> str:
    """``[{"start": "18:00", "end": "08:00", "days": [...]}]`` as the CLI takes them."""
    shown = []
    for r in ranges:
        days = f"{','.join(r['days'])}@" if r.get("days") else ""
        shown.append(f"{days}{r['start']}-{r['end']}")
    return ", ".join(shown) or ("any time" if key == "windows" else "none")


def _timestamp(value: str) -> str:
    try:
        return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return value


def _volumes(volumes: list[Mapping[str, Any]]) -> str:
    return ", ".join(
        f"{v.get('type', '?')} {human_bytes(v.get('size') or 0)} {v.get('path') or ''}".strip()
        for v in volumes
    )


def _progress(value: Mapping[str, Any], kind: Any) -> str:
    done, total = value["done"], value["total"]
    if not total:
        return "-"
    if kind in BYTE_PROGRESS_KINDS:
        return f"{100 * done // total}% ({human_bytes(done)} of {human_bytes(total)})"
    return f"{done}/{total}"


def _human(key: str, value: Any, row: Mapping[str, Any]) -> str:
    if value is None:
        return "-"
    if key in BYTE_FIELDS and isinstance(value, int):
        return human_bytes(value)
    if key in TIME_RANGE_FIELDS and isinstance(value, list):
        return _time_ranges(key, value)
    if key in TIMESTAMP_FIELDS and isinstance(value, str):
        return _timestamp(value)
    if key == "volumes" and isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        return _volumes(value)
    if isinstance(value, Mapping) and set(value) == {"done", "total"}:
        return _progress(value, row.get("kind"))
    if isinstance(value, Mapping):
        # A job's result, a VM's details: each field as the tables show it.
        return ", ".join(f"{k}={_human(k, v, value)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
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
        click.echo(tabulate([[_human(c, row.get(c), row) for c in cols] for row in data], headers=cols))
        return
    rows: Iterable[tuple[str, str]] = ((k, _human(k, v, data)) for k, v in data.items())
    click.echo(tabulate(list(rows), tablefmt="plain"))


def handle_errors(fn: F) -> F:
    """Domain errors print their message (as JSON with --json) and exit non-zero, no traceback;
    an argument that is not valid Unicode is one of them, named by its parameter."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            # Arguments that were not UTF-8 reach Python as lone surrogates (PEP 383).
            for name, value in kwargs.items():
                validate.unicode_strings(value, name)
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
