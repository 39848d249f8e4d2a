"""The provider port: what a backup back end promises, and the plain data it works on.

Imports only the standard library and the core's errors, so the core may depend on it
while drivers (which import heavy client libraries) stay out of the core.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from orchestrator.domain.errors import InvalidArgument, ProviderError, Unsupported


class Capability(StrEnum):
    """What a provider can do beyond full backups and whole-VM restores."""

    INCREMENTAL = "incremental"
    # Delete one restore point even when others in its chain depend on it.
    DELETE_SINGLE_RESTORE_POINT = "delete_single_restore_point"
    # A forced delete removes a whole chain (the full and every incremental on it).
    DELETE_CHAIN = "delete_chain"
    # Removing a VM from its offering deletes the VM's restore points at the back end.
    REMOVES_BACKUPS_ON_UNASSIGN = "removes_backups_on_unassign"
    RESTORE_TO_NEW_VM = "restore_to_new_vm"
    # An in-place restore of a running VM stops it before writing its disks (and starts it
    # again after), so a restore can be asked to stop the VM first.
    STOP_VM = "stop_vm"
    RESTORE_VOLUME = "restore_volume"
    FILE_RESTORE = "file_restore"
    QUIESCE = "quiesce"
    MULTI_VOLUME_CONSISTENT = "multi_volume_consistent"
    VERIFY = "verify"
    # List the restore points the back end holds, so copies the framework does not track
    # (a stale writer's, a lost record) can be counted.
    LIST_RESTORE_POINTS = "list_restore_points"


@dataclass(frozen=True)
class ProviderOffering:
    """A job, template or policy that exists at the back end and can back an SLA offering."""

    external_id: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class VolumeRef:
    id: str
    name: str
    type: str
    device_id: int
    size: int
    path: str
    format: str
    pool_id: str

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> VolumeRef:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__})


class _Placed(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def device_id(self) -> int: ...


S = TypeVar("S", bound=_Placed)


@dataclass(frozen=True)
class HostRef:
    """The VM's host as the inventory records it: how a driver that works through the host
    reaches it (the settings its host driver checked; key paths, never a secret)."""

    id: str
    hypervisor: str
    connection: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VMRef:
    """A VM as the back end needs to see it; also the metadata each restore point keeps."""

    id: str
    name: str
    zone_id: str
    host_id: str | None
    volumes: tuple[VolumeRef, ...]
    details: Mapping[str, Any] = field(default_factory=dict)
    # Filled from the inventory for each operation, never kept with a restore point: how a
    # host is reached changes, and restore points are shown to users.
    host: HostRef | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["details"] = dict(self.details)
        del raw["host"]
        return raw

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> VMRef:
        return cls(
            id=raw["id"],
            name=raw["name"],
            zone_id=raw["zone_id"],
            host_id=raw.get("host_id"),
            volumes=tuple(VolumeRef.from_dict(v) for v in raw.get("volumes", ())),
            details=dict(raw.get("details") or {}),
        )

    def volume(self, volume_id: str) -> VolumeRef | None:
        return next((v for v in self.volumes if v.id == volume_id), None)

    def pair(self, sources: Iterable[S], missing: Callable[[S], str]) -> list[tuple[S, VolumeRef]]:
        """Each source volume (of a restore point) with this VM's volume of the same id, else
        of the same device id — never by list position; every source must find its own, or
        ProviderError with ``missing(source)``."""
        pairs: list[tuple[S, VolumeRef]] = []
        used: set[str] = set()
        for source in sources:
            found = self.volume(source.id) or next(
                (t for t in self.volumes if t.device_id == source.device_id and t.id not in used), None
            )
            if found is None or found.id in used:
                raise ProviderError(missing(source), retryable=False)
            used.add(found.id)
            pairs.append((source, found))
        return pairs


@dataclass(frozen=True)
class RestorePointRef:
    """A restore point as recorded by the framework, handed back to the provider that made it."""

    id: str
    external_id: str
    backup_type: str
    vm: VMRef
    parent_external_id: str | None = None


@dataclass(frozen=True)
class BackupRequest:
    restore_point_id: str
    vm: VMRef
    offering_external_id: str
    # The newest good restore point of the same offering, for providers that chain increments.
    parent: RestorePointRef | None = None
    quiesce: bool = False
    # The job's attempt that asks, a fencing token: a later attempt of the same restore
    # point has a higher one. A back end that can keeps the highest it saw and refuses to
    # commit for a lower one (a writer paused or cut off while another took over).
    attempt: int = 1


@dataclass(frozen=True)
class StoredPoint:
    """A restore point as the back end lists it, with the framework's id it was made for."""

    external_id: str
    restore_point_id: str
    vm_id: str


@dataclass(frozen=True)
class FailedVolume:
    """A volume a backup could not capture, and why."""

    id: str
    name: str
    device_id: int
    error: str

    @classmethod
    def of(cls, volume: VolumeRef, error: str) -> FailedVolume:
        return cls(volume.id, volume.name, volume.device_id, error)

    @property
    def label(self) -> str:
        return f"{self.name or self.id} (device {self.device_id})"


@dataclass(frozen=True)
class BackupResult:
    external_id: str
    backup_type: str
    size: int
    protected_size: int
    # The volumes a partial restore point lacks (see ``take_backup``); empty when it is whole.
    failed_volumes: tuple[FailedVolume, ...] = ()


# done, total (bytes); providers call it as they go, the framework stores it on the job.
Progress = Callable[[int, int], None]


class ProviderDriver(ABC):
    """One back end. The constructor validates configuration and fails early with a clear error.

    Operations raise ``ProviderError`` for failures of the back end (retryable or not) and
    never leave a half-made restore point looking complete.
    """

    driver: ClassVar[str]

    def __init__(self, name: str, config: Mapping[str, Any], data_dir: Path) -> None:
        self.name = name
        self.config = dict(config)
        self.data_dir = data_dir
        # Opens settings that are sealed at rest outside the driver's own configuration: a
        # host's connection in a ``HostRef`` (a vCenter password). Set by whoever builds the
        # driver with the key; left as is, sealed settings stay sealed.
        self.open_sealed: Callable[[Mapping[str, Any]], dict[str, Any]] = dict

    @property
    @abstractmethod
    def capabilities(self) -> frozenset[Capability]:
        """What this instance can do; the framework hides and refuses everything else."""

    def data_folders(self) -> Mapping[str, str]:
        """The folders on the workers where this back end keeps its data, by the setting that
        names each; the framework refuses one inside a storage pool."""
        return {}

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def require(self, capability: Capability, action: str) -> None:
        if capability not in self.capabilities:
            raise Unsupported(f"provider {self.name!r} ({self.driver}) cannot {action}")

    @abstractmethod
    def list_offerings(self, zone_id: str | None) -> list[ProviderOffering]:
        """The back end's own jobs/policies usable as offerings in the zone."""

    def assign_vm(self, vm: VMRef, offering_external_id: str) -> None:  # noqa: B027
        """Start protecting the VM under the given back-end policy (no-op where nothing is needed)."""

    def remove_vm(self, vm: VMRef, offering_external_id: str, *, forced: bool) -> None:  # noqa: B027
        """Stop protecting the VM; removes its restore points when REMOVES_BACKUPS_ON_UNASSIGN."""

    @abstractmethod
    def take_backup(self, request: BackupRequest, progress: Progress) -> BackupResult:
        """Capture every volume of the VM as one restore point and return it once durable.

        When a volume fails, either raise (all or nothing: the default) or, where the back end
        can keep the volumes that succeeded as a restore point of their own, return that point
        with the others in ``failed_volumes``; the framework records it ``PartiallyFailed``
        (restorable volume by volume only) and fails the job. Raise when nothing succeeded,
        and when a retry might capture every volume (a retryable error)."""

    @abstractmethod
    def delete_backup(self, point: RestorePointRef, *, forced: bool) -> None:
        """Remove the restore point's data at the back end; idempotent for an unknown point."""

    def abandon_backup(self, restore_point_id: str, attempt: int) -> None:  # noqa: B027
        """Remove what the given attempt of a backup wrote, partial or committed, and nothing
        a later attempt wrote or took over: the attempt lost its job to another worker.
        A no-op where the back end cannot tell attempts apart."""

    def release_leftovers(self, hosts: Iterable[HostRef], in_flight: frozenset[str]) -> list[str]:
        """Remove what interrupted backups left on the given hosts (a hypervisor snapshot a
        killed worker never removed), except what the backups of the restore points in
        ``in_flight`` (ids) still need; returns what was removed. Back ends that leave
        nothing outside their own store have nothing to do."""
        return []

    def list_restore_points(self) -> list[StoredPoint]:
        """Every restore point the back end holds (LIST_RESTORE_POINTS)."""
        raise Unsupported(f"provider {self.name!r} ({self.driver}) cannot list its restore points")

    @abstractmethod
    def restore_vm(self, point: RestorePointRef, target: VMRef, progress: Progress) -> VMRef | None:
        """Write every volume of the restore point back to the target VM's volume paths (a
        partial point's never: the framework refuses, a driver raises ProviderError); return
        the VM as the back end left it when that differs from ``target`` (a new hypervisor
        identity or new volume paths, the same volume ids), so the inventory follows it."""

    def restore_volume(
        self, point: RestorePointRef, volume: VolumeRef, target: VMRef, progress: Progress
    ) -> VolumeRef:
        """Restore one volume as a new volume for the target VM and return where it was written
        (also one a partial restore point kept; one it lacks is a ProviderError)."""
        raise Unsupported(f"provider {self.name!r} ({self.driver}) cannot restore a single volume")

    def verify(self, point: RestorePointRef) -> None:
        """Re-read the restore point and raise ProviderError if anything is damaged."""
        raise Unsupported(f"provider {self.name!r} ({self.driver}) cannot verify restore points")


def parse_capabilities(values: Iterable[str], *, field_name: str = "capabilities") -> frozenset[Capability]:
    known = {c.value for c in Capability}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InvalidArgument(
            f"{field_name}: unknown capabilities {unknown}; known: {sorted(known)}", field=field_name
        )
    return frozenset(Capability(v) for v in values)
