"""The transports against a real OpenSSH server (and the local machine): output, exit status,
stdin, timeouts, host-key trust, authentication and the host connection settings."""

from __future__ import annotations

import json
import pickle
import random
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.domain.errors import InvalidArgument, ProviderError
from providers.kvm.transport import (
    CommandFailed,
    CommandResult,
    CommandTimeout,
    HostConnection,
    HostKeyRejected,
    LocalTransport,
    SSHTransport,
    Transport,
    TransportError,
    connect_host,
)
from tests.providers.kvm.conftest import SshServer, free_port, write_known_hosts

MiB = 2**20
# Arguments a shell would mangle: quotes, expansions, globs, empty and repeated spaces.
TRICKY = ["it's", 'say "hi"', "$HOME and `id` and $(id)", "back\\slash", "a  b", "", "*", "; true"]


@pytest.fixture
def known_hosts(tmp_path: Path, sshd: SshServer) -> Path:
    return write_known_hosts(tmp_path / "known_hosts", sshd)


def ssh_to(sshd: SshServer, known_hosts: Path, **options: Any) -> SSHTransport:
    options.setdefault("key_file", sshd.client_key)
    return SSHTransport(sshd.host, port=sshd.port, known_hosts=known_hosts, **options)


@pytest.fixture
def ssh(sshd: SshServer, known_hosts: Path) -> Iterator[SSHTransport]:
    with ssh_to(sshd, known_hosts) as transport:
        yield transport


@pytest.fixture(params=["ssh", "local"])
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    if request.param == "ssh":
        yield request.getfixturevalue("ssh")
    else:
        with LocalTransport() as local:
            yield local


def processes_with(marker: str) -> list[int]:
    """The processes (started by these tests) whose command line holds marker."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it exited while we looked
        if marker in text:
            found.append(int(cmdline.parent.name))
    return found


def wait_until_gone(marker: str, within: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# -- both transports ------------------------------------------------------------------------------


def test_arguments_reach_the_command_unchanged(transport: Transport) -> None:
    result = transport.run(["printf", "%s\\n", *TRICKY])

    assert result.text == "".join(f"{arg}\n" for arg in TRICKY)
    assert result.argv == ("printf", "%s\\n", *TRICKY)


def test_stdout_stderr_and_exit_status(transport: Transport) -> None:
    result = transport.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)

    assert result == CommandResult(("sh", "-c", "echo out; echo err >&2; exit 3"), 3, b"out\n", b"err\n")


def test_a_non_zero_exit_raises_with_stderr_in_the_message(transport: Transport) -> None:
    argv = ["sh", "-c", "echo progress; echo 'disk full: $HOME' >&2; exit 4"]

    with pytest.raises(CommandFailed) as caught:
        transport.run(argv)

    error = caught.value
    assert error.message == (
        "`sh -c 'echo progress; echo '\"'\"'disk full: $HOME'\"'\"' >&2; exit 4'` "
        f"on {transport.name} exited with 4: disk full: $HOME"
    )
    assert (error.exit_status, error.stderr, error.retryable) == (4, b"disk full: $HOME\n", False)


def test_the_failure_message_keeps_the_last_lines_of_a_long_stderr(transport: Transport) -> None:
    argv = ["sh", "-c", "yes noise | head -n 50000 >&2; echo 'the real reason' >&2; exit 1"]

    with pytest.raises(CommandFailed) as caught:
        transport.run(argv)

    assert "exited with 1: …\nnoise\n" in caught.value.message
    assert caught.value.message.endswith("noise\nthe real reason")
    assert len(caught.value.message) < 2300
    assert len(caught.value.stderr) == 50000 * 6 + 16


def test_stdin_is_fed_while_output_is_read(transport: Transport) -> None:
    # Larger than any SSH window, in and out at once: a naive send-then-read would deadlock.
    data = random.randbytes(4 * MiB)

    assert transport.run(["cat"], input=data).stdout == data


def test_a_command_that_stops_reading_its_input(transport: Transport) -> None:
    data = random.randbytes(4 * MiB)

    assert transport.run(["head", "-c", "10"], input=data).stdout == data[:10]
    assert transport.run(["true"], input=data).exit_status == 0
    assert transport.run(["echo", "next"]).text == "next\n"


def test_without_input_the_command_sees_an_empty_stdin(transport: Transport) -> None:
    assert transport.run(["cat"], timeout=5).stdout == b""
    assert transport.run(["wc", "-c"], input=b"", timeout=5).text.strip() == "0"


def test_large_output_on_both_streams(transport: Transport) -> None:
    argv = [
        "sh",
        "-c",
        "head -c 3000000 /dev/zero >&2; head -c 2000000 /dev/zero; head -c 1000 /dev/zero >&2",
    ]

    result = transport.run(argv)

    assert (len(result.stdout), len(result.stderr)) == (2_000_000, 3_001_000)


def test_a_hanging_command_times_out_and_the_transport_still_works(transport: Transport) -> None:
    marker = f"29.{random.randrange(10**6):06d}"  # sleep accepts it, and nothing else runs it
    started = time.monotonic()

    with pytest.raises(CommandTimeout) as caught:
        transport.run(["sh", "-c", f"sleep {marker}; echo never"], timeout=1)

    assert 0.9 <= time.monotonic() - started < 2.0
    assert caught.value.message == (
        f"`sh -c 'sleep {marker}; echo never'` on {transport.name} did not finish within 1 s and was stopped"
    )
    assert caught.value.retryable
    assert transport.run(["echo", "still usable"]).text == "still usable\n"
    # Nothing is left running on the host (over SSH, its own `timeout` kills it, root or not).
    assert wait_until_gone(marker) == []


def test_a_local_command_that_times_out_is_killed_with_what_it_started() -> None:
    marker = f"29.{random.randrange(10**6):06d}"

    with pytest.raises(CommandTimeout):
        LocalTransport().run(["sh", "-c", f"sleep {marker}; echo never"], timeout=0.5)

    assert wait_until_gone(marker) == []


def test_a_missing_program_fails_as_in_a_shell(transport: Transport) -> None:
    with pytest.raises(CommandFailed) as caught:
        transport.run(["no-such-tool-here", "--version"])

    assert caught.value.exit_status == 127
    assert "no-such-tool-here" in caught.value.message


def test_a_command_killed_by_a_signal() -> None:
    # Locally reported as a shell would (128 + N) ...
    with pytest.raises(CommandFailed, match=r"exited with 137: \(no output on stderr\)$"):
        LocalTransport().run(["sh", "-c", "kill -9 $$"])


def test_a_remote_command_killed_by_a_signal(ssh: SSHTransport) -> None:
    # ... but over SSH paramiko drops the server's exit-signal message: no status at all.
    result = ssh.run(["sh", "-c", "kill -9 $$"], check=False)

    assert result.exit_status == -1
    with pytest.raises(CommandFailed, match="ended without an exit status"):
        ssh.run(["sh", "-c", "kill -9 $$"])
    assert ssh.run(["true"]).exit_status == 0


def test_argv_must_be_a_list_of_arguments(transport: Transport) -> None:
    with pytest.raises(TypeError):
        transport.run("echo hi")
    with pytest.raises(ValueError, match="empty"):
        transport.run([])
    with pytest.raises(ValueError, match="NUL"):
        transport.run(["echo", "a\0b"])
    with pytest.raises(ValueError, match="timeout"):
        transport.run(["true"], timeout=0)


def test_both_are_transports(ssh: SSHTransport) -> None:
    assert isinstance(ssh, Transport)
    assert isinstance(LocalTransport(), Transport)
    assert LocalTransport().name == "local"


# -- SSH: connection ------------------------------------------------------------------------------


def remote_end(transport: Transport) -> str:
    # $SSH_CONNECTION names the client's port: the same port means the same connection.
    return transport.run(["sh", "-c", 'echo "$SSH_CONNECTION"']).text.split()[1]


def test_the_connection_is_opened_on_first_use_and_reused(sshd: SshServer, ssh: SSHTransport) -> None:
    assert ssh.name == f"root@127.0.0.1:{sshd.port}"
    assert remote_end(ssh) == remote_end(ssh)


def test_a_dropped_connection_is_reopened_on_the_next_run(ssh: SSHTransport) -> None:
    before = remote_end(ssh)

    # Kills the sshd process serving this connection (the parent of the host's `timeout`
    # around the command), as a network failure would.
    with pytest.raises(TransportError, match="lost") as caught:
        ssh.run(["sh", "-c", "kill -9 $(ps -o ppid= -p $PPID)"])

    assert caught.value.retryable
    assert remote_end(ssh) != before


def test_commands_run_concurrently_on_one_connection(ssh: SSHTransport) -> None:
    results: list[str] = []
    started = time.monotonic()

    def one(i: int) -> None:
        results.append(ssh.run(["sh", "-c", f"sleep 1; echo {i}"]).text.strip())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == ["0", "1", "2", "3"]
    # One after another they would take 4 s; the margin is for a busy machine.
    assert time.monotonic() - started < 3.0


def test_construction_does_not_connect_and_a_refused_connection_is_retryable(
    sshd: SshServer, known_hosts: Path
) -> None:
    port = free_port()  # nothing listens there
    transport = SSHTransport("127.0.0.1", port=port, key_file=sshd.client_key, known_hosts=known_hosts)

    with pytest.raises(TransportError) as caught:
        transport.run(["true"])

    assert caught.value.message == f"cannot connect to root@127.0.0.1:{port}: connection refused"
    assert caught.value.retryable


def test_a_server_that_never_answers_times_out(sshd: SshServer, known_hosts: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        transport = SSHTransport(
            "127.0.0.1", port=port, key_file=sshd.client_key, known_hosts=known_hosts, connect_timeout=0.5
        )
        started = time.monotonic()

        with pytest.raises(TransportError, match=f"cannot connect to root@127.0.0.1:{port}") as caught:
            transport.run(["true"])

    assert time.monotonic() - started < 3
    assert caught.value.retryable


# -- SSH: host keys -------------------------------------------------------------------------------


def test_an_unknown_host_key_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"# the fleet\n[10.0.0.9]:22 {sshd.other_host_public_key}\n")
    before = known_hosts.read_bytes()

    with pytest.raises(HostKeyRejected) as caught, ssh_to(sshd, known_hosts) as transport:
        transport.run(["true"])

    error = caught.value
    assert f"127.0.0.1:{sshd.port} is unknown: ssh-ed25519 {sshd.host_fingerprint}" in error.message
    assert f"add the key to the known_hosts file {known_hosts}" in error.message
    assert "accept_new_host_key" in error.message
    assert (error.changed, error.key_type, error.fingerprint) == (False, "ssh-ed25519", sshd.host_fingerprint)
    assert not error.retryable
    assert known_hosts.read_bytes() == before


def test_without_a_known_hosts_file_every_host_is_unknown(sshd: SshServer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"

    with pytest.raises(HostKeyRejected, match="does not exist"), ssh_to(sshd, known_hosts) as transport:
        transport.run(["true"])

    assert not known_hosts.exists()


def test_accept_new_host_key_records_the_key_and_keeps_other_lines(sshd: SshServer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    # No final newline, and a mode of its own: both must survive the rewrite.
    before = f"# the fleet\n[10.0.0.9]:22 {sshd.other_host_public_key}"
    known_hosts.write_text(before)
    known_hosts.chmod(0o600)

    with ssh_to(sshd, known_hosts, accept_new_host_key=True) as first:
        assert first.run(["echo", "first contact"]).text == "first contact\n"

    assert known_hosts.read_text() == f"{before}\n{sshd.known_hosts_name} {sshd.host_public_key}\n"
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    with ssh_to(sshd, known_hosts) as strict:
        assert strict.run(["echo", "known now"]).text == "known now\n"
    with ssh_to(sshd, known_hosts, accept_new_host_key=True) as again:
        again.run(["true"])
    assert known_hosts.read_text().count(sshd.host_public_key) == 1


def test_accept_new_host_key_creates_the_file(sshd: SshServer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"

    with ssh_to(sshd, known_hosts, accept_new_host_key=True) as transport:
        transport.run(["true"])

    assert known_hosts.read_text() == f"{sshd.known_hosts_name} {sshd.host_public_key}\n"


@pytest.mark.parametrize("accept_new", [False, True])
def test_a_changed_host_key_is_always_refused(sshd: SshServer, tmp_path: Path, accept_new: bool) -> None:
    known_hosts = write_known_hosts(tmp_path / "known_hosts", sshd, sshd.other_host_public_key)
    before = known_hosts.read_bytes()

    with (
        pytest.raises(HostKeyRejected) as caught,
        ssh_to(sshd, known_hosts, accept_new_host_key=accept_new) as transport,
    ):
        transport.run(["true"])

    error = caught.value
    assert error.changed
    assert f"127.0.0.1:{sshd.port} has CHANGED" in error.message
    assert sshd.host_fingerprint in error.message
    assert sshd.other_host_fingerprint in error.message
    assert "accept_new_host_key" not in error.message
    assert not error.retryable
    assert known_hosts.read_bytes() == before


def test_a_malformed_known_hosts_file_is_named(sshd: SshServer, tmp_path: Path) -> None:
    known_hosts = write_known_hosts(tmp_path / "known_hosts", sshd, extra=["[10.0.0.9]:22 ssh-ed25519 AAAAA"])

    with pytest.raises(TransportError) as caught, ssh_to(sshd, known_hosts) as transport:
        transport.run(["true"])

    assert caught.value.message.startswith(f"known_hosts {known_hosts}: malformed line '[10.0.0.9]:22")
    assert not caught.value.retryable


def test_a_key_that_cannot_be_recorded_is_named(sshd: SshServer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "missing-directory" / "known_hosts"

    with (
        pytest.raises(TransportError) as caught,
        ssh_to(sshd, known_hosts, accept_new_host_key=True) as transport,
    ):
        transport.run(["true"])

    assert caught.value.message == (
        f"known_hosts {known_hosts}: cannot record the new host key in it (no such file or directory)"
    )
    assert not caught.value.retryable


# -- SSH: client keys -----------------------------------------------------------------------------


def test_a_key_the_server_does_not_accept_fails_authentication(sshd: SshServer, known_hosts: Path) -> None:
    with (
        pytest.raises(TransportError) as caught,
        ssh_to(sshd, known_hosts, key_file=sshd.stranger_key) as transport,
    ):
        transport.run(["true"])

    assert not isinstance(caught.value, HostKeyRejected)
    assert caught.value.message.lower().startswith(
        f"root@127.0.0.1:{sshd.port} refused the key {sshd.stranger_key}: authentication failed"
    )
    assert "authorized_keys" in caught.value.message
    assert not caught.value.retryable


@pytest.mark.parametrize("kind", ["ecdsa", "rsa", "rsa-pem"])
def test_other_key_types_authenticate(sshd: SshServer, known_hosts: Path, kind: str) -> None:
    with ssh_to(sshd, known_hosts, key_file=sshd.client_keys[kind]) as transport:
        assert transport.run(["echo", kind]).text == f"{kind}\n"


def encrypted_key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(path)], check=True)
    return path


@pytest.mark.parametrize(
    ("make_key", "problem"),
    [
        (lambda path: path, "cannot read it (no such file or directory)"),
        (lambda path: path.write_text("not a key\n") and path, "it is not a supported private key"),
        (encrypted_key, "it is encrypted"),
    ],
    ids=["missing", "garbage", "encrypted"],
)
def test_an_unusable_key_file_is_named(
    sshd: SshServer, known_hosts: Path, tmp_path: Path, make_key: Any, problem: str
) -> None:
    key = make_key(tmp_path / "key")

    with pytest.raises(TransportError) as caught, ssh_to(sshd, known_hosts, key_file=key) as transport:
        transport.run(["true"])

    assert caught.value.message.startswith(f"key_file {key}: {problem}")
    assert not caught.value.retryable


# -- errors ---------------------------------------------------------------------------------------


def test_errors_are_provider_errors_that_say_whether_to_retry() -> None:
    assert issubclass(TransportError, ProviderError)
    assert TransportError("x").retryable
    assert CommandTimeout("x").retryable
    assert not CommandFailed("x").retryable
    assert not HostKeyRejected("x").retryable


def test_errors_survive_pickling() -> None:
    original = CommandFailed("`false` on local exited with 1", exit_status=1, stderr=b"e")

    error = pickle.loads(pickle.dumps(original))  # noqa: S301 - our own bytes

    assert (error.message, error.exit_status, error.stderr, error.retryable) == (
        "`false` on local exited with 1",
        1,
        b"e",
        False,
    )


# -- a host's connection settings -----------------------------------------------------------------

GOOD = {
    "transport": "ssh",
    "address": "kvm-01.example.net",
    "port": 2222,
    "username": "backup",
    "key_file": "/etc/backup-orchestrator/id_ed25519",
    "known_hosts": "/etc/backup-orchestrator/known_hosts",
    "accept_new_host_key": True,
    "libvirt_uri": "qemu:///session",
}


def test_a_full_ssh_config_is_accepted() -> None:
    connection = HostConnection.from_config(GOOD)

    assert connection == HostConnection(
        transport="ssh",
        address="kvm-01.example.net",
        port=2222,
        username="backup",
        key_file=Path("/etc/backup-orchestrator/id_ed25519"),
        known_hosts=Path("/etc/backup-orchestrator/known_hosts"),
        accept_new_host_key=True,
        libvirt_uri="qemu:///session",
    )
    assert connection.public() == GOOD
    assert HostConnection.from_config(connection.as_config()) == connection


def test_defaults_and_addresses() -> None:
    minimal = {"transport": "ssh", "address": "10.0.0.5", "key_file": "/k", "known_hosts": "/kh"}

    connection = HostConnection.from_config(minimal)

    assert (connection.port, connection.username, connection.accept_new_host_key) == (22, "root", False)
    assert connection.libvirt_uri == "qemu:///system"
    assert HostConnection.from_config({**minimal, "address": "fe80::1"}).address == "fe80::1"
    opened = HostConnection.from_config({**minimal, "address": "fe80::1"}).open()
    assert opened.name == "root@[fe80::1]:22"


def test_a_local_config() -> None:
    connection = HostConnection.from_config({"transport": "local"})

    assert connection.public() == {"transport": "local", "libvirt_uri": "qemu:///system"}
    assert isinstance(connection.open(), LocalTransport)


def test_the_public_view_never_holds_key_material(sshd: SshServer) -> None:
    config = {**GOOD, "key_file": str(sshd.client_key)}

    shown = json.dumps(HostConnection.from_config(config).public())

    assert "PRIVATE KEY" not in shown
    assert sshd.client_key.read_text().splitlines()[1] not in shown


WITHOUT = object()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"transport": "telnet"}, "transport"),
        ({"transport": WITHOUT}, "transport"),
        ({"password": "hunter2"}, "password"),
        ({"address": WITHOUT}, "address"),
        ({"address": "root@kvm-01"}, "address"),
        ({"address": "kvm 01"}, "address"),
        ({"address": 10}, "address"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"port": "22"}, "port"),
        ({"port": True}, "port"),
        ({"username": ""}, "username"),
        ({"username": "root; rm -rf /"}, "username"),
        ({"username": 0}, "username"),
        ({"key_file": WITHOUT}, "key_file"),
        ({"key_file": "id_ed25519"}, "key_file"),
        ({"key_file": 5}, "key_file"),
        ({"known_hosts": WITHOUT}, "known_hosts"),
        ({"known_hosts": ""}, "known_hosts"),
        ({"accept_new_host_key": "yes"}, "accept_new_host_key"),
        ({"accept_new_host_key": 1}, "accept_new_host_key"),
        ({"libvirt_uri": ""}, "libvirt_uri"),
        ({"libvirt_uri": 3}, "libvirt_uri"),
    ],
)
def test_a_bad_setting_is_refused_with_its_field(change: dict[str, Any], field: str) -> None:
    config = {key: value for key, value in {**GOOD, **change}.items() if value is not WITHOUT}

    with pytest.raises(InvalidArgument) as caught:
        HostConnection.from_config(config)

    assert caught.value.field == f"connection.{field}"
    assert caught.value.message.startswith(f"connection.{field}: ")


def test_ssh_settings_are_refused_on_a_local_host() -> None:
    with pytest.raises(InvalidArgument) as caught:
        HostConnection.from_config({"transport": "local", "address": "kvm-01"})

    assert caught.value.field == "connection.address"
    assert "only applies to transport ssh" in caught.value.message


def test_a_config_must_be_a_mapping() -> None:
    with pytest.raises(InvalidArgument) as caught:
        HostConnection.from_config(["ssh"])  # type: ignore[arg-type]

    assert caught.value.field == "connection"


def test_connect_host_opens_a_working_transport(sshd: SshServer, known_hosts: Path) -> None:
    config = {
        "transport": "ssh",
        "address": sshd.host,
        "port": sshd.port,
        "key_file": str(sshd.client_key),
        "known_hosts": str(known_hosts),
    }

    transport = connect_host(config)
    try:
        assert transport.run(["echo", "over ssh"]).text == "over ssh\n"
    finally:
        transport.close()
    assert connect_host({"transport": "local"}).run(["echo", "here"]).text == "here\n"
