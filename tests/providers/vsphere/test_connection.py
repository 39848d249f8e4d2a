"""Reaching vCenter: settings checked, certificates verified against the CA named, one
session reused and renewed when it expires, and errors that name the fault and nothing else."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from pyVmomi import vim

from orchestrator.domain.errors import InvalidArgument, ProviderError
from providers.vsphere.connection import VCenterSettings, sessions
from tests.peers.vcsim import Vcsim


def settings(sim: Vcsim, **extra: object) -> VCenterSettings:
    return VCenterSettings.from_config(sim.connection(**extra))


def test_settings_are_normalised_and_the_password_never_shown() -> None:
    s = VCenterSettings.from_config({"url": "vc.example.com:8443", "username": "u", "password": "p"})
    assert s.url == "https://vc.example.com:8443/sdk"
    assert s.public()["password"] == "********"
    assert "p" not in (s.public()["password"],)
    assert VCenterSettings.from_config(s.as_config()) == s


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"url": "http://vc", "username": "u", "password": "p"}, "connection.url"),
        ({"url": "https://u:p@vc/sdk", "username": "u", "password": "p"}, "connection.url"),
        ({"url": "https://vc", "username": "u"}, "connection.password"),
        ({"url": "https://vc", "username": "u", "password": "p", "verify": False}, "connection.verify"),
        ({"url": "https://vc", "username": "u", "password": "p", "ca_file": "ca.pem"}, "connection.ca_file"),
        ({"url": "https://vc", "username": "", "password": "p"}, "connection.username"),
    ],
)
def test_bad_settings_name_the_setting(config: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        VCenterSettings.from_config(config)
    assert err.value.field == field


def test_a_session_is_reused_and_renewed_when_it_expires(vcenter: Vcsim) -> None:
    session = sessions.get(settings(vcenter))
    assert sessions.get(settings(vcenter)) is session
    first = session.call("session", lambda si: si.content.sessionManager.currentSession.key)
    assert session.call("session", lambda si: si.content.sessionManager.currentSession.key) == first

    # vCenter ends the session (an idle timeout, a restart): the next call logs in again.
    session.service_instance().content.sessionManager.Logout()
    about = session.call("about", lambda si: si.content.rootFolder.childEntity[0].name)
    assert about == "DC0"
    assert session.call("session", lambda si: si.content.sessionManager.currentSession.key) != first


def test_a_certificate_from_an_untrusted_ca_is_refused(vcenter: Vcsim) -> None:
    config = vcenter.connection()
    del config["ca_file"]  # the system's CAs do not include the simulator's
    session = sessions.get(VCenterSettings.from_config(config))
    with pytest.raises(ProviderError) as err:
        session.call("about", lambda si: si.content.about.fullName)
    assert "certificate refused" in str(err.value)
    assert "connection.ca_file" in str(err.value)
    assert not err.value.retryable


def test_a_certificate_signed_by_another_ca_is_refused(vcenter: Vcsim, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_text(Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")).read_text())
    session = sessions.get(settings(vcenter, ca_file=str(other)))
    with pytest.raises(ProviderError, match="certificate refused"):
        session.call("about", lambda si: si.content.about.fullName)


def test_a_wrong_password_is_refused_without_echoing_it(vcenter: Vcsim) -> None:
    session = sessions.get(settings(vcenter, password="not-the-Password-42"))
    with pytest.raises(ProviderError) as err:
        session.call("about", lambda si: si.content.about.fullName)
    assert "login as administrator@vsphere.local refused" in str(err.value)
    assert "not-the-Password-42" not in str(err.value)
    assert not err.value.retryable


def test_a_fault_names_the_object_and_the_fault(vcenter: Vcsim) -> None:
    session = sessions.get(settings(vcenter))

    def missing(si: vim.ServiceInstance) -> object:
        vm = vim.VirtualMachine("vm-does-not-exist", si._stub)
        return vm.name

    with pytest.raises(ProviderError) as err:
        session.call("VM vm-does-not-exist", missing)
    assert str(err.value).startswith("vCenter 127.0.0.1: VM vm-does-not-exist: ManagedObjectNotFound")


def test_a_vcenter_that_goes_away_gives_a_retryable_error(vcenter: Vcsim) -> None:
    session = sessions.get(settings(vcenter, timeout_seconds=5))
    session.call("about", lambda si: si.content.about.fullName)
    os.kill(vcenter.pid, signal.SIGTERM)
    host, port = vcenter.address.split(":")
    for _ in range(100):  # until it no longer listens
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError:
            break
        time.sleep(0.05)
    with pytest.raises(ProviderError) as err:
        session.call("about", lambda si: si.content.about.fullName)
    assert err.value.retryable
    assert "vCenter 127.0.0.1" in str(err.value)
