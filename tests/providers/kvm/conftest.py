"""A real OpenSSH server on a free loopback port, for the SSH transport's tests.

Debian's ``openssh-server`` provides ``/usr/sbin/sshd``. Without it the SSH tests are
skipped, except with ``CI=true``, where a missing sshd fails the run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI

SSHD = Path("/usr/sbin/sshd")
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    client_key: Path  # authorised ed25519 key
    client_keys: dict[str, Path]  # every authorised key, by kind
    stranger_key: Path  # a valid key the server does not accept
    host_public_key: str  # "ssh-ed25519 AAAA…", what the server presents
    host_fingerprint: str  # "SHA256:…"
    other_host_public_key: str  # a key the server does not have
    other_host_fingerprint: str

    @property
    def known_hosts_name(self) -> str:
        return f"[{self.host}]:{self.port}"


def keygen(path: Path, kind: str = "ed25519", *extra: str) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", path.name, *extra, "-f", str(path)],
        check=True,
    )
    return path


def public_key(path: Path) -> str:
    """The "type base64" part of a .pub file, without its comment."""
    kind, blob, *_ = (path.parent / (path.name + ".pub")).read_text().split()
    return f"{kind} {blob}"


def fingerprint(path: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return out.split()[1]


def write_known_hosts(
    path: Path, server: SshServer, key_line: str | None = None, *, extra: Iterable[str] = ()
) -> Path:
    """A known_hosts file naming the server with its own key, or with key_line instead."""
    lines = [*extra, f"{server.known_hosts_name} {key_line or server.host_public_key}"]
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sshd_config(tmp: Path, port: int, host_key: Path, authorized_keys: Path) -> Path:
    config = tmp / "sshd_config"
    config.write_text(
        f"""\
ListenAddress 127.0.0.1
Port {port}
HostKey {host_key}
AuthorizedKeysFile {authorized_keys}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin yes
PidFile {tmp / "sshd.pid"}
LogLevel ERROR
"""
    )
    return config


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited with {proc.returncode}: {log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"sshd did not listen on 127.0.0.1:{port} within {START_TIMEOUT_S:g} s")


def _require_sshd() -> None:
    missing = [tool for tool in (str(SSHD), "ssh-keygen") if shutil.which(tool) is None]
    if missing:
        problem = f"{', '.join(missing)} not found (apt-get install openssh-server)"
        if IN_CI:
            pytest.fail(f"OpenSSH is required in CI: {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    _require_sshd()
    tmp = tmp_path_factory.mktemp("sshd")
    host_key = keygen(tmp / "host_ed25519")
    other_host_key = keygen(tmp / "other_host_ed25519")
    client_keys = {
        "ed25519": keygen(tmp / "client_ed25519"),
        "ecdsa": keygen(tmp / "client_ecdsa", "ecdsa"),
        "rsa": keygen(tmp / "client_rsa", "rsa", "-b", "2048"),
        "rsa-pem": keygen(tmp / "client_rsa_pem", "rsa", "-b", "2048", "-m", "PEM"),
    }
    authorized = tmp / "authorized_keys"
    authorized.write_text("".join(public_key(key) + "\n" for key in client_keys.values()))
    port = free_port()
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation directory
    config = _sshd_config(tmp, port, host_key, authorized)
    log = tmp / "sshd.log"
    # A file, not a pipe: nobody reads sshd's log while it runs, and a full pipe would block it.
    with open(log, "wb") as log_file:
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=log_file)
    try:
        _wait_for_port(proc, port, log)
        yield SshServer(
            host="127.0.0.1",
            port=port,
            client_key=client_keys["ed25519"],
            client_keys=client_keys,
            stranger_key=keygen(tmp / "stranger_ed25519"),
            host_public_key=public_key(host_key),
            host_fingerprint=fingerprint(host_key),
            other_host_public_key=public_key(other_host_key),
            other_host_fingerprint=fingerprint(other_host_key),
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
