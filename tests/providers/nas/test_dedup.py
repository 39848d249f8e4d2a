"""Incrementals store only what changed; clones and zeros cost (almost) nothing."""

from __future__ import annotations

import shutil

from tests.providers.nas.conftest import (
    CHUNK,
    MiB,
    make_raw,
    overwrite,
    repo_bytes,
    stored_chunks,
    take,
    vm_of,
    volume,
)


def test_incremental_stores_only_the_changed_chunks(nas, disks, repo):
    disk = make_raw(disks / "root.raw", size=8 * MiB, sparse_tail=False)
    vm = vm_of(volume(disk))
    provider = nas()
    full, point = take(provider, vm, "rp-1")
    chunks_before = len(stored_chunks(repo))

    # 4 KiB writes in three distinct chunks (two in the same one).
    overwrite(disk, [CHUNK * 3 + 100, CHUNK * 3 + 9000, CHUNK * 10, 8 * MiB - 4096])
    incremental, _ = take(provider, vm, "rp-2", parent=point)

    assert incremental.backup_type == "INCREMENTAL"
    assert len(stored_chunks(repo)) == chunks_before + 3
    stats = provider.list_points()[1].stats
    assert stats["new_chunks"] == 3
    assert stats["dedup_chunks"] == 0  # the parent's chunks are not even looked up
    assert incremental.size < full.size / 8


def test_clones_of_one_template_cost_about_one_image(nas, disks, repo):
    template = make_raw(disks / "template.raw", size=8 * MiB, sparse_tail=False)
    provider = nas()
    take(provider, vm_of(volume(template), vm_id="template"), "rp-template")
    one_image = repo_bytes(repo)

    for i in range(10):
        clone = disks / f"clone-{i}.raw"
        shutil.copyfile(template, clone)
        overwrite(clone, [4096 * (i + 1)], seed=i)  # each clone is a little different
        take(provider, vm_of(volume(clone), vm_id=f"clone-{i}"), f"rp-clone-{i}")

    assert repo_bytes(repo) <= 1.2 * one_image
    assert len(provider.list_points()) == 11


def test_zero_chunks_cost_nothing(nas, disks, repo):
    sparse = disks / "empty.raw"
    with open(sparse, "wb") as f:
        f.truncate(64 * MiB)
        f.seek(32 * MiB)
        f.write(bytes(2 * MiB))  # written zeros, read and dropped
    result, _ = take(nas(), vm_of(volume(sparse)), "rp-1")

    assert result.size == 0
    assert result.protected_size == 64 * MiB
    assert stored_chunks(repo) == []
    stats = nas().list_points()[0].stats
    assert stats["read_bytes"] <= 2 * MiB + CHUNK  # holes are never read
    assert stats["zero_chunks"] == 64 * MiB // CHUNK
