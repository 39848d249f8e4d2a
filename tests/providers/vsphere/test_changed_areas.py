"""Which chunks a disk reader reads after QueryChangedDiskAreas: any chunk an area touches,
with areas unsorted, overlapping or adjacent as vCenter may list them."""

from __future__ import annotations

from providers.vsphere.datastore import DatastorePath
from providers.vsphere.snapshot import DiskReader

KiB = 1024
CHUNK = 256 * KiB


def reader(areas: list[tuple[int, int]] | None, size: int = 4 * 1024 * KiB) -> DiskReader:
    return DiskReader(None, DatastorePath("ds", "vm/disk-flat.vmdk"), size, size, areas, {})  # type: ignore[arg-type]


def changed_chunks(r: DiskReader) -> list[int]:
    return [i for i in range(r.size // CHUNK) if not r.unchanged(i * CHUNK, CHUNK)]


def test_a_chunk_is_read_when_any_area_touches_it() -> None:
    areas = [(9 * CHUNK - 1, 2), (0, 4 * KiB), (3 * CHUNK, CHUNK), (CHUNK - 1, 1)]
    assert changed_chunks(reader(areas)) == [0, 3, 8, 9]


def test_overlapping_and_contained_areas_merge() -> None:
    areas = [(CHUNK, 3 * CHUNK), (CHUNK + KiB, KiB), (2 * CHUNK, 4 * CHUNK), (12 * CHUNK, 0)]
    assert changed_chunks(reader(areas)) == [1, 2, 3, 4, 5]


def test_no_areas_means_nothing_changed_and_none_means_read_everything() -> None:
    assert changed_chunks(reader([])) == []
    assert changed_chunks(reader(None)) == list(range(16))
