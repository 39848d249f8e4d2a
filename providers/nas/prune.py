"""Repository-level retention (prune) and garbage collection of unreferenced chunks.

Prune applies keep-last / hourly / daily / weekly / monthly / yearly rules to the restore
points of each VM, with the product's own semantics (``orchestrator.retention``: each rule
counts only what earlier rules did not keep, as Proxmox Backup Server does; no rule at all
keeps everything), and deletes the manifests of the rest. As restore points share chunks
but never depend on one another, deleting any of them leaves every other one whole. A dry
run only reports.

Garbage collection then frees chunks that no manifest names. It holds the exclusive
repository lock (so it never runs while a backup holds its shared lock), reads *every*
manifest first (and gives up if one is unreadable), and leaves alone any chunk younger
than the grace period: the chunks a backup that crashed, or lost its lock, has just
written, which its retry will reuse. Temporary files (chunks staged, manifests half
written) older than the exclusive lock have no live writer once it is held, so all of them
go at once: a crashed backup's staged chunks do not wait out the grace period. Ages are
measured on the file server's clock.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.domain.errors import ProviderError
from orchestrator.domain.retention import PointInfo, RetentionPolicy, select
from providers.nas.iopool import IoPool
from providers.nas.locks import EXCLUSIVE, RepositoryLock
from providers.nas.manifest import Manifest
from providers.nas.store import CHUNK_DIRS, TMP_PREFIX, Repository, StoredChunk

HEX = set("0123456789abcdef")


@dataclass(frozen=True)
class PointSummary:
    id: str
    restore_point_id: str
    vm_id: str
    vm_name: str
    created_at: datetime

    @classmethod
    def of(cls, manifest: Manifest) -> PointSummary:
        vm = manifest.vm
        return cls(manifest.id, manifest.restore_point_id, vm.id, vm.name, manifest.created_at)


@dataclass
class PrunePlan:
    keep: list[PointSummary] = field(default_factory=list)
    remove: list[PointSummary] = field(default_factory=list)
    dry_run: bool = True


def plan_prune(points: list[PointSummary], policy: RetentionPolicy, zone: str = "UTC") -> PrunePlan:
    """Which restore points the rules keep, per VM (a rule never spans VMs)."""
    by_vm: dict[str, list[PointSummary]] = defaultdict(list)
    for point in points:
        by_vm[point.vm_id].append(point)
    plan = PrunePlan()
    for group in by_vm.values():
        newest_first = sorted(group, key=lambda p: (p.created_at, p.id), reverse=True)
        kept = select([PointInfo(p.id, None, p.created_at) for p in newest_first], policy, zone)
        for point in newest_first:
            (plan.keep if point.id in kept else plan.remove).append(point)
    return plan


@dataclass
class GcReport:
    referenced_chunks: int = 0
    stored_chunks: int = 0
    removed_chunks: int = 0
    removed_bytes: int = 0
    kept_in_grace: int = 0
    removed_tmp: int = 0
    dry_run: bool = False


def _sweep_dir(
    repo: Repository, prefix: str, referenced: set[str], cutoff: float, locked_at: float, dry_run: bool
) -> tuple[int, int, int, int, int]:
    """(stored, removed, removed bytes, kept in grace, tmp removed) for one chunk directory."""
    stored = removed = removed_bytes = in_grace = tmp_removed = 0
    for entry in list(repo.iter_chunk_dir(prefix)):
        if not isinstance(entry, StoredChunk):
            if entry.stat().st_mtime <= locked_at:
                if not dry_run:
                    entry.unlink(missing_ok=True)
                tmp_removed += 1
            continue
        if len(entry.id) != 64 or not set(entry.id) <= HEX:
            continue  # not ours: leave it
        stored += 1
        if entry.id in referenced:
            continue
        if entry.mtime >= cutoff:
            in_grace += 1
            continue
        if not dry_run:
            entry.path.unlink(missing_ok=True)
        removed += 1
        removed_bytes += entry.size
    return stored, removed, removed_bytes, in_grace, tmp_removed


def _sweep_tmp(repo: Repository, locked_at: float, dry_run: bool) -> int:
    """Remove manifests half-written by crashed workers (never renamed into place)."""
    removed = 0
    with os.scandir(repo.points_dir) as entries:
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX) and entry.stat().st_mtime <= locked_at:
                if not dry_run:
                    os.unlink(entry.path)
                removed += 1
    return removed


def collect_garbage(
    repo: Repository,
    pool: IoPool,
    load_all: Callable[[], dict[str, Manifest | str]],
    *,
    grace_s: float,
    stale_after: float,
    lock_wait: float,
    dry_run: bool,
) -> GcReport:
    """Delete chunks no manifest names that are older than ``grace_s``.

    ``load_all()`` returns every manifest (point -> Manifest, or the reason it is unreadable).
    """
    lock = RepositoryLock(
        repo.locks_dir, EXCLUSIVE, "garbage collection", stale_after=stale_after, wait=lock_wait
    )
    lock.acquire_within(pool, pool.timeout + lock_wait)
    try:
        locked_at = pool.call("reading the server clock", lock.server_now)
        cutoff = locked_at - grace_s
        manifests = load_all()
        unreadable = {p: m for p, m in manifests.items() if isinstance(m, str)}
        if unreadable:
            point, reason = next(iter(unreadable.items()))
            raise ProviderError(
                f"garbage collection refused: {len(unreadable)} restore point(s) unreadable "
                f"(e.g. {point}: {reason}); deleting chunks now could destroy their data",
                retryable=False,
            )
        referenced: set[str] = set()
        for manifest in manifests.values():
            assert isinstance(manifest, Manifest)
            referenced |= manifest.chunk_ids()
        report = GcReport(referenced_chunks=len(referenced), dry_run=dry_run)
        futures = [
            pool.submit(_sweep_dir, repo, p, referenced, cutoff, locked_at, dry_run) for p in CHUNK_DIRS
        ]
        for prefix, future in zip(CHUNK_DIRS, futures, strict=True):
            stored, removed, removed_bytes, in_grace, tmp = pool.wait(future, f"sweeping chunks/{prefix}")
            report.stored_chunks += stored
            report.removed_chunks += removed
            report.removed_bytes += removed_bytes
            report.kept_in_grace += in_grace
            report.removed_tmp += tmp
        report.removed_tmp += pool.call("sweeping points", _sweep_tmp, repo, locked_at, dry_run)
        return report
    finally:
        with contextlib.suppress(ProviderError):  # if it cannot be removed, it goes stale
            pool.call_detached("unlocking the repository", lock.release)
