"""The vCenter host driver for ingestion: one host record stands for a vCenter, scoped to its
connection's datacenter and optional cluster; discovery lists that scope's VMs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from orchestrator.domain.secrets import REDACTED
from providers.hypervisor import DiscoveredVM, HostDriver
from providers.vsphere.connection import SECRET_KEYS, VCenterSettings, sessions
from providers.vsphere.inventory import Scope, read_vms


class VSphereHost(HostDriver):
    secret_settings: ClassVar[frozenset[str]] = SECRET_KEYS

    def __init__(self, connection: Mapping[str, Any]) -> None:
        super().__init__(connection)
        self._settings = VCenterSettings.from_config(self.connection)

    @classmethod
    def check_connection(cls, connection: Mapping[str, Any]) -> dict[str, Any]:
        return VCenterSettings.from_config(connection).as_config()

    @classmethod
    def public_connection(cls, connection: Mapping[str, Any]) -> dict[str, Any]:
        # A stored connection holds its password sealed (a mapping): what is shown never
        # depends on it.
        return VCenterSettings.from_config({**connection, "password": REDACTED}).public()

    @classmethod
    def connection_warnings(cls, connection: Mapping[str, Any]) -> list[str]:
        return VCenterSettings.from_config(connection).absent_files()

    def discover(self) -> list[DiscoveredVM]:
        s = self._settings
        scope = Scope(s.datacenter, s.cluster)
        where = f"datacenter {s.datacenter or '(first)'}" + (f", cluster {s.cluster}" if s.cluster else "")
        # The session stays open for the worker's next job: it is shared per process.
        session = sessions.get(s)
        return session.call(f"VM inventory of {where}", lambda _: read_vms(session, scope))
