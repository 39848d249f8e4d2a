"""The few ``qemu-img`` calls the driver needs, each bounded in time.

Sources are opened with ``-U`` (force share): a running VM's qemu holds a write lock on
its images, and we only ever read them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from orchestrator.domain.errors import ProviderError
from providers.nas.iopool import paced_timeout, run_bounded


def qemu_img() -> str:
    found = shutil.which("qemu-img")
    if found is None:
        raise ProviderError("qemu-img is not installed on this worker (Debian: qemu-utils)", retryable=False)
    return found


def run(args: list[str], timeout: float, what: str) -> str:
    """Run qemu-img; its stdout, or ProviderError with its stderr."""
    code, out, err = run_bounded([qemu_img(), *args], timeout, what)
    if code != 0:
        reason = err.strip() or f"exit status {code}"
        raise ProviderError(f"qemu-img failed {what}: {reason}", retryable=False)
    return out


def info_chain(path: str, fmt: str, timeout: float) -> list[dict[str, Any]]:
    """``qemu-img info --backing-chain``: the image first, then each backing file."""
    args = ["info", "-U", "--backing-chain", "--output=json", "-f", fmt, path]
    out = run(args, timeout, f"reading info of {path}")
    chain = json.loads(out)
    return chain if isinstance(chain, list) else [chain]


def map_extents(path: str, fmt: str, timeout: float) -> list[dict[str, Any]]:
    return json.loads(run(["map", "-U", "--output=json", "-f", fmt, path], timeout, f"mapping {path}"))


def convert(src: Path, src_fmt: str, dst: Path, dst_fmt: str, timeout: float) -> None:
    """Copy the guest-visible content of ``src`` into a new image (zeros stay sparse)."""
    run(
        ["convert", "-U", "-f", src_fmt, "-O", dst_fmt, str(src), str(dst)],
        timeout,
        f"converting {src} ({src_fmt}) to {dst_fmt}",
    )


def identical(a: Path, a_fmt: str, b: Path, b_fmt: str, timeout: float) -> bool:
    """Whether two images show the guest the same bytes (``qemu-img compare``)."""
    args = [qemu_img(), "compare", "-U", "-f", a_fmt, "-F", b_fmt, str(a), str(b)]
    code, _, err = run_bounded(args, timeout, f"comparing {a} with {b}")
    if code in (0, 1):
        return code == 0
    raise ProviderError(f"qemu-img compare {a} {b} failed: {err.strip()}", retryable=False)


def conversion_timeout(base: float, size: int) -> float:
    return paced_timeout(base, size)
