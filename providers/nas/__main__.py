"""The repository from a shell: maintenance until the framework runs it as jobs, and
backups and restores of image files without the framework.

    python -m providers.nas --config nas.json init
    python -m providers.nas --config nas.json backup --vm web-1 [--stopped] IMAGE...
    python -m providers.nas --config nas.json restore POINT TARGET...
    python -m providers.nas --config nas.json list
    python -m providers.nas --config nas.json check [--read-data]
    python -m providers.nas --config nas.json prune --keep-daily 7 --keep-weekly 4 [--yes]
    python -m providers.nas --config nas.json gc [--dry-run]

``--config`` is the provider's configuration as a JSON file (or ``-`` for stdin).
``--passphrase-env VAR`` or ``--passphrase-file PATH`` supplies the encryption secret
outside that file (it replaces the configuration's ``passphrase``/``key_file``). A backup
is an incremental of the VM's newest restore point in the repository unless ``--full``;
it prints the new point's name, which ``restore`` takes with one target file per volume,
in device order. Prune is a dry run unless ``--yes`` is given. Exit status: 0 fine,
1 damage found, 2 error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.domain.errors import DomainError
from orchestrator.domain.retention import RetentionPolicy
from providers.base import BackupRequest, RestorePointRef, VMRef, VolumeRef
from providers.nas.driver import NasProvider
from providers.nas.manifest import Manifest, point_name

RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
FORMATS = ("raw", "qcow2")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m providers.nas", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the provider configuration (JSON file, - for stdin)")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument(
        "--passphrase-env", metavar="VAR", help="encrypt with the passphrase in this variable"
    )
    secret.add_argument("--passphrase-file", metavar="PATH", help="encrypt with the secret in this file")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the repository (and its key) if it does not exist")
    backup = commands.add_parser("backup", help="back up disk image files as one restore point of a VM")
    backup.add_argument("images", nargs="+", metavar="IMAGE", help="the VM's disk images, in device order")
    backup.add_argument("--vm", required=True, help="the VM's id: incrementals chain per VM")
    backup.add_argument("--point", help="the restore point's id (default: VM, time and a random suffix)")
    backup.add_argument("--format", choices=FORMATS, help="the images' format (default: by file suffix)")
    backup.add_argument("--offering", default="nas-daily")
    backup.add_argument("--full", action="store_true", help="do not chain to the VM's newest restore point")
    backup.add_argument(
        "--stopped", action="store_true", help="the VM is stopped: its images may be read in place"
    )
    restore = commands.add_parser("restore", help="write a restore point's volumes to new or existing files")
    restore.add_argument("point", help="the restore point's name, as backup and list print it")
    restore.add_argument("targets", nargs="+", metavar="TARGET", help="one file per volume, in device order")
    restore.add_argument("--format", choices=FORMATS, help="the targets' format (default: as backed up)")
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


def _config(args: argparse.Namespace) -> dict[str, Any]:
    raw = sys.stdin.read() if args.config == "-" else Path(args.config).read_text()
    config: dict[str, Any] = json.loads(raw)
    if not isinstance(config, dict):
        raise ValueError("the configuration must be a JSON object")
    if args.passphrase_env or args.passphrase_file:
        # Kept out of the configuration file, as restic's RESTIC_PASSWORD and
        # --password-file keep it out of scripts; the cipher still comes from the file.
        encryption = config.get("encryption")
        cipher = encryption.get("cipher") if isinstance(encryption, dict) else None
        secret: dict[str, Any] = {"cipher": cipher} if cipher else {}
        if args.passphrase_env:
            if args.passphrase_env not in os.environ:
                raise ValueError(f"environment variable {args.passphrase_env} is not set")
            secret["passphrase"] = os.environ[args.passphrase_env]
        else:
            secret["key_file"] = str(Path(args.passphrase_file).resolve())
        config["encryption"] = secret
    return config


def _image_format(path: Path, given: str | None) -> str:
    return given or ("qcow2" if path.suffix == ".qcow2" else "raw")


def _backup(provider: NasProvider, args: argparse.Namespace) -> int:
    images = [Path(image).resolve() for image in args.images]
    volumes = tuple(
        VolumeRef(
            id=f"{args.vm}-disk{i}",
            name=image.name,
            type="ROOT" if i == 0 else "DATADISK",
            device_id=i,
            size=image.stat().st_size,
            path=str(image),
            format=_image_format(image, args.format),
            pool_id="",
        )
        for i, image in enumerate(images)
    )
    vm = VMRef(args.vm, args.vm, "", None, volumes, {"state": "stopped"} if args.stopped else {})
    # A first backup creates the repository, as the driver's take_backup does; the key is
    # derived once, here, and the listing and the backup reuse the opened repository.
    provider.init_repository()
    parent = None if args.full else _newest(provider.list_points(), args.vm)
    point_id = args.point or f"{args.vm}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    request = BackupRequest(point_id, vm, args.offering, parent=parent)
    result = provider.take_backup(request, _quiet)
    print(f"{result.external_id} {result.backup_type} {result.protected_size} bytes, {result.size} stored")
    return 0


def _newest(points: list[Manifest], vm_id: str) -> RestorePointRef | None:
    """The parent an incremental chains to: the VM's newest restore point."""
    own = [m for m in points if m.vm.id == vm_id]
    if not own:
        return None
    newest = max(own, key=lambda m: m.created_at)
    return RestorePointRef(newest.restore_point_id, newest.id, newest.backup_type, newest.vm)


def _restore(provider: NasProvider, args: argparse.Namespace) -> int:
    targets = [Path(target).resolve() for target in args.targets]
    # Volumes match by id, else by device id: new ids leave the device order to decide.
    volumes = tuple(
        VolumeRef(f"target-{i}", t.name, "DATADISK", i, 0, str(t), args.format or "", "")
        for i, t in enumerate(targets)
    )
    target_vm = VMRef("restore-target", "restore-target", "", None, volumes)
    name = point_name(args.point)
    provider.restore_vm(RestorePointRef(args.point, name, "", target_vm), target_vm, _quiet)
    print(f"restored {name} to {', '.join(str(t) for t in targets)}")
    return 0


def _quiet(done: int, total: int) -> None:
    """A shell has no progress bar to feed."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        provider = NasProvider("nas-cli", _config(args), Path(tempfile.gettempdir()) / "nas-cli")
        if args.command == "init":
            provider.init_repository()
            print(f"repository {provider.cfg.repository} ready")
            return 0
        if args.command == "backup":
            return _backup(provider, args)
        if args.command == "restore":
            return _restore(provider, args)
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
