"""The ``nas`` driver: a data mover for KVM disk images into a repository on a shared
directory (an NFS/SMB mount shared by workers). See README.md beside this file.

Repository format (version 1)
=============================

``config.json``
    ``{"format": "nas-backup-repository", "version": 1, "id", "chunk_size", "chunk_id",
    "compression": "zstd", "encryption": null | {"cipher", "key_slots": [...]}}``. The
    chunk size is fixed when the repository is created. A key slot holds the master key
    wrapped (AEAD) under a key derived with scrypt (parameters and salt in the slot) from
    the passphrase or key file.

``chunks/<first 2 hex>/<chunk id>``
    One *envelope* per chunk. A chunk is an aligned, fixed-size slice (default 512 KiB; the
    last one of a volume may be shorter) of a volume's guest-visible content. Its id is
    BLAKE3 of the content (hex), keyed with a secret subkey in encrypted repositories.
    All-zero chunks are never stored. Envelope = 12-byte header (``NAS1``, version, flags
    [1 = zstd, 2 = AEAD], reserved, plaintext length, big-endian) then either a BLAKE3
    checksum of the payload and the payload (plain), or a 96-bit random nonce and the
    AES-256-GCM / ChaCha20-Poly1305 ciphertext of the payload with the header and
    ``chunk:<id>`` as associated data (encrypted). The payload is the zstd frame when
    that is smaller, else the content.

``points/<restore point id>.manifest``
    One envelope (associated data ``manifest:<id>``) holding zstd-compressed JSON: the
    restore point's ids, the VM's metadata, type, parent, how the disks were frozen
    (``consistency``), stats, the job ``attempt`` that wrote it (1 when absent), and per
    volume its id, device id, name, format, guest size, chunk size, ``digest`` (the id
    function over the newline-joined chunk list) and ``chunks``: every chunk id in order,
    ``"0"`` for an all-zero chunk; and ``source`` when the snapshot source's reader recorded
    something about the volume (a hypervisor's change id), absent otherwise.

``writers/<restore point id>``
    The newest job attempt that started writing the restore point, as plain text. A backup
    records its attempt there first and commits its manifest only while no newer attempt
    is recorded: a worker paused past its lease, woken after the job went to another,
    commits nothing.

``locks/<shared|exclusive>-<token>.lock``
    Backups hold shared locks (naming their restore point), garbage collection the
    exclusive one; a lock not touched for ``lock_stale_s`` is stale. Each names its holder
    (host, boot id, pid namespace, pid, process start time): a holder on the same machine
    whose process is gone is dead at once.

Crash safety: every file is written under ``.tmp-*`` in its final directory, made
durable, and only then renamed, so a name never points at a partial file (a later backup
would deduplicate against it). A backup writes all its new chunks under temporary names,
syncs the repository's file system once (``syncfs``), renames them to their ids, syncs
again, and writes the manifest last (fsynced, renamed, directory fsynced). A restore
point exists exactly when its manifest does. Chunks that a backup which died before
that had already named are reused by its retry. Its staged chunks
(``chunks/<2 hex>/.tmp-<chunk id>.<lock token>``) are taken over, once their content
checks out, by a backup that finds its dead lock (the retry, on the same host); garbage
collection removes every temporary file older than its own lock, and chunks nothing
names once older than the grace period.
"""

from providers.nas.driver import NasProvider

__all__ = ["NasProvider"]
