"""How a worker reaches a KVM host: run one command there and get its exit status and output.

Two transports behind one protocol: ``SSHTransport`` (paramiko, key authentication, strict
host-key checking against the operator's own ``known_hosts`` file) and ``LocalTransport``
(the worker runs on the host). Both enforce a timeout on every command and raise the same
errors, so callers never care which one they hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import math
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import paramiko
from paramiko.hostkeys import InvalidHostKey

from orchestrator.domain.errors import InvalidArgument, ProviderError
from providers.config import Fields

DEFAULT_TIMEOUT = 60.0
_CHUNK = 32 * 1024
_STDERR_TAIL = 2048
_COMMAND_SHOWN = 300
# How long a killed local command may take to release its pipes before we stop waiting.
_KILL_GRACE = 5.0
# Idle connections through NAT or firewalls are dropped silently; a keepalive notices it.
_KEEPALIVE_S = 30


# -- results and errors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


class TransportError(ProviderError):
    """The host could not be reached, or a command there did not do its job."""

    code = "transport_error"


class HostKeyRejected(TransportError):
    """The host's key is not the one the operator trusts; retrying cannot help."""

    def __init__(
        self,
        message: str,
        *,
        host: str = "",
        port: int = 0,
        key_type: str = "",
        fingerprint: str = "",
        changed: bool = False,
    ) -> None:
        super().__init__(message, retryable=False)
        self.host = host
        self.port = port
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.changed = changed


class CommandFailed(TransportError):
    def __init__(self, message: str, *, exit_status: int = -1, stderr: bytes = b"") -> None:
        super().__init__(message, retryable=False)
        self.exit_status = exit_status
        self.stderr = stderr


class CommandTimeout(TransportError):
    def __init__(self, message: str, *, timeout: float = 0.0) -> None:
        super().__init__(message, retryable=True)
        self.timeout = timeout


def _shown(argv: Sequence[str]) -> str:
    command = shlex.join(argv)
    if len(command) > _COMMAND_SHOWN:
        return command[: _COMMAND_SHOWN - 1] + "…"
    return command


def _stderr_tail(stderr: bytes) -> str:
    """The last lines of stderr, where tools put the reason they failed."""
    tail = stderr[-_STDERR_TAIL:]
    text = tail.decode("utf-8", errors="replace").strip()
    if len(tail) < len(stderr) and "\n" in text:
        text = "…" + text[text.index("\n") :]
    return text or "(no output on stderr)"


def _ended(status: int) -> str:
    if status == -1:
        # paramiko ignores SSH's exit-signal message, so a command killed by a signal has none.
        return "ended without an exit status (killed by a signal?)"
    return f"exited with {status}"


def _checked(result: CommandResult, where: str, check: bool) -> CommandResult:
    if check and result.exit_status != 0:
        raise CommandFailed(
            f"`{_shown(result.argv)}` on {where} {_ended(result.exit_status)}: {_stderr_tail(result.stderr)}",
            exit_status=result.exit_status,
            stderr=result.stderr,
        )
    return result


def _timed_out(argv: Sequence[str], where: str, timeout: float) -> CommandTimeout:
    return CommandTimeout(
        f"`{_shown(argv)}` on {where} did not finish within {timeout:g} s and was stopped",
        timeout=timeout,
    )


def _argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, str | bytes):
        # A bare string would be split into characters: always a caller's bug.
        raise TypeError("argv must be a sequence of arguments, not a string")
    args = tuple(os.fspath(arg) for arg in argv)
    if not args:
        raise ValueError("argv must not be empty")
    if any(not isinstance(arg, str) or "\0" in arg for arg in args):
        raise ValueError(f"every argument must be a str without NUL bytes: {args!r}")
    return args


def _check_timeout(timeout: float) -> None:
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")


# -- the protocol ---------------------------------------------------------------------------------


@runtime_checkable
class Transport(Protocol):
    name: str

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        input: bytes | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run argv (no shell) and return its outcome; CommandFailed on a non-zero exit when check."""
        ...

    def close(self) -> None:
        """Release the connection; the transport reconnects if used again."""
        ...


# -- local ----------------------------------------------------------------------------------------


class LocalTransport:
    """Runs commands on the worker's own machine, for a worker that lives on its KVM host."""

    name = "local"

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        input: bytes | None = None,
        check: bool = True,
    ) -> CommandResult:
        args = _argv(argv)
        _check_timeout(timeout)
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv, never a shell
                args,
                stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Its own process group, so a timeout kills what the command started too.
                start_new_session=True,
            )
        except OSError as exc:
            return _checked(_not_started(args, exc), self.name, check)
        with proc:
            try:
                stdout, stderr = proc.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise _timed_out(args, self.name, timeout) from None
        return _checked(CommandResult(args, _shell_status(proc.returncode), stdout, stderr), self.name, check)

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _not_started(args: tuple[str, ...], exc: OSError) -> CommandResult:
    # Report it as a shell would (127 not found, 126 not executable), so a missing tool looks
    # the same whether the command ran locally or over SSH.
    status = 127 if isinstance(exc, FileNotFoundError) else 126
    return CommandResult(args, status, b"", f"{args[0]}: {exc.strerror}\n".encode())


def _shell_status(returncode: int) -> int:
    # subprocess reports death by signal N as -N; a shell (and so SSH) reports 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    # A grandchild that escaped the group may hold the pipes open: don't wait for it forever.
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=_KILL_GRACE)


# -- SSH ------------------------------------------------------------------------------------------


class SSHTransport:
    """One lazily opened, reused SSH connection to a host; one channel per command."""

    def __init__(
        self,
        host: str,
        *,
        port: int = 22,
        username: str = "root",
        key_file: Path,
        known_hosts: Path,
        accept_new_host_key: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.key_file = Path(key_file)
        self.known_hosts = Path(known_hosts)
        self.accept_new_host_key = accept_new_host_key
        self.connect_timeout = connect_timeout
        self.name = f"{username}@{_bracketed(host)}:{port}"
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        input: bytes | None = None,
        check: bool = True,
    ) -> CommandResult:
        args = _argv(argv)
        _check_timeout(timeout)
        channel = self._open_channel()
        # The connection has its own timeout: this one is the command's.
        deadline = time.monotonic() + timeout
        try:
            channel.settimeout(timeout)
            channel.exec_command(_bounded(args, timeout))
            stdout, stderr, finished = _exchange(channel, input or b"", deadline)
            if not finished:
                raise _timed_out(args, self.name, timeout)
            status = channel.recv_exit_status()
            if status == -1 and not self._connected():
                raise TransportError(f"the connection to {self.name} was lost while running `{_shown(args)}`")
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self._drop()
            raise TransportError(f"`{_shown(args)}` on {self.name} failed: {_reason(exc)}") from exc
        finally:
            channel.close()
        return _checked(CommandResult(args, status, stdout, stderr), self.name, check)

    def close(self) -> None:
        with self._lock:
            self._drop_locked()

    def __enter__(self) -> SSHTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the connection

    def _open_channel(self) -> paramiko.Channel:
        with self._lock:
            if self._client is not None and self._connected():
                try:
                    return self._session()
                except (paramiko.SSHException, EOFError, OSError):
                    pass  # it died since the last command: reconnect once, below
            self._drop_locked()
            self._client = self._connect()
            try:
                return self._session()
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self._drop_locked()
                raise TransportError(f"cannot open a session on {self.name}: {_reason(exc)}") from exc

    def _session(self) -> paramiko.Channel:
        assert self._client is not None
        transport = self._client.get_transport()
        if transport is None:
            raise paramiko.SSHException("not connected")
        return transport.open_session(timeout=self.connect_timeout)

    def _connected(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    def _drop(self) -> None:
        with self._lock:
            self._drop_locked()

    def _drop_locked(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _connect(self) -> paramiko.SSHClient:
        pkey = _load_key(self.key_file)
        client = paramiko.SSHClient()
        # Only the operator's file: the worker's own ~/.ssh/known_hosts or /etc/ssh ones must
        # not decide which hosts it trusts.
        _load_known_hosts(client, self.known_hosts)
        client.set_missing_host_key_policy(
            _StrictPolicy(self.host, self.port, self.known_hosts, accept_new=self.accept_new_host_key)
        )
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.username,
                pkey=pkey,
                look_for_keys=False,
                allow_agent=False,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                channel_timeout=self.connect_timeout,
            )
        except TransportError:  # a host key refused by our policy
            client.close()
            raise
        except Exception as exc:
            client.close()
            raise self._connect_error(exc) from exc
        except BaseException:
            client.close()
            raise
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(_KEEPALIVE_S)
        return client

    def _connect_error(self, exc: Exception) -> Exception:
        if isinstance(exc, paramiko.BadHostKeyException):
            return _changed_key(self.host, self.port, self.known_hosts, exc.key, exc.expected_key)
        if isinstance(exc, paramiko.AuthenticationException):
            return TransportError(
                f"{self.name} refused the key {self.key_file}: {_reason(exc)}; is its public key in "
                f"~{self.username}/.ssh/authorized_keys on the host?",
                retryable=False,
            )
        if isinstance(exc, socket.timeout | TimeoutError):
            return TransportError(
                f"cannot connect to {self.name}: timed out after {self.connect_timeout:g} s"
            )
        if isinstance(exc, paramiko.SSHException | OSError | EOFError):
            return TransportError(f"cannot connect to {self.name}: {_reason(exc)}")
        return exc


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _reason(exc: BaseException) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        # Its own text lists every address tried with the errno; the first reason is enough.
        first = next(iter(exc.errors.values()), None)
        if isinstance(first, OSError) and first.strerror:
            return first.strerror.lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).rstrip(".") or type(exc).__name__


def _load_key(path: Path) -> paramiko.PKey:
    # PKey.from_path (paramiko ≥ 3.2, guaranteed by our pin) recognises ed25519, ECDSA and RSA
    # keys in both the OpenSSH and the PEM formats.
    try:
        return paramiko.PKey.from_path(path)
    except OSError as exc:
        problem = f"cannot read it ({_reason(exc)})"
    except TypeError:
        # cryptography's way of saying the key needs a passphrase we do not have.
        problem = "it is encrypted; unattended workers need a key without a passphrase"
    except (ValueError, paramiko.SSHException, paramiko.pkey.UnknownKeyType) as exc:
        problem = f"it is not a supported private key (ed25519, ECDSA or RSA): {exc}"
    raise TransportError(f"key_file {path}: {problem}", retryable=False)


def _load_known_hosts(client: paramiko.SSHClient, path: Path) -> None:
    try:
        client.get_host_keys().load(str(path))
    except FileNotFoundError:
        pass  # no host known yet: every key is new, and the policy decides
    except (OSError, UnicodeDecodeError, paramiko.SSHException, InvalidHostKey) as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: Exception, doing: str = "read") -> TransportError:
    if isinstance(exc, InvalidHostKey):
        # paramiko skips lines it cannot parse, except a key that is not base64: that one
        # fails the whole file, and we would rather say so than trust a partial list.
        problem = f"malformed line {exc.line!r}"
    else:
        problem = f"cannot {doing} it ({_reason(exc)})"
    return TransportError(f"known_hosts {path}: {problem}", retryable=False)


# -- host keys ------------------------------------------------------------------------------------


class _StrictPolicy(paramiko.MissingHostKeyPolicy):
    """Refuses a host the known_hosts file does not list, or records it on first contact."""

    def __init__(self, host: str, port: int, known_hosts: Path, *, accept_new: bool) -> None:
        self.host = host
        self.port = port
        self.known_hosts = known_hosts
        self.accept_new = accept_new

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.accept_new:
            raise _unknown_key(self.host, self.port, self.known_hosts, key)
        try:
            _record_host_key(self.known_hosts, hostname, key, self.host, self.port)
        except (OSError, UnicodeDecodeError, paramiko.SSHException, InvalidHostKey) as exc:
            raise _unreadable(self.known_hosts, exc, "record the new host key in") from exc
        client.get_host_keys().add(hostname, key.get_name(), key)


def _unknown_key(host: str, port: int, known_hosts: Path, key: paramiko.PKey) -> HostKeyRejected:
    where = "" if known_hosts.exists() else " (the file does not exist yet)"
    return HostKeyRejected(
        f"the host key of {_bracketed(host)}:{port} is unknown: {key.get_name()} {key.fingerprint}. "
        f"To trust it, check that fingerprint on the host (ssh-keygen -lf on its host key), then add "
        f"the key to the known_hosts file {known_hosts}{where}, or set accept_new_host_key for a "
        f"first contact",
        host=host,
        port=port,
        key_type=key.get_name(),
        fingerprint=key.fingerprint,
    )


def _changed_key(
    host: str, port: int, known_hosts: Path, offered: paramiko.PKey, expected: paramiko.PKey
) -> HostKeyRejected:
    return HostKeyRejected(
        f"the host key of {_bracketed(host)}:{port} has CHANGED: it offered {offered.get_name()} "
        f"{offered.fingerprint}, but {known_hosts} holds {expected.get_name()} {expected.fingerprint}. "
        f"Someone may be intercepting the connection, or the host was reinstalled; if the change is "
        f"expected, replace the host's line in {known_hosts} with the new key",
        host=host,
        port=port,
        key_type=offered.get_name(),
        fingerprint=offered.fingerprint,
        changed=True,
    )


def _record_host_key(path: Path, hostname: str, key: paramiko.PKey, host: str, port: int) -> None:
    """Append the key for hostname to the known_hosts file, atomically, keeping every other line."""
    with _file_lock(path):
        # Another worker may have met the same host meanwhile: agree with it or refuse.
        recorded = paramiko.HostKeys()
        with contextlib.suppress(FileNotFoundError):
            recorded.load(str(path))
        entry = recorded.lookup(hostname)
        if entry is not None:
            known = entry.get(key.get_name())
            if known == key:
                return
            raise _changed_key(host, port, path, key, known or next(iter(entry.values())))
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            current = b""
        if current and not current.endswith(b"\n"):
            current += b"\n"
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n".encode()
        _replace(path, current + line)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # A sidecar lock, because the file itself is replaced by rename while we hold it.
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _replace(path: Path, data: bytes) -> None:
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# -- one command on a channel ---------------------------------------------------------------------


def _exchange(channel: paramiko.Channel, stdin: bytes, deadline: float) -> tuple[bytes, bytes, bool]:
    """Feed stdin and collect stdout and stderr until the command exits or the deadline passes.

    Both streams are read as they arrive: a command that fills one while we wait on the other
    would otherwise stall on its full SSH window forever.
    """
    out, err = bytearray(), bytearray()
    sent = _feed(channel, stdin, 0)
    # Readable whenever stdout or stderr has data, or the channel reached EOF.
    wake = channel.fileno()
    while True:
        sent = _feed(channel, stdin, sent)
        _drain(channel, out, err)
        remaining = deadline - time.monotonic()
        if channel.eof_received or channel.closed:
            # All output is in; the exit status follows (or the close stands in for it).
            finished = channel.status_event.wait(max(remaining, 0))
            _drain(channel, out, err)
            return bytes(out), bytes(err), finished
        if remaining <= 0:
            return bytes(out), bytes(err), False
        # While stdin is pending, wake up now and then to see whether the window reopened.
        select.select([wake], [], [], min(remaining, 0.05) if sent < len(stdin) else remaining)


def _feed(channel: paramiko.Channel, stdin: bytes, sent: int) -> int:
    """Send as much of stdin as the window takes; end it once all is sent."""
    if channel.closed:
        return len(stdin)  # the command is gone: nobody reads the rest
    try:
        while sent < len(stdin) and channel.send_ready():
            sent += channel.send(stdin[sent : sent + _CHUNK])
    except OSError:
        return len(stdin)  # closed since we looked
    if sent < len(stdin):
        return sent
    if not channel.eof_sent:
        channel.shutdown_write()
    return sent


def _drain(channel: paramiko.Channel, out: bytearray, err: bytearray) -> None:
    while channel.recv_ready():
        out += channel.recv(_CHUNK)
    while channel.recv_stderr_ready():
        err += channel.recv_stderr(_CHUNK)


def _bounded(args: tuple[str, ...], timeout: float) -> str:
    """The remote command line, killed on the host itself a moment after our deadline.

    Closing the channel alone leaves a hung command (and what it started) running on the
    host, and sshd refuses a "signal" request for root sessions (no privilege separation):
    coreutils' ``timeout`` on the host is what reliably stops it, root or not."""
    return shlex.join(["timeout", "-s", "KILL", str(math.ceil(timeout) + 1), *args])


# -- a host's connection settings -----------------------------------------------------------------

TRANSPORTS = ("ssh", "local")
_SSH_ONLY = ("address", "port", "username", "key_file", "known_hosts", "accept_new_host_key")
KNOWN_KEYS = frozenset(("transport", "libvirt_uri", *_SSH_ONLY))
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_USERNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$")
_FOR_SSH = " for transport ssh"
_ON_WORKERS = " (workers do not share a working directory)"


@dataclass(frozen=True)
class HostConnection:
    """How to reach one host, as its inventory record says.

    There is no password: authentication is by key only, and the record holds the private
    key file's path — its content is never read into the record (only the worker opens it,
    when it connects), so the record can be shown and stored without leaking a secret.
    """

    transport: str
    address: str | None = None
    port: int = 22
    username: str = "root"
    key_file: Path | None = None
    known_hosts: Path | None = None
    accept_new_host_key: bool = False
    libvirt_uri: str = "qemu:///system"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HostConnection:
        if not isinstance(config, Mapping):
            raise InvalidArgument(f"connection must be a mapping, got {config!r}", field="connection")
        fields = Fields(config, "connection.")
        unknown = sorted(set(config) - KNOWN_KEYS, key=str)
        if unknown:
            raise fields.error(str(unknown[0]), f"unknown setting; known: {', '.join(sorted(KNOWN_KEYS))}")
        transport = fields.choice("transport", TRANSPORTS, shown=", ".join(TRANSPORTS))
        uri = fields.text("libvirt_uri", "qemu:///system", _URI, "a libvirt URI such as qemu:///system")
        if transport == "local":
            return cls._local(fields, uri)
        # Key files are checked for shape only: they live on the workers, not where the record is written.
        return cls(
            transport="ssh",
            address=_address(fields),
            port=fields.integer("port", 22, 1, 65535, what="an integer from 1 to 65535"),
            username=fields.text("username", "root", _USERNAME, "a user name"),
            key_file=fields.absolute_path("key_file", required=_FOR_SSH, why=_ON_WORKERS),
            known_hosts=fields.absolute_path("known_hosts", required=_FOR_SSH, why=_ON_WORKERS),
            accept_new_host_key=fields.flag("accept_new_host_key"),
            libvirt_uri=uri,
        )

    @classmethod
    def _local(cls, fields: Fields, uri: str) -> HostConnection:
        # A stray SSH setting on a local host means the record is not what the operator thinks.
        stray = next((key for key in _SSH_ONLY if key in fields.raw), None)
        if stray is not None:
            raise fields.error(stray, "only applies to transport ssh; this host's transport is local")
        return cls(transport="local", libvirt_uri=uri)

    def open(self) -> Transport:
        if self.transport == "local":
            return LocalTransport()
        assert self.address is not None
        assert self.key_file is not None
        assert self.known_hosts is not None
        return SSHTransport(
            self.address,
            port=self.port,
            username=self.username,
            key_file=self.key_file,
            known_hosts=self.known_hosts,
            accept_new_host_key=self.accept_new_host_key,
        )

    def as_config(self) -> dict[str, Any]:
        """The settings, normalised and JSON-safe, to store back on the host record."""
        if self.transport == "local":
            return {"transport": "local", "libvirt_uri": self.libvirt_uri}
        return {
            "transport": "ssh",
            "address": self.address,
            "port": self.port,
            "username": self.username,
            "key_file": str(self.key_file),
            "known_hosts": str(self.known_hosts),
            "accept_new_host_key": self.accept_new_host_key,
            "libvirt_uri": self.libvirt_uri,
        }

    def absent_files(self) -> list[str]:
        """The key and known_hosts files that are not on this machine, each in a sentence.

        A warning, not an error: the record is written where the API runs, and the files
        are read on the workers, which may be other machines."""
        if self.transport == "local":
            return []
        needs = "every worker that reaches this host must have it at that path"
        out = []
        if self.key_file is not None and not self.key_file.is_file():
            out.append(f"key_file {self.key_file} is not a file on this machine: {needs}")
        if self.known_hosts is not None and not self.known_hosts.is_file():
            holding = (
                "or be able to create it (accept_new_host_key records the host's key at first contact)"
                if self.accept_new_host_key
                else "holding the host's key"
            )
            out.append(f"known_hosts {self.known_hosts} is not a file on this machine: {needs}, {holding}")
        return out

    def public(self) -> dict[str, Any]:
        """What the API and the CLI may show.

        Nothing here is secret: the key file is a path on the workers, not its content.
        Should a secret-bearing setting ever be added, it must be left out here.
        """
        return self.as_config()


def connect_host(config: Mapping[str, Any]) -> Transport:
    return HostConnection.from_config(config).open()


def _address(fields: Fields) -> str:
    value = fields.required("address", _FOR_SSH)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(value))
        if _HOSTNAME.match(value):
            return value
    raise fields.error("address", f"must be a host name or an IP address, got {value!r}")
