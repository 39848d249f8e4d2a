"""Folders and files only their owner may open: the data directory, the SQLite database,
the master key, the first admin key.

Modes are given when a file is made (never created wide and narrowed afterwards, which
leaves a moment when anyone can open it); the process umask can only narrow them further.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) if absent; a folder made here is 0700. A folder
    that exists already keeps its mode: it is the operator's."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    return path


def touch_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (an existing file is left alone)."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))


def write_private(path: Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` in one step, the new file 0600 from its first byte."""
    private_dir(path.parent)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp makes 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
