"""Reaching a vCenter: its settings as a host record stores them, and a logged-in session.

A vCenter host record holds the SDK URL, a user and a password (sealed at rest: the host
driver declares it secret), the datacenter and cluster it covers, and the certificate
authority to trust. Certificates are always verified: a vCenter with a private CA is trusted
by naming that CA's PEM file (``ca_file``), never by turning verification off.

One session per vCenter, user and password is kept per process (``sessions``) and reused by
every job a worker runs; it logs in again when vCenter says the session expired.
"""

from __future__ import annotations

import hashlib
import http.client
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from orchestrator.domain.errors import InvalidArgument, ProviderError
from orchestrator.domain.secrets import REDACTED
from providers.config import Fields

T = TypeVar("T")

KNOWN_KEYS = frozenset({"url", "username", "password", "datacenter", "cluster", "ca_file", "timeout_seconds"})
SECRET_KEYS = frozenset({"password"})
_ON_WORKERS = " (a PEM file on the machines that run the workers)"


@dataclass(frozen=True)
class VCenterSettings:
    url: str  # https://host[:port]/sdk
    username: str
    password: str
    datacenter: str | None = None
    cluster: str | None = None
    ca_file: Path | None = None
    timeout_seconds: int = 60

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VCenterSettings:
        if not isinstance(config, Mapping):
            raise InvalidArgument(f"connection must be a mapping, got {config!r}", field="connection")
        fields = Fields(config, "connection.")
        unknown = sorted(set(config) - KNOWN_KEYS, key=str)
        if unknown:
            raise fields.error(str(unknown[0]), f"unknown setting; known: {', '.join(sorted(KNOWN_KEYS))}")
        password = fields.required("password")
        if not isinstance(password, str) or not password:
            raise fields.error("password", "must be a non-empty string")
        return cls(
            url=_sdk_url(fields),
            username=_name(fields, "username", required=True) or "",
            password=password,
            datacenter=_name(fields, "datacenter"),
            cluster=_name(fields, "cluster"),
            ca_file=fields.absolute_path("ca_file", why=_ON_WORKERS),
            timeout_seconds=fields.integer("timeout_seconds", 60, 1, 3600, what="seconds from 1 to 3600"),
        )

    def as_config(self) -> dict[str, Any]:
        """The settings, normalised and JSON-safe, to store back on the host record."""
        config: dict[str, Any] = {
            "url": self.url,
            "username": self.username,
            "password": self.password,
            "timeout_seconds": self.timeout_seconds,
        }
        for key in ("datacenter", "cluster", "ca_file"):
            if (value := getattr(self, key)) is not None:
                config[key] = str(value)
        return config

    def public(self) -> dict[str, Any]:
        return {**self.as_config(), "password": REDACTED}

    def absent_files(self) -> list[str]:
        if self.ca_file is not None and not self.ca_file.is_file():
            return [
                f"connection.ca_file: {self.ca_file} is not on this machine; "
                "the workers that reach this vCenter need it"
            ]
        return []

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 443

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the certificate and host name: against ``ca_file`` alone when given, else
        against the system's trusted authorities."""
        try:
            return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ProviderError(
                f"vCenter {self.host}: cannot read connection.ca_file {self.ca_file}: {exc}", retryable=False
            ) from None

    def key(self) -> tuple[str, ...]:
        """What tells two sessions apart; the password only as a digest."""
        digest = hashlib.sha256(self.password.encode()).hexdigest()
        return (self.url, self.username, digest, str(self.ca_file or ""), str(self.timeout_seconds))


def _sdk_url(fields: Fields) -> str:
    raw = fields.required("url")
    if not isinstance(raw, str):
        raise fields.error("url", f"must be a URL such as https://vcenter.example.com/sdk, got {raw!r}")
    # A bare host name is the common way to name a vCenter.
    parts = urlsplit(raw if "://" in raw else f"https://{raw}")
    if parts.scheme != "https":
        raise fields.error("url", f"must use https (vCenter sessions carry a password), got {raw!r}")
    try:
        port = parts.port
    except ValueError:
        raise fields.error("url", f"has a bad port: {raw!r}") from None
    if not parts.hostname or parts.username or parts.query or parts.fragment:
        raise fields.error("url", f"must be https://HOST[:PORT][/sdk] without credentials, got {raw!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"https://{host}{f':{port}' if port else ''}{parts.path.rstrip('/') or '/sdk'}"


def _name(fields: Fields, key: str, *, required: bool = False) -> str | None:
    value = fields.required(key) if required else fields.raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or any(ord(c) < 32 for c in value):
        raise fields.error(key, f"must be a non-empty name, got {value!r}")
    return value


def describe_fault(exc: BaseException) -> str:
    """A vCenter fault as its type and message, nothing else (no stack, no request)."""
    if isinstance(exc, vmodl.MethodFault):
        message = getattr(exc, "msg", None) or ""
        if not message and getattr(exc, "faultMessage", None):
            message = "; ".join(m.message for m in exc.faultMessage if m.message)
        return f"{type(exc).__name__.rsplit('.', 1)[-1]}{f': {message}' if message else ''}"
    return f"{type(exc).__name__}: {exc}"


# Errors that mean vCenter could not be reached or went away (a refused certificate is
# caught before these): worth a retry later.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)

# pyVmomi's stubs do not say its faults are exceptions.
_METHOD_FAULT = cast(type[BaseException], vmodl.MethodFault)


class VCenterSession:
    """A logged-in session with one vCenter, shared by the jobs of a process."""

    def __init__(self, settings: VCenterSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._si: vim.ServiceInstance | None = None

    def service_instance(self) -> vim.ServiceInstance:
        with self._lock:
            if self._si is None:
                self._si = self._login()
            return self._si

    def call(self, what: str, fn: Callable[[vim.ServiceInstance], T]) -> T:
        """``fn`` on the session, logging in again once if vCenter says the session expired;
        ``what`` names the object in errors."""
        for attempt in (1, 2):
            si = self.service_instance()
            try:
                return fn(si)
            except vim.fault.NotAuthenticated:
                self._forget(si)
                if attempt == 2:
                    raise ProviderError(f"vCenter {self.settings.host}: {what}: not authenticated") from None
            except vmodl.MethodFault as exc:
                raise ProviderError(
                    f"vCenter {self.settings.host}: {what}: {describe_fault(exc)}", retryable=False
                ) from None
            except ssl.SSLCertVerificationError as exc:
                raise self._ssl_error(exc) from None
            except NETWORK_ERRORS as exc:
                self._forget(si)
                raise ProviderError(f"vCenter {self.settings.host}: {what}: {describe_fault(exc)}") from None
        raise AssertionError("unreachable")

    def cookie(self) -> str:
        """The session cookie, for the datastore's HTTP interface (``vmware_soap_session=...``)."""
        stub = self.service_instance()._stub
        return str(stub.cookie).split(";", 1)[0]

    def close(self) -> None:
        with self._lock:
            si, self._si = self._si, None
        if si is not None:
            try:
                Disconnect(si)
            except (_METHOD_FAULT, *NETWORK_ERRORS):
                pass  # the session dies with vCenter's idle timeout anyway

    def _forget(self, si: vim.ServiceInstance) -> None:
        with self._lock:
            if self._si is si:
                self._si = None

    def _login(self) -> vim.ServiceInstance:
        s = self.settings
        try:
            return SmartConnect(
                host=s.host,
                port=s.port,
                path=urlsplit(s.url).path,
                user=s.username,
                pwd=s.password,
                sslContext=s.ssl_context(),
                httpConnectionTimeout=s.timeout_seconds,
            )
        except vim.fault.InvalidLogin:
            raise ProviderError(
                f"vCenter {s.host}: login as {s.username} refused: wrong user name or password",
                retryable=False,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise self._ssl_error(exc) from None
        except vmodl.MethodFault as exc:
            raise ProviderError(f"vCenter {s.host}: login: {describe_fault(exc)}", retryable=False) from None
        except OSError as exc:
            raise ProviderError(f"vCenter {s.host}: cannot connect to {s.url}: {exc}") from None

    def _ssl_error(self, exc: ssl.SSLCertVerificationError) -> ProviderError:
        s = self.settings
        trusted = f"the CA in {s.ca_file}" if s.ca_file else "the system's trusted CAs"
        reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        return ProviderError(
            f"vCenter {s.host}: certificate refused ({reason}); it is checked against {trusted}: "
            "set connection.ca_file to the PEM of the CA that signed it",
            retryable=False,
        )


class Sessions:
    """The process's sessions, one per vCenter, user and password."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[str, ...], VCenterSession] = {}

    def get(self, settings: VCenterSettings) -> VCenterSession:
        with self._lock:
            session = self._open.get(settings.key())
            if session is None:
                session = self._open[settings.key()] = VCenterSession(settings)
            return session

    def close_all(self) -> None:
        with self._lock:
            sessions, self._open = list(self._open.values()), {}
        for session in sessions:
            session.close()


sessions = Sessions()
