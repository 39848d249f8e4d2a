"""A back end that moves no data: for tests, demos and trying the framework.

It keeps each restore point in a JSON file of its own, simulates time and size, and
takes its capabilities and failures from its configuration:

    {"capabilities": ["incremental", "restore_volume", ...],   # default: all
     "offerings": [{"id": "gold-policy", "name": "Gold"}],      # default: gold/silver/bronze
     "fail": ["backup", "restore", "delete"],                   # operations that fail
     "fail_times": 1,                                           # fail only the first N calls
     "fail_volumes": [1],        # device ids whose backup fails; the others are kept (partial)
     "duration_s": 0.0, "incremental_ratio": 0.1}

Like a real back end it refuses a stale writer: each restore point remembers the newest
attempt that started writing it, and an older attempt's backup is never committed (it
writes under a name of its own until then).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator.domain.errors import ProviderError
from providers.base import (
    BackupRequest,
    BackupResult,
    Capability,
    FailedVolume,
    Progress,
    ProviderDriver,
    ProviderOffering,
    RestorePointRef,
    StoredPoint,
    VMRef,
    VolumeRef,
    parse_capabilities,
)
from providers.config import Fields

DEFAULT_OFFERINGS = (
    {"id": "dummy-gold", "name": "Gold policy", "description": "hourly, kept 30 days"},
    {"id": "dummy-silver", "name": "Silver policy", "description": "every 6 hours, kept 14 days"},
    {"id": "dummy-bronze", "name": "Bronze policy", "description": "daily, kept 7 days"},
)
OPERATIONS = ("assign", "remove", "backup", "delete", "restore", "restore_volume", "verify")
PROGRESS_STEPS = 4


class DummyProvider(ProviderDriver):
    driver = "dummy"

    def __init__(self, name: str, config: Mapping[str, Any], data_dir: Path) -> None:
        super().__init__(name, config, data_dir)
        fields = Fields(config, "config.")
        caps = fields.typed("capabilities", list, None)
        self._capabilities = frozenset(Capability) if caps is None else parse_capabilities(caps)
        offerings = fields.typed("offerings", list, list(DEFAULT_OFFERINGS))
        if not all(isinstance(o, dict) and isinstance(o.get("id"), str) for o in offerings):
            raise fields.error("offerings", "a list of objects with a string 'id'")
        self._offerings = [
            ProviderOffering(o["id"], str(o.get("name", o["id"])), str(o.get("description", "")))
            for o in offerings
        ]
        self._fail = set(fields.typed("fail", list, []))
        if bad := self._fail - set(OPERATIONS):
            raise fields.error("fail", f"unknown operations {sorted(bad)}; known: {OPERATIONS}")
        self._fail_times = fields.typed("fail_times", int, None)
        self._fail_volumes = fields.typed("fail_volumes", list, [])
        if not all(isinstance(d, int) for d in self._fail_volumes):
            raise fields.error("fail_volumes", "a list of volume device ids")
        self._duration = float(fields.typed("duration_s", (int, float), 0.0))
        self._incremental_ratio = float(fields.typed("incremental_ratio", (int, float), 0.1))
        self._state_file = data_dir / "state.json"
        self._points_dir = data_dir / "points"

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self._capabilities

    # -- state ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock over the back end's files (many workers share them)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "state.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write of the state file under the lock."""
        with self._locked():
            state: dict[str, Any] = {"calls": {}, "restores": []}
            if self._state_file.exists():
                state = json.loads(self._state_file.read_text())
            yield state
            tmp = self._state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
            os.replace(tmp, self._state_file)

    # One small file per restore point: a backup costs the same with a million points
    # stored as with none (a single growing state file made each backup slower).
    def _point_file(self, external_id: str) -> Path:
        return self._points_dir / f"{external_id}.json"

    def _save_point(self, external_id: str, data: dict[str, Any]) -> None:
        self._points_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._points_dir / f".{external_id}.tmp"
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, self._point_file(external_id))

    # Every attempt that started writing a restore point, one a line (the newest wins), and
    # what an attempt writes before it commits: files of their own, so a backup still costs
    # the same whatever is stored.
    def _writer_file(self, restore_point_id: str) -> Path:
        return self._points_dir / f".{restore_point_id}.writer"

    def writers(self, restore_point_id: str) -> list[int]:
        """The attempts that did a restore point's backup work, in order: more than one is
        work done twice (an attempt given up for dead that was not, or a re-delivery)."""
        try:
            return [int(line) for line in self._writer_file(restore_point_id).read_text().split()]
        except FileNotFoundError:
            return []

    def _partial_file(self, restore_point_id: str, attempt: int) -> Path:
        return self._points_dir / f".{restore_point_id}.{attempt}.partial"

    def _newest_writer(self, restore_point_id: str) -> int:
        return max(self.writers(restore_point_id), default=0)

    def _start_writing(self, request: BackupRequest) -> Path:
        """Record the attempt as the restore point's newest writer; its partial file."""
        rp, attempt = request.restore_point_id, request.attempt
        with self._locked():
            self._points_dir.mkdir(parents=True, exist_ok=True)
            with self._writer_file(rp).open("a") as writers:
                writers.write(f"{attempt}\n")
            partial = self._partial_file(rp, attempt)
            partial.write_text(json.dumps({"attempt": attempt}))
        return partial

    def _commit(self, request: BackupRequest, external_id: str, data: dict[str, Any]) -> None:
        """Store the point unless a newer attempt of its restore point started meanwhile."""
        with self._locked():
            newest = self._newest_writer(request.restore_point_id)
            if newest > request.attempt:
                raise ProviderError(
                    f"attempt {request.attempt} of restore point {request.restore_point_id} was "
                    f"superseded by attempt {newest}: not committed",
                    retryable=False,
                )
            self._save_point(external_id, data)

    def restore_points(self) -> dict[str, Any]:
        if not self._points_dir.is_dir():
            return {}
        return {f.stem: json.loads(f.read_text()) for f in sorted(self._points_dir.glob("*.json"))}

    def restores(self) -> list[dict[str, Any]]:
        with self._state() as state:
            return list(state["restores"])

    def _maybe_fail(self, operation: str) -> None:
        if operation not in self._fail:
            return
        with self._state() as state:
            calls = state["calls"].get(operation, 0) + 1
            state["calls"][operation] = calls
        if self._fail_times is None or calls <= int(self._fail_times):
            raise ProviderError(f"dummy provider {self.name!r} told to fail {operation} (call {calls})")

    def _simulate(self, total: int, progress: Progress) -> None:
        for step in range(1, PROGRESS_STEPS + 1):
            if self._duration:
                time.sleep(self._duration / PROGRESS_STEPS)
            progress(total * step // PROGRESS_STEPS, total)

    # -- operations ----------------------------------------------------------------------
    def list_offerings(self, zone_id: str | None) -> list[ProviderOffering]:
        return list(self._offerings)

    def assign_vm(self, vm: VMRef, offering_external_id: str) -> None:
        self._maybe_fail("assign")

    def remove_vm(self, vm: VMRef, offering_external_id: str, *, forced: bool) -> None:
        self._maybe_fail("remove")
        if self.supports(Capability.REMOVES_BACKUPS_ON_UNASSIGN):
            for external_id, data in self.restore_points().items():
                if data["vm_id"] == vm.id:
                    self._point_file(external_id).unlink(missing_ok=True)

    def take_backup(self, request: BackupRequest, progress: Progress) -> BackupResult:
        failed = tuple(
            FailedVolume.of(v, f"dummy provider {self.name!r} told to fail device {v.device_id}")
            for v in request.vm.volumes
            if v.device_id in self._fail_volumes
        )
        kept = [v for v in request.vm.volumes if v.device_id not in self._fail_volumes]
        if not kept:
            raise ProviderError(f"every volume failed: {failed[0].error}", retryable=False)
        protected = sum(v.size for v in kept)
        incremental = request.parent is not None and self.supports(Capability.INCREMENTAL)
        size = int(protected * self._incremental_ratio) if incremental else protected
        partial = self._start_writing(request)
        try:
            self._simulate(size, progress)
            self._maybe_fail("backup")
            external_id = f"dummy-{uuid.uuid4()}"
            data = {
                "restore_point_id": request.restore_point_id,
                "attempt": request.attempt,
                "vm_id": request.vm.id,
                "offering": request.offering_external_id,
                "type": "INCREMENTAL" if incremental else "FULL",
                "parent": request.parent.external_id if incremental and request.parent else None,
                "size": size,
                "volumes": [v.id for v in kept],
            }
            self._commit(request, external_id, data)
        finally:
            partial.unlink(missing_ok=True)
        return BackupResult(external_id, "INCREMENTAL" if incremental else "FULL", size, protected, failed)

    def abandon_backup(self, restore_point_id: str, attempt: int) -> None:
        """Every backup of the restore point is a new copy here (none is taken over by a
        later attempt), so what this attempt committed is its own to remove."""
        with self._locked():
            self._partial_file(restore_point_id, attempt).unlink(missing_ok=True)
            for external_id, data in self.restore_points().items():
                if (data["restore_point_id"], data.get("attempt")) == (restore_point_id, attempt):
                    self._point_file(external_id).unlink(missing_ok=True)

    def list_restore_points(self) -> list[StoredPoint]:
        self.require(Capability.LIST_RESTORE_POINTS, "list its restore points")
        return [
            StoredPoint(external_id, data["restore_point_id"], data["vm_id"])
            for external_id, data in self.restore_points().items()
        ]

    def delete_backup(self, point: RestorePointRef, *, forced: bool) -> None:
        self._maybe_fail("delete")
        self._point_file(point.external_id).unlink(missing_ok=True)

    def _known(self, point: RestorePointRef) -> dict[str, Any]:
        try:
            return json.loads(self._point_file(point.external_id).read_text())
        except FileNotFoundError:
            raise ProviderError(
                f"restore point {point.external_id} is not at the back end", retryable=False
            ) from None

    def restore_vm(self, point: RestorePointRef, target: VMRef, progress: Progress) -> None:
        data = self._known(point)
        self._simulate(sum(v.size for v in target.volumes), progress)
        self._maybe_fail("restore")
        with self._state() as state:
            state["restores"].append(
                {"point": point.external_id, "vm": target.id, "volumes": data["volumes"]}
            )

    def restore_volume(
        self, point: RestorePointRef, volume: VolumeRef, target: VMRef, progress: Progress
    ) -> VolumeRef:
        self.require(Capability.RESTORE_VOLUME, "restore a single volume")
        if volume.id not in self._known(point)["volumes"]:
            raise ProviderError(
                f"volume {volume.id} is not in restore point {point.external_id}", retryable=False
            )
        self._simulate(volume.size, progress)
        self._maybe_fail("restore_volume")
        new_id = str(uuid.uuid4())
        original = PurePosixPath(volume.path)
        path = str(original.with_name(f"{original.stem}-restored-{new_id[:8]}{original.suffix}"))
        restored = VolumeRef(
            id=new_id,
            name=f"{volume.name}-restored",
            type="DATADISK",
            device_id=max((v.device_id for v in target.volumes), default=0) + 1,
            size=volume.size,
            path=path,
            format=volume.format,
            pool_id=volume.pool_id,
        )
        with self._state() as state:
            state["restores"].append({"point": point.external_id, "vm": target.id, "volumes": [volume.id]})
        return restored

    def verify(self, point: RestorePointRef) -> None:
        self.require(Capability.VERIFY, "verify restore points")
        self._known(point)
        self._maybe_fail("verify")
