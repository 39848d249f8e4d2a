"""Keys, chunk ids and the sealed envelope every chunk and manifest is stored in.

Plain repositories: a chunk's id is the BLAKE3 hash of its content; blobs are stored in
an envelope that carries a BLAKE3 checksum of its payload (and a chunk's id, re-computed
on read, checks the content once more).

Encrypted repositories: a random 256-bit master key is made when the repository is
created and stored only wrapped (AEAD-encrypted) under a key-encryption key derived with
scrypt from the operator's passphrase or key file. Two subkeys come from the master key by
HKDF-SHA256: one for AES-256-GCM (or ChaCha20-Poly1305) with a random 96-bit nonce per
blob, one for keyed BLAKE3 chunk ids - so ids reveal nothing about plaintext hashes and
identical content still deduplicates. A wrong passphrase fails to unwrap the master key
(authentication tag mismatch) and is reported as such, never as garbage data.
"""

from __future__ import annotations

import base64
import os
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from orchestrator.domain.errors import ProviderError

NONCE_BYTES = 12
KEY_BYTES = 32
ID_HEX_LEN = 64
# scrypt cost: about 0.1 s and 32 MiB per repository open; stored per key slot so it can grow.
SCRYPT_DEFAULTS = {"n": 2**15, "r": 8, "p": 1}

# Envelope header: magic, version, flags, reserved, plaintext length.
HEADER = struct.Struct(">4sBBHI")
MAGIC = b"NAS1"
VERSION = 1
FLAG_ZSTD = 0x01
FLAG_AEAD = 0x02
CHECKSUM_BYTES = 32


class WrongKey(ProviderError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class Damaged(ProviderError):
    """A stored blob that fails its checks: truncated, altered, or from another repository."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


def _aead(cipher: str, key: bytes) -> AESGCM | ChaCha20Poly1305:
    if cipher == "aes-256-gcm":
        return AESGCM(key)
    if cipher == "chacha20-poly1305":
        return ChaCha20Poly1305(key)
    raise ProviderError(f"unknown cipher {cipher!r} in repository configuration", retryable=False)


def _kek(secret: bytes, kdf: dict[str, Any]) -> bytes:
    if kdf.get("name") != "scrypt":
        raise ProviderError(f"unknown key derivation {kdf.get('name')!r} in repository", retryable=False)
    scrypt = Scrypt(salt=unb64(kdf["salt"]), length=KEY_BYTES, n=kdf["n"], r=kdf["r"], p=kdf["p"])
    return scrypt.derive(secret)


def new_key_slot(secret: bytes, repo_id: str, cipher: str) -> tuple[dict[str, Any], bytes]:
    """A fresh master key and the slot that stores it wrapped under ``secret``."""
    master = os.urandom(KEY_BYTES)
    kdf = {"name": "scrypt", "salt": b64(os.urandom(16)), **SCRYPT_DEFAULTS}
    nonce = os.urandom(NONCE_BYTES)
    wrapped = _aead(cipher, _kek(secret, kdf)).encrypt(nonce, master, f"nas-key:{repo_id}".encode())
    return {"kdf": kdf, "cipher": cipher, "nonce": b64(nonce), "wrapped": b64(wrapped)}, master


def open_key_slots(slots: list[dict[str, Any]], secret: bytes, repo_id: str, where: str) -> bytes:
    """The master key from the first slot ``secret`` opens; WrongKey when none does."""
    for slot in slots:
        try:
            aead = _aead(slot["cipher"], _kek(secret, slot["kdf"]))
            return aead.decrypt(unb64(slot["nonce"]), unb64(slot["wrapped"]), f"nas-key:{repo_id}".encode())
        except InvalidTag:
            continue
    raise WrongKey(
        f"{where}: wrong encryption key - the configured passphrase or key file does not open "
        "the repository's key (nothing was read or written)"
    )


def _subkey(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose).derive(master)


@dataclass(frozen=True)
class Keys:
    """How blobs are named and sealed in one repository; ``cipher`` None means plain."""

    cipher: str | None = None
    enc_key: bytes | None = None
    id_key: bytes | None = None

    @classmethod
    def plain(cls) -> Keys:
        return cls()

    @classmethod
    def from_master(cls, master: bytes, cipher: str) -> Keys:
        return cls(cipher, _subkey(master, b"nas chunk encryption v1"), _subkey(master, b"nas chunk id v1"))

    @property
    def encrypted(self) -> bool:
        return self.cipher is not None

    @cached_property
    def aead(self) -> AESGCM | ChaCha20Poly1305:
        assert self.cipher is not None
        assert self.enc_key is not None
        return _aead(self.cipher, self.enc_key)

    def chunk_id(self, data: bytes | bytearray | memoryview) -> str:
        """Content address: BLAKE3, keyed with a secret subkey in encrypted repositories."""
        hasher = blake3.blake3(key=self.id_key) if self.id_key else blake3.blake3()
        hasher.update(data)
        return hasher.hexdigest()

    def digest(self, parts: list[str]) -> str:
        """A volume's digest: the id function over its ordered chunk ids ("0" for zero chunks)."""
        return self.chunk_id("\n".join(parts).encode())

    def seal(self, payload: bytes | bytearray, plain_len: int, flags: int, aad: bytes) -> bytes:
        """Envelope bytes: header, then payload (plain) or nonce + AEAD ciphertext."""
        if not self.encrypted:
            header = HEADER.pack(MAGIC, VERSION, flags, 0, plain_len)
            return b"".join((header, blake3.blake3(payload).digest(), payload))
        header = HEADER.pack(MAGIC, VERSION, flags | FLAG_AEAD, 0, plain_len)
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self.aead.encrypt(nonce, payload, header + aad)

    def open(self, blob: bytes, aad: bytes, what: str) -> tuple[bytes, int, int]:
        """(payload, plaintext length, flags) of an envelope; Damaged if it fails its checks."""
        if len(blob) < HEADER.size:
            raise Damaged(f"{what} is truncated ({len(blob)} bytes)")
        magic, version, flags, _, plain_len = HEADER.unpack_from(blob)
        if magic != MAGIC or version != VERSION:
            raise Damaged(f"{what} has no valid header (magic {magic!r}, version {version})")
        body = blob[HEADER.size :]
        if bool(flags & FLAG_AEAD) != self.encrypted:
            state = "encrypted" if flags & FLAG_AEAD else "not encrypted"
            raise Damaged(f"{what} is {state}, unlike its repository")
        if not self.encrypted:
            payload = body[CHECKSUM_BYTES:]
            if blake3.blake3(payload).digest() != body[:CHECKSUM_BYTES]:
                raise Damaged(f"{what} fails its checksum (damaged or truncated)")
            return payload, plain_len, flags
        try:
            payload = self.aead.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], blob[: HEADER.size] + aad)
        except InvalidTag:
            raise Damaged(f"{what} fails authentication (damaged, altered or from another key)") from None
        return payload, plain_len, flags
