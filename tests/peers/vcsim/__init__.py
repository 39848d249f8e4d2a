"""The vCenter simulator (govmomi's, built from Debian's sources by ``build.sh``): started on
a free loopback port with the inventory asked for, stopped by PID.

Its certificate is self-signed and made fresh at each start; clients trust it by naming the
printed CA file, as an operator names a private CA's file in ``connection.ca_file``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
BUILD = HERE / "build.sh"
USERNAME = "administrator@vsphere.local"
PASSWORD = "vcsim-Pa55"
START_TIMEOUT_S = 30.0


class Unavailable(RuntimeError):
    """The simulator cannot be built or started here (no Go toolchain or govmomi sources)."""


def binary() -> Path:
    """The simulator's binary, built on first use and cached by its source's hash."""
    missing = [tool for tool in ("go", "dpkg-query") if shutil.which(tool) is None]
    if missing or not Path("/usr/share/gocode/src/github.com/vmware/govmomi/simulator").is_dir():
        raise Unavailable(
            "vcsim needs golang-go, golang-github-vmware-govmomi-dev and golang-github-google-uuid-dev"
        )
    done = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise Unavailable(f"building vcsim failed: {done.stderr.strip()[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Vcsim:
    url: str  # https://127.0.0.1:PORT/sdk
    ca_file: Path
    username: str
    password: str
    pid: int

    @property
    def address(self) -> str:
        return self.url.split("/")[2]

    def connection(self, **extra: object) -> dict[str, object]:
        """A vCenter host's connection settings for this simulator."""
        return {
            "url": self.url,
            "username": self.username,
            "password": self.password,
            "ca_file": str(self.ca_file),
            **extra,
        }


@contextmanager
def running(
    exe: Path,
    *,
    datacenters: int = 1,
    clusters: int = 1,
    hosts: int = 2,
    vms_per_host: int = 2,
    datastores: int = 1,
) -> Iterator[Vcsim]:
    """A simulator serving a fresh inventory: ``vms_per_host`` VMs on each of ``hosts`` hosts
    per cluster, named ``DC0_C0_RP0_VM0``... as govmomi names them."""
    args = [
        str(exe),
        f"-dc={datacenters}",
        f"-cluster={clusters}",
        f"-host={hosts}",
        f"-vm={vms_per_host}",
        f"-ds={datastores}",
        f"-username={USERNAME}",
        f"-password={PASSWORD}",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise Unavailable(f"vcsim exited at start: {err.strip()[-2000:]}")
        ready = json.loads(line)
        yield Vcsim(ready["url"], Path(ready["cafile"]), USERNAME, PASSWORD, proc.pid)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
