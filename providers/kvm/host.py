"""The KVM host driver for ingestion: libvirt's view of a host, over SSH or locally."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from providers.hypervisor import DiscoveredVM, HostDriver
from providers.kvm.domains import Libvirt
from providers.kvm.transport import HostConnection, Transport


class KvmHost(HostDriver):
    def __init__(self, connection: Mapping[str, Any]) -> None:
        super().__init__(connection)
        self._settings = HostConnection.from_config(self.connection)
        self._transport: Transport | None = None

    @classmethod
    def check_connection(cls, connection: Mapping[str, Any]) -> dict[str, Any]:
        return HostConnection.from_config(connection).as_config()

    @classmethod
    def public_connection(cls, connection: Mapping[str, Any]) -> dict[str, Any]:
        return HostConnection.from_config(connection).public()

    @classmethod
    def connection_warnings(cls, connection: Mapping[str, Any]) -> list[str]:
        return HostConnection.from_config(connection).absent_files()

    def libvirt(self) -> Libvirt:
        if self._transport is None:
            self._transport = self._settings.open()
        return Libvirt(self._transport, self._settings.libvirt_uri)

    def discover(self) -> list[DiscoveredVM]:
        # Each is a superset of a DiscoveredVM (the driver keeps more), which a TypedDict cannot state.
        return [cast(DiscoveredVM, domain.to_dict()) for domain in self.libvirt().list_domains()]

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
