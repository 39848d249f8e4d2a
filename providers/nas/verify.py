"""Re-reading what the repository holds and checking it against its ids.

``verify_point`` reads every chunk of one restore point (each distinct chunk once),
decrypts, decompresses and re-hashes it, and checks each volume's digest against its
chunk list; it raises a ProviderError that names every damaged volume and chunk.
``check_repository`` does the same for all restore points at once (or, without
``read_data``, only checks that every chunk they name exists).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field

from orchestrator.domain.errors import ProviderError
from providers.nas.crypto import Damaged
from providers.nas.iopool import IoPool
from providers.nas.manifest import ZERO, Manifest
from providers.nas.store import Repository

LISTED = 10


@dataclass
class CheckReport:
    points: int = 0
    chunks: int = 0
    damaged: dict[str, str] = field(default_factory=dict)  # chunk id -> what is wrong
    bad_points: dict[str, str] = field(default_factory=dict)  # point -> what is wrong

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.bad_points


def _check_chunk(repo: Repository, chunk_id: str, read_data: bool) -> str | None:
    try:
        if read_data:
            repo.get_chunk(chunk_id)
        elif not repo.has_chunk(chunk_id):
            return "missing"
    except Damaged as exc:
        return exc.message.removeprefix(f"chunk {chunk_id} ")
    return None


def check_chunks(
    repo: Repository, pool: IoPool, chunk_ids: Iterable[str], *, read_data: bool, window: int
) -> dict[str, str]:
    """Damaged chunks among ``chunk_ids``: id -> reason."""
    damaged: dict[str, str] = {}
    inflight: deque[tuple[str, Future[str | None]]] = deque()

    def collect() -> None:
        chunk_id, future = inflight.popleft()
        problem = pool.wait(future, f"checking chunk {chunk_id}")
        if problem:
            damaged[chunk_id] = problem

    try:
        for chunk_id in chunk_ids:
            inflight.append((chunk_id, pool.submit(_check_chunk, repo, chunk_id, read_data)))
            if len(inflight) >= window:
                collect()
        while inflight:
            collect()
    finally:
        for _, future in inflight:
            future.cancel()
    return damaged


def describe(manifest: Manifest, damaged: dict[str, str], bad_digests: list[str]) -> str:
    where = []
    for volume in manifest.volumes:
        for _, offset, _, chunk_id in volume.spans():
            if chunk_id in damaged:
                where.append(f"{volume.label} chunk {chunk_id[:16]}… at byte {offset}: {damaged[chunk_id]}")
    where.extend(bad_digests)
    shown = "; ".join(where[:LISTED]) + (f"; and {len(where) - LISTED} more" if len(where) > LISTED else "")
    return f"restore point {manifest.id} is damaged ({len(where)} problem(s)): {shown}"


def verify_point(repo: Repository, pool: IoPool, manifest: Manifest, *, window: int) -> int:
    """Raise ProviderError naming what is damaged; returns the number of chunks checked."""
    ids = sorted(manifest.chunk_ids())
    damaged = check_chunks(repo, pool, ids, read_data=True, window=window)
    bad_digests = [
        f"{v.label}: digest does not match its chunk list"
        for v in manifest.volumes
        if repo.keys.digest(list(v.chunks)) != v.digest
        or len(v.chunks) != -(-v.size // v.chunk_size)
        or any(c != ZERO and len(c) != 64 for c in v.chunks)
    ]
    if damaged or bad_digests:
        raise ProviderError(describe(manifest, damaged, bad_digests), retryable=False)
    return len(ids)


def check_repository(
    repo: Repository, pool: IoPool, manifests: dict[str, Manifest | str], *, read_data: bool, window: int
) -> CheckReport:
    """Every restore point readable and every chunk it names present (and intact if read_data).
    ``manifests`` maps point -> its manifest, or the reason it could not be read."""
    report = CheckReport(points=len(manifests))
    wanted: set[str] = set()
    for point, manifest in manifests.items():
        if isinstance(manifest, str):
            report.bad_points[point] = manifest
        else:
            wanted |= manifest.chunk_ids()
    report.chunks = len(wanted)
    report.damaged = check_chunks(repo, pool, sorted(wanted), read_data=read_data, window=window)
    for point, manifest in manifests.items():
        if not isinstance(manifest, str) and manifest.chunk_ids() & report.damaged.keys():
            report.bad_points[point] = describe(manifest, report.damaged, [])
    return report
