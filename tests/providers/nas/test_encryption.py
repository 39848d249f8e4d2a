"""Encryption at rest: round trip, keyed chunk ids, and clear errors for a wrong key."""

from __future__ import annotations

import blake3
import pytest

from orchestrator.domain.errors import InvalidArgument, ProviderError
from tests.providers.nas.conftest import CHUNK, ignore, make_raw, sha256, stored_chunks, take, vm_of, volume

SECRET = {"passphrase": "correct horse battery staple"}


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "chacha20-poly1305"])
def test_encrypted_round_trip(nas, disks, repo, cipher):
    disk = make_raw(disks / "root.raw")
    before = sha256(disk)
    vm = vm_of(volume(disk))
    provider = nas(encryption={**SECRET, "cipher": cipher})
    _, point = take(provider, vm, "rp-1")

    disk.unlink()
    provider.restore_vm(point, vm, ignore)

    assert sha256(disk) == before
    provider.verify(point)


def test_chunk_ids_and_files_reveal_no_plaintext(nas, disks, repo):
    disk = make_raw(disks / "root.raw")
    take(nas(encryption=SECRET), vm_of(volume(disk)), "rp-1")
    content = disk.read_bytes()
    plain_ids = {blake3.blake3(content[i : i + CHUNK]).hexdigest() for i in range(0, len(content), CHUNK)}

    names = {p.name for p in stored_chunks(repo)}
    assert names
    assert not names & plain_ids
    text = content[:64]  # the image starts with text
    for path in stored_chunks(repo):
        assert text not in path.read_bytes()
    for path in (repo / "points").iterdir():
        assert b"vm-1" not in path.read_bytes()


def test_wrong_passphrase_is_a_clear_error(nas, disks, repo):
    disk = make_raw(disks / "root.raw")
    vm = vm_of(volume(disk))
    _, point = take(nas(encryption=SECRET), vm, "rp-1")
    disk.write_bytes(b"keep me")

    wrong = nas(encryption={"passphrase": "not the right one"})
    with pytest.raises(ProviderError, match="wrong encryption key") as err:
        wrong.restore_vm(point, vm, ignore)
    assert not err.value.retryable
    assert disk.read_bytes() == b"keep me"
    with pytest.raises(ProviderError, match="wrong encryption key"):
        wrong.verify(point)
    with pytest.raises(ProviderError, match="wrong encryption key"):
        take(wrong, vm, "rp-2")


def test_missing_or_unexpected_key_is_a_clear_error(nas, disks, tmp_path):
    disk = make_raw(disks / "root.raw")
    vm = vm_of(volume(disk))
    take(nas(encryption=SECRET), vm, "rp-1")
    with pytest.raises(ProviderError, match="is encrypted: configure encryption"):
        take(nas(), vm, "rp-2")

    plain_repo = tmp_path / "plain"
    take(nas(repository=str(plain_repo)), vm, "rp-1")
    with pytest.raises(ProviderError, match="is not encrypted"):
        take(nas(repository=str(plain_repo), encryption=SECRET), vm, "rp-2")


def test_key_file(nas, disks, tmp_path):
    key = tmp_path / "repo.key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    disk = make_raw(disks / "root.raw")
    vm = vm_of(volume(disk))
    _, point = take(nas(encryption={"key_file": str(key)}), vm, "rp-1")

    key.write_bytes(b"0123456789abcdef0123456789abcdef")  # the newline does not matter
    nas(encryption={"key_file": str(key)}).verify(point)

    key.write_bytes(b"another key of the same length!!")
    with pytest.raises(ProviderError, match="wrong encryption key"):
        nas(encryption={"key_file": str(key)}).verify(point)


@pytest.mark.parametrize(
    "encryption",
    [
        "secret",
        {},
        {"passphrase": "short"},
        {"passphrase": "long enough", "key_file": "/k"},
        {"key_file": "relative/path"},
        {"passphrase": "long enough", "cipher": "rot13"},
        {"passphrase": "long enough", "salt": "x"},
    ],
)
def test_bad_encryption_settings_are_refused_up_front(nas, encryption):
    with pytest.raises(InvalidArgument, match=r"config\.encryption"):
        nas(encryption=encryption)
