"""Repository maintenance from a shell, until the framework runs it as jobs.

    python -m providers.nas --config nas.json list
    python -m providers.nas --config nas.json check [--read-data]
    python -m providers.nas --config nas.json prune --keep-daily 7 --keep-weekly 4 [--yes]
    python -m providers.nas --config nas.json gc [--dry-run]

``--config`` is the provider's configuration as a JSON file (or ``-`` for stdin). Prune
is a dry run unless ``--yes`` is given. Exit status: 0 fine, 1 damage found, 2 error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from orchestrator.domain.errors import DomainError
from orchestrator.domain.retention import RetentionPolicy
from providers.nas.driver import NasProvider

RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m providers.nas", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the provider configuration (JSON file, - for stdin)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="restore points in the repository")
    check = commands.add_parser("check", help="every restore point readable, every chunk present")
    check.add_argument("--read-data", action="store_true", help="also read and re-hash every chunk")
    prune = commands.add_parser("prune", help="delete restore points the retention rules drop")
    for rule in RULES:
        prune.add_argument(f"--{rule.replace('_', '-')}", type=int, dest=rule)
    prune.add_argument("--timezone", default="UTC")
    prune.add_argument("--yes", action="store_true", help="really delete (default: dry run)")
    gc = commands.add_parser("gc", help="free chunks no restore point names")
    gc.add_argument("--dry-run", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        raw = sys.stdin.read() if args.config == "-" else Path(args.config).read_text()
        provider = NasProvider("nas-cli", json.loads(raw), Path(tempfile.gettempdir()) / "nas-cli")
        if args.command == "list":
            for listed in sorted(provider.list_points(), key=lambda m: m.created_at):
                print(f"{listed.created_at:%Y-%m-%d %H:%M} {listed.id} {listed.vm.name} {listed.backup_type}")
            return 0
        if args.command == "check":
            checked = provider.check(read_data=args.read_data)
            for point, problem in checked.bad_points.items():
                print(f"DAMAGED {point}: {problem}")
            print(f"{checked.points} restore points, {checked.chunks} chunks, {len(checked.damaged)} damaged")
            return 0 if checked.ok else 1
        if args.command == "prune":
            policy = RetentionPolicy(**{rule: getattr(args, rule) for rule in RULES})
            chosen = None if policy.is_empty else policy  # none given: the configured retention
            plan = provider.prune(chosen, dry_run=not args.yes, zone=args.timezone)
            for summary in plan.remove:
                verb = "removed" if args.yes else "would remove"
                print(f"{verb} {summary.id} ({summary.vm_name}, {summary.created_at:%Y-%m-%d %H:%M})")
            print(f"kept {len(plan.keep)}, {'removed' if args.yes else 'would remove'} {len(plan.remove)}")
            return 0
        report = provider.gc(dry_run=args.dry_run)
        print(
            f"{report.removed_chunks} chunks ({report.removed_bytes} bytes) "
            f"{'would be ' if args.dry_run else ''}freed, {report.kept_in_grace} kept in the grace period, "
            f"{report.referenced_chunks} referenced"
        )
        return 0
    except (DomainError, OSError, ValueError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
