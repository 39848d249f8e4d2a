"""Point-in-time copies of all of a VM's volumes, taken as one group before any is read.

The backup never reads a live disk while the VM writes to it, unless told to: it first
asks a ``SnapshotSource`` for read-only images of every volume frozen at one moment, reads
those, and lets the source clean them up. Sources here:

``ReflinkSnapshot``  clones each image file with the FICLONE ioctl (XFS, btrfs, OCFS2,
                     bcachefs, NFS 4.2 with server-side clone): instant, no extra space
                     until the VM writes. With ``freeze_command``/``thaw_command`` set
                     (e.g. ``virsh domfsfreeze``/``domfsthaw`` or ``virsh suspend``/
                     ``resume``) the clones of all volumes are taken inside one freeze
                     window: consistent across volumes (file-system consistent with a
                     guest agent freeze). Without them each clone is crash-consistent on
                     its own, and the volumes are cloned milliseconds apart.
``CommandSnapshot``  runs the operator's ``snapshot_command``, which makes the copies by
                     its own means (LVM/ZFS/Ceph snapshots, a storage array) and prints
                     where they are; ``release_command`` drops them afterwards.
``DirectSource``     reads the volumes in place: exact for a stopped VM, a torn
                     (crash-inconsistent) read for a running one - used only when the VM
                     is known to be stopped or the configuration says ``snapshot: direct``.

A hypervisor driver plugs in its own way of freezing a VM by passing a ``SnapshotSource``
to ``NasProvider(..., snapshot_source=...)``: e.g. a KVM driver that creates a libvirt
disk-only external snapshot of all disks at once (``virsh snapshot-create-as --disk-only
--atomic --quiesce``), returns the now read-only base images from ``capture`` and block-
commits the overlays when the context exits.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.domain.errors import ProviderError
from providers.base import VMRef
from providers.nas.chunker import ImageReader
from providers.nas.config import NasConfig
from providers.nas.iopool import run_bounded

log = logging.getLogger(__name__)

FICLONE = 0x40049409
NO_REFLINK = {errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.ENOSYS}
STOPPED_STATES = {"stopped", "shutdown", "shutoff", "destroyed"}


# Opens a reader of an image that is not a local file, given the ``state`` the volume's
# reader recorded at the parent backup (empty when there is none).
Opener = Callable[[Mapping[str, Any]], ImageReader]


@dataclass(frozen=True)
class SourceImage:
    path: str
    format: str
    # A source that is not a local file (a hypervisor's HTTP interface) reads it itself;
    # ``path`` then only names it in messages.
    open: Opener | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Capture:
    """Read-only images of a VM's volumes (by volume id), and how they were frozen."""

    images: dict[str, SourceImage]
    consistency: str


class SnapshotUnavailable(Exception):
    """This way of taking a point-in-time copy does not work here (e.g. no reflink)."""


class SnapshotSource(ABC):
    """Gives point-in-time, read-only images of every volume of a VM, taken as one group."""

    @abstractmethod
    def capture(
        self, vm: VMRef, point_id: str, *, quiesce: bool = False
    ) -> contextlib.AbstractContextManager[Capture]:
        """Freeze all volumes at one moment; the images stay valid until the context exits.
        ``quiesce``: the backup asks for file systems frozen by the guest; a source that has
        no guest channel of its own ignores it (the operator's freeze hooks run regardless)."""


def vm_is_stopped(vm: VMRef) -> bool:
    state = getattr(vm, "state", None) or vm.details.get("state") or ""
    return str(state).lower() in STOPPED_STATES


class Hooks:
    """Operator commands around a capture. Each gets NAS_VM_ID, NAS_VM_NAME, NAS_POINT_ID in
    its environment and the VM as JSON on stdin (release_command: what snapshot_command
    printed)."""

    def __init__(self, cfg: NasConfig) -> None:
        self.cfg = cfg

    def run(
        self, argv: tuple[str, ...], vm: VMRef, point_id: str, what: str, stdin: bytes | None = None
    ) -> str:
        env_extra = {"NAS_VM_ID": vm.id, "NAS_VM_NAME": vm.name, "NAS_POINT_ID": point_id}
        payload = stdin if stdin is not None else json.dumps(vm.to_dict()).encode()
        env = {**os.environ, **env_extra}
        code, out, err = run_bounded([*argv], self.cfg.hook_timeout_s, what, payload, env=env)
        if code != 0:
            raise ProviderError(
                f"{what} ({argv[0]}) failed with exit status {code}: {err.strip()[-500:]}", retryable=True
            )
        return out

    @contextmanager
    def frozen(self, vm: VMRef, point_id: str) -> Iterator[bool]:
        """Run freeze_command, then thaw_command on the way out; yields whether it froze."""
        if not self.cfg.freeze_command:
            yield False
            return
        self.run(self.cfg.freeze_command, vm, point_id, f"freezing VM {vm.name}")
        try:
            yield True
        finally:
            self.run(self.cfg.thaw_command, vm, point_id, f"thawing VM {vm.name}")


def reflink(src: str, dst: Path) -> None:
    """Clone ``src`` to a new file ``dst`` sharing its blocks; OSError when unsupported."""
    src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.ioctl(dst_fd, FICLONE, src_fd)
        except OSError:
            os.close(dst_fd)
            dst.unlink()
            raise
        os.close(dst_fd)
    finally:
        os.close(src_fd)


def _clone(path: str, dst: Path) -> None:
    try:
        reflink(path, dst)
    except FileNotFoundError:
        raise ProviderError(f"disk image {path} does not exist", retryable=False) from None
    except OSError as exc:
        if exc.errno in NO_REFLINK:
            raise SnapshotUnavailable(f"no reflink on {path}: {exc.strerror}") from None
        raise


class ReflinkSnapshot(SnapshotSource):
    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks

    @contextmanager
    def capture(self, vm: VMRef, point_id: str, *, quiesce: bool = False) -> Iterator[Capture]:
        clones: dict[str, SourceImage] = {}
        try:
            with self.hooks.frozen(vm, point_id) as froze:
                for volume in vm.volumes:
                    # Beside the original: same file system (a clone cannot cross one), and
                    # a qcow2 backing file named relative to the image still resolves.
                    dst = Path(volume.path).with_name(f".nas-snap-{point_id}-{volume.id}")
                    _clone(volume.path, dst)
                    clones[volume.id] = SourceImage(str(dst), volume.format)
            yield Capture(clones, "reflink+freeze" if froze else "reflink")
        finally:
            for image in clones.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(image.path)


class CommandSnapshot(SnapshotSource):
    """``snapshot_command`` prints {"volumes": {"<volume id>": {"path": ..., "format": ...}}}."""

    def __init__(self, cfg: NasConfig, hooks: Hooks) -> None:
        self.cfg = cfg
        self.hooks = hooks

    @contextmanager
    def capture(self, vm: VMRef, point_id: str, *, quiesce: bool = False) -> Iterator[Capture]:
        with self.hooks.frozen(vm, point_id):
            out = self.hooks.run(self.cfg.snapshot_command, vm, point_id, f"snapshot of VM {vm.name}")
        try:
            try:
                listed = json.loads(out)["volumes"]
                images = {
                    v.id: SourceImage(str(listed[v.id]["path"]), str(listed[v.id].get("format", v.format)))
                    for v in vm.volumes
                }
            except (ValueError, KeyError, TypeError) as exc:
                raise ProviderError(
                    f"snapshot_command output must be JSON naming every volume id, "
                    f"e.g. {{'volumes': {{'<id>': {{'path': ..., 'format': ...}}}}}}: {exc!r}",
                    retryable=False,
                ) from None
            yield Capture(images, "command")
        finally:
            if self.cfg.release_command:
                self.hooks.run(
                    self.cfg.release_command,
                    vm,
                    point_id,
                    f"releasing snapshot of {vm.name}",
                    out.encode(),
                )


class DirectSource(SnapshotSource):
    @contextmanager
    def capture(self, vm: VMRef, point_id: str, *, quiesce: bool = False) -> Iterator[Capture]:
        yield Capture({v.id: SourceImage(v.path, v.format) for v in vm.volumes}, "direct")


class AutoSnapshot(SnapshotSource):
    """Reflink where the file system clones, else the snapshot command, else a direct read
    of a stopped VM; a running VM with none of these fails rather than being torn."""

    def __init__(self, cfg: NasConfig, hooks: Hooks) -> None:
        self.cfg = cfg
        self.reflink = ReflinkSnapshot(hooks)
        self.command = CommandSnapshot(cfg, hooks) if cfg.snapshot_command else None

    @contextmanager
    def capture(self, vm: VMRef, point_id: str, *, quiesce: bool = False) -> Iterator[Capture]:
        with ExitStack() as stack:
            try:
                captured = stack.enter_context(self.reflink.capture(vm, point_id, quiesce=quiesce))
            except SnapshotUnavailable as why:
                if self.command is not None:
                    captured = stack.enter_context(self.command.capture(vm, point_id, quiesce=quiesce))
                elif vm_is_stopped(vm):
                    captured = stack.enter_context(DirectSource().capture(vm, point_id, quiesce=quiesce))
                else:
                    raise ProviderError(
                        f"cannot take a point-in-time copy of running VM {vm.name}: {why}; "
                        "configure snapshot_command, put the repository's sources on a file system "
                        "with reflinks, or set snapshot: direct to accept crash-inconsistent reads",
                        retryable=False,
                    ) from None
            yield captured


def source_for(cfg: NasConfig) -> SnapshotSource:
    hooks = Hooks(cfg)
    if cfg.snapshot == "direct":
        return DirectSource()
    if cfg.snapshot == "command":
        return CommandSnapshot(cfg, hooks)
    if cfg.snapshot == "reflink":
        return _StrictReflink(hooks)
    return AutoSnapshot(cfg, hooks)


class _StrictReflink(ReflinkSnapshot):
    @contextmanager
    def capture(self, vm: VMRef, point_id: str, *, quiesce: bool = False) -> Iterator[Capture]:
        with ExitStack() as stack:
            try:
                captured = stack.enter_context(super().capture(vm, point_id, quiesce=quiesce))
            except SnapshotUnavailable as why:
                raise ProviderError(f"snapshot: reflink is configured, but {why}", retryable=False) from None
            yield captured
