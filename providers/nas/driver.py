"""The ``nas`` provider: the port's operations on top of the repository modules."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.domain.errors import ProviderError
from orchestrator.domain.retention import RetentionPolicy
from providers.base import (
    BackupRequest,
    BackupResult,
    Capability,
    Progress,
    ProviderDriver,
    ProviderOffering,
    RestorePointRef,
    StoredPoint,
    VMRef,
    VolumeRef,
)
from providers.nas import backup, prune, qemu, restore, verify
from providers.nas.chunker import ImageReader, NeedsConversion, convert_image, open_image
from providers.nas.config import NasConfig, parse_config
from providers.nas.crypto import Damaged
from providers.nas.iopool import IoPool, bounded
from providers.nas.locks import SHARED, RepositoryLock
from providers.nas.manifest import Manifest, VolumeManifest, point_name
from providers.nas.prune import GcReport, PrunePlan
from providers.nas.snapshot import SnapshotSource, SourceImage, source_for
from providers.nas.store import Repository, Staging
from providers.nas.verify import CheckReport

log = logging.getLogger(__name__)

# Consumes one volume's bytes, in order, to write them where the restore goes.
Sink = Callable[[VolumeManifest, Iterator[bytes]], None]

CAPABILITIES = frozenset(
    {
        Capability.INCREMENTAL,
        Capability.DELETE_SINGLE_RESTORE_POINT,
        Capability.RESTORE_VOLUME,
        Capability.RESTORE_TO_NEW_VM,
        Capability.VERIFY,
        Capability.MULTI_VOLUME_CONSISTENT,
        Capability.LIST_RESTORE_POINTS,
    }
)


class NasProvider(ProviderDriver):
    """KVM disk images (raw, qcow2) into a deduplicating repository on a shared directory."""

    driver = "nas"

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any],
        data_dir: Path,
        *,
        snapshot_source: SnapshotSource | None = None,
    ) -> None:
        super().__init__(name, config, data_dir)
        self.cfg: NasConfig = parse_config(config)
        # A hypervisor driver may hand in its own way of freezing a VM's disks.
        self.snapshot_source = snapshot_source or source_for(self.cfg)
        # When restore points are taken (a test may turn it).
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._repo: Repository | None = None
        self._repo_lock = threading.Lock()

    @property
    def capabilities(self) -> frozenset[Capability]:
        return CAPABILITIES

    def data_folders(self) -> Mapping[str, str]:
        return {"repository": str(self.cfg.repository)}

    def list_offerings(self, zone_id: str | None) -> list[ProviderOffering]:
        return list(self.cfg.offerings)

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def _window(self) -> int:
        return self.cfg.threads * 3

    @contextmanager
    def _session(self, *, create: bool = False) -> Iterator[tuple[IoPool, Repository]]:
        """An I/O pool with the configured deadline, and the repository opened through it."""
        pool = IoPool(self.cfg.threads, self.cfg.io_timeout_s, f"NAS repository {self.cfg.repository}")
        try:
            with self._repo_lock:
                if self._repo is None:
                    # Opening derives the key (scrypt): done once per driver instance.
                    self._repo = pool.call(
                        "opening the repository", lambda: Repository.open(self.cfg, create=create)
                    )
                repo = self._repo
            yield pool, repo
        finally:
            pool.close()

    def _manifest(self, pool: IoPool, repo: Repository, name: str) -> Manifest | None:
        raw = pool.call(f"reading the manifest of {name}", repo.read_manifest, name)
        if raw is None:
            return None
        try:
            return Manifest.from_dict(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise Damaged(f"manifest of restore point {name} is not valid: {exc!r}") from None

    def _require_manifest(self, pool: IoPool, repo: Repository, point: RestorePointRef) -> Manifest:
        name = point.external_id or point_name(point.id)
        manifest = self._manifest(pool, repo, name)
        if manifest is None:
            raise ProviderError(
                f"restore point {name} is not in repository {self.cfg.repository}", retryable=False
            )
        return manifest

    def _load_all(self, pool: IoPool, repo: Repository) -> dict[str, Manifest | str]:
        found: dict[str, Manifest | str] = {}
        for name in pool.call("listing restore points", repo.list_points):
            try:
                manifest = self._manifest(pool, repo, name)
            except Damaged as exc:
                found[name] = exc.message
                continue
            if manifest is not None:
                found[name] = manifest
        return found

    # -- backups ---------------------------------------------------------------------------------
    def take_backup(self, request: BackupRequest, progress: Progress) -> BackupResult:
        vm = request.vm
        if not vm.volumes:
            raise ProviderError(f"VM {vm.name} has no volumes to back up", retryable=False)
        name = point_name(request.restore_point_id)
        with self._session(create=True) as (pool, repo):
            # Before looking for a finished point: an older attempt then commits nothing,
            # and the point this one finds (or writes) stays.
            pool.call(f"recording the writer of {name}", repo.start_writing, name, request.attempt)
            done = self._manifest(pool, repo, name)
            if done is not None:
                # A re-delivered job: the restore point is already durable.
                progress(done.protected_size, done.protected_size)
                return done.result()
            lock = RepositoryLock(
                repo.locks_dir,
                SHARED,
                f"backup of {vm.name} as {name}",
                stale_after=self.cfg.lock_stale_s,
                wait=self.cfg.lock_wait_s,
            )
            lock.acquire_within(pool, self.cfg.io_timeout_s + self.cfg.lock_wait_s)
            try:
                staging = Staging(lock.token, frozenset(lock.dead_tokens))
                manifest = self._store_point(pool, repo, staging, request, name, progress)
                pool.call("checking the repository lock", lock.check)
                pool.call(f"committing restore point {name}", _commit, repo, name, manifest)
            finally:
                with contextlib.suppress(ProviderError):
                    pool.call_detached("unlocking the repository", lock.release)
        log.info("restore point %s of %s: %s", name, vm.name, manifest.stats)
        return manifest.result()

    def _store_point(
        self,
        pool: IoPool,
        repo: Repository,
        staging: Staging,
        request: BackupRequest,
        name: str,
        progress: Progress,
    ) -> Manifest:
        """Freeze the VM's volumes, store their chunks; the manifest to commit."""
        parent = self._parent(pool, repo, request)
        # Freezing may run three hooks (freeze, snapshot, thaw) and touches primary storage.
        limit = 3 * self.cfg.hook_timeout_s + self.cfg.io_timeout_s
        frozen = self.snapshot_source.capture(request.vm, name, quiesce=request.quiesce)
        with bounded(pool, frozen, limit, "freezing the VM's disks") as capture:
            readers, unreadable = self._open_readers(pool, request.vm, capture.images, parent)
            try:
                return backup.back_up(
                    repo,
                    staging,
                    pool,
                    request,
                    capture,
                    readers,
                    unreadable,
                    parent,
                    progress,
                    name=name,
                    window=self._window,
                    created_at=self.clock(),
                )
            finally:
                _close_all(pool, readers.values(), self.cfg.io_timeout_s)

    def _parent(self, pool: IoPool, repo: Repository, request: BackupRequest) -> Manifest | None:
        if request.parent is None:
            return None
        try:
            parent = self._manifest(pool, repo, request.parent.external_id or point_name(request.parent.id))
        except Damaged as exc:
            log.warning("parent restore point unreadable, taking a full backup: %s", exc.message)
            return None
        if parent is not None and parent.vm.id != request.vm.id:
            return None
        return parent

    def _open_readers(
        self, pool: IoPool, vm: VMRef, images: Mapping[str, SourceImage], parent: Manifest | None
    ) -> tuple[dict[str, ImageReader], dict[str, str]]:
        """A reader of every volume's image, and why the images that cannot be opened
        (for good: a retryable error, such as a timeout, fails the backup) cannot."""
        readers: dict[str, ImageReader] = {}
        unreadable: dict[str, str] = {}
        try:
            for volume in vm.volumes:
                try:
                    state = _source_state(parent, volume)
                    readers[volume.id] = self._open_reader(pool, images[volume.id], state)
                except ProviderError as exc:
                    if exc.retryable:
                        raise
                    unreadable[volume.id] = exc.message
        except BaseException:
            _close_all(pool, readers.values(), self.cfg.io_timeout_s)
            raise
        if not readers:
            raise ProviderError(
                f"no volume of {vm.name} could be read: " + "; ".join(unreadable.values()), retryable=False
            )
        return readers, unreadable

    def _open_reader(self, pool: IoPool, image: SourceImage, parent_state: Mapping[str, Any]) -> ImageReader:
        staging = self.cfg.staging_dir or self.data_dir / "staging"
        io = self.cfg.io_timeout_s
        if image.open is not None:
            return pool.call_within(3 * io, f"opening {image.path}", image.open, parent_state)
        # qemu-img info and map, each bounded by io.
        opened = pool.call_within(3 * io, f"opening {image.path}", open_image, image.path, image.format, io)
        if isinstance(opened, NeedsConversion):
            limit = qemu.conversion_timeout(io, opened.size)
            opened = pool.call_within(
                limit + io,
                f"converting {image.path}",
                convert_image,
                image.path,
                image.format,
                staging,
                limit,
            )
        return opened

    def abandon_backup(self, restore_point_id: str, attempt: int) -> None:
        """The attempt's chunks are left to garbage collection like any unreferenced chunk;
        its manifest goes unless a newer attempt wrote over it or took it over."""
        name = point_name(restore_point_id)
        with self._session() as (pool, repo):

            def newest() -> int:
                return pool.call(f"reading the writer of {name}", repo.newest_writer, name)

            if newest() > attempt:
                return
            manifest = self._manifest(pool, repo, name)
            if manifest is None or manifest.attempt != attempt:
                return
            pool.call(f"deleting restore point {name}", repo.delete_manifest, name)
            if newest() > attempt:
                # A newer attempt started meanwhile and may have found the point done and
                # taken it over: it must stay.
                pool.call(f"restoring restore point {name}", repo.write_manifest, name, manifest.to_dict())

    def list_restore_points(self) -> list[StoredPoint]:
        with self._session() as (pool, repo):
            found = self._load_all(pool, repo)
        listed = []
        for name, manifest in found.items():
            if isinstance(manifest, str):
                log.warning("restore point %s is unreadable, not listed: %s", name, manifest)
                continue
            listed.append(StoredPoint(name, manifest.restore_point_id, manifest.vm.id))
        return listed

    def delete_backup(self, point: RestorePointRef, *, forced: bool) -> None:
        """Deletes only the manifest: chunks are shared, garbage collection frees the unused."""
        name = point.external_id or point_name(point.id)
        with self._session() as (pool, repo):
            pool.call(f"deleting restore point {name}", repo.delete_manifest, name)

    # -- restores --------------------------------------------------------------------------------
    def _restore_pairs(
        self, pool: IoPool, repo: Repository, manifest: Manifest, pairs: list[tuple[Any, Path, str]], progress
    ) -> None:
        total = sum(v.size for v, _, _ in pairs)
        done = 0
        progress(0, total)
        guard = threading.Lock()

        def advance(n: int) -> None:
            nonlocal done
            with guard:
                done += n
            progress(min(done, total), total)

        verified = 0
        for volume, dest, fmt in pairs:
            written = restore.write_volume(
                repo,
                pool,
                volume,
                dest,
                fmt,
                advance,
                window=self._window,
                base_timeout=self.cfg.io_timeout_s,
            )
            if written != volume.size:
                raise ProviderError(f"restored {written} of {volume.size} bytes of {volume.label}")
            verified += written
        if not pairs or verified != total or total == 0:
            raise ProviderError(
                f"restore of {manifest.id} wrote nothing; not reporting success", retryable=False
            )
        progress(total, total)

    def restore_vm(self, point: RestorePointRef, target: VMRef, progress: Progress) -> None:
        with self._session() as (pool, repo):
            manifest = self._require_manifest(pool, repo, point)
            require_whole(manifest)
            pairs = [
                (volume, Path(found.path), _format_of(found, volume.format))
                for volume, found in restore.match_volumes(manifest, target)
            ]
            self._restore_pairs(pool, repo, manifest, pairs, progress)

    def restore_volume(
        self, point: RestorePointRef, volume: VolumeRef, target: VMRef, progress: Progress
    ) -> VolumeRef:
        with self._session() as (pool, repo):
            manifest = self._require_manifest(pool, repo, point)
            stored = stored_volume(manifest, volume)
            new_id = str(uuid.uuid4())
            fmt = _format_of(volume, stored.format)
            dest = restore.restored_path(volume, new_id, self.cfg.restore_dir)
            self._restore_pairs(pool, repo, manifest, [(stored, dest, fmt)], progress)
        return VolumeRef(
            id=new_id,
            name=f"{stored.name}-restored",
            type="DATADISK",
            device_id=max((v.device_id for v in target.volumes), default=0) + 1,
            size=stored.size,
            path=str(dest),
            format=fmt,
            pool_id=volume.pool_id,
        )

    def stream_restore(
        self,
        point: RestorePointRef,
        plan: Callable[[Manifest], Sequence[tuple[VolumeManifest, Sink]]],
        progress: Progress,
    ) -> Manifest:
        """Restore to where only the snapshot source can write (a hypervisor's HTTP interface):
        ``plan`` gets the restore point's manifest and names the volumes to restore, each
        with the sink that consumes its bytes in order. Returns the manifest."""
        with self._session() as (pool, repo):
            manifest = self._require_manifest(pool, repo, point)
            pairs = plan(manifest)
            total = sum(v.size for v, _ in pairs)
            done = 0
            progress(0, total)

            def advance(n: int) -> None:
                nonlocal done
                done += n
                progress(min(done, total), total)

            for volume, sink in pairs:
                sink(volume, restore.read_volume(repo, pool, volume, advance, window=self._window))
            if not pairs or done != total or total == 0:
                raise ProviderError(
                    f"restore of {manifest.id} wrote nothing; not reporting success", retryable=False
                )
            return manifest

    # -- checking and housekeeping ---------------------------------------------------------------
    def init_repository(self) -> None:
        """Create the repository now (a backup creates it on first use otherwise) and check the key."""
        with self._session(create=True):
            pass

    def verify(self, point: RestorePointRef) -> None:
        with self._session() as (pool, repo):
            manifest = self._require_manifest(pool, repo, point)
            verify.verify_point(repo, pool, manifest, window=self._window)

    def list_points(self) -> list[Manifest]:
        """Every restore point in the repository (unreadable ones are skipped with a warning)."""
        with self._session() as (pool, repo):
            found = self._load_all(pool, repo)
        for name, value in found.items():
            if isinstance(value, str):
                log.warning("restore point %s unreadable: %s", name, value)
        return [m for m in found.values() if isinstance(m, Manifest)]

    def check(self, *, read_data: bool = False) -> CheckReport:
        """The whole repository: every manifest readable, every chunk present (and intact)."""
        with self._session() as (pool, repo):
            manifests = self._load_all(pool, repo)
            return verify.check_repository(repo, pool, manifests, read_data=read_data, window=self._window)

    def prune(
        self, policy: RetentionPolicy | None = None, *, dry_run: bool = True, zone: str = "UTC"
    ) -> PrunePlan:
        """Delete the restore points the retention rules (default: config.retention) drop."""
        policy = policy or self.cfg.retention
        with self._session() as (pool, repo):
            manifests = self._load_all(pool, repo)
            points = [prune.PointSummary.of(m) for m in manifests.values() if isinstance(m, Manifest)]
            plan = prune.plan_prune(points, policy, zone)
            plan.dry_run = dry_run
            if not dry_run:
                for point in plan.remove:
                    pool.call(f"deleting restore point {point.id}", repo.delete_manifest, point.id)
        return plan

    def gc(self, *, dry_run: bool = False, grace_s: float | None = None) -> GcReport:
        """Free chunks no restore point names and older than the grace period."""
        with self._session() as (pool, repo):
            return prune.collect_garbage(
                repo,
                pool,
                lambda: self._load_all(pool, repo),
                grace_s=self.cfg.gc_grace_s if grace_s is None else grace_s,
                stale_after=self.cfg.lock_stale_s,
                lock_wait=self.cfg.lock_wait_s,
                dry_run=dry_run,
            )


def _commit(repo: Repository, name: str, manifest: Manifest) -> None:
    """Write the manifest unless a newer attempt of the restore point started meanwhile."""
    newest = repo.newest_writer(name)
    if newest > manifest.attempt:
        raise ProviderError(
            f"attempt {manifest.attempt} of restore point {name} was superseded by attempt {newest}: "
            "not committed",
            retryable=False,
        )
    repo.write_manifest(name, manifest.to_dict())


def require_whole(manifest: Manifest) -> None:
    """A whole-VM restore needs every volume: a partial point's is refused."""
    if manifest.failed_volumes:
        lacks = ", ".join(v.label for v in manifest.failed_volumes)
        raise ProviderError(
            f"restore point {manifest.id} is partial (it lacks {lacks}): a whole-VM restore "
            "needs every volume; restore the volumes it kept one by one",
            retryable=False,
        )


def stored_volume(manifest: Manifest, volume: VolumeRef) -> VolumeManifest:
    """The restore point's copy of ``volume`` (by id, else device id), or why it has none."""
    stored = next((v for v in manifest.volumes if v.id == volume.id), None) or next(
        (v for v in manifest.volumes if v.device_id == volume.device_id), None
    )
    failed = manifest.failed(volume.id)
    if stored is None and failed is not None:
        raise ProviderError(
            f"volume {failed.label} failed in restore point {manifest.id} and was not kept: {failed.error}",
            retryable=False,
        )
    if stored is None:
        raise ProviderError(f"volume {volume.id} is not in restore point {manifest.id}", retryable=False)
    return stored


def _source_state(parent: Manifest | None, volume: VolumeRef) -> Mapping[str, Any]:
    """What the parent's reader of the same volume recorded (empty without a parent)."""
    found = next((v for v in parent.volumes if v.id == volume.id), None) if parent else None
    return found.source if found else {}


def _close_all(pool: IoPool, readers: Iterable[ImageReader], timeout: float) -> None:
    """Close source images (on threads of their own: the pool's may be stuck)."""
    for reader in readers:
        with contextlib.suppress(Exception):
            pool.call_detached("closing a source image", reader.close, timeout=timeout)


def _format_of(volume: VolumeRef, fallback: str) -> str:
    return volume.format or fallback
