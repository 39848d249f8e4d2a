"""A datastore's files over vCenter's HTTP interface: ranged reads, whole-file writes.

``GET|PUT|HEAD https://VCENTER/folder/<path>?dcPath=<datacenter>&dsName=<datastore>`` with
the SOAP session's cookie, the certificate checked against the connection's CA like the SDK
itself. Reads are ranged (``Range: bytes=a-b``) so a disk is read chunk by chunk by many
threads, each on a connection of its own; writes stream a file's bytes with its length.

A VMFS or NFS disk ``dir/disk.vmdk`` is a small text descriptor beside its data,
``dir/disk-flat.vmdk``: the data file is what is read and written, byte for byte the disk.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

from orchestrator.domain.errors import ProviderError
from providers.vsphere.connection import NETWORK_ERRORS, VCenterSettings

_DS_PATH = re.compile(r"^\[(?P<ds>[^\]]+)\]\s*(?P<rel>.*)$")


@dataclass(frozen=True)
class DatastorePath:
    """``[datastore] dir/file`` as vSphere names a file."""

    datastore: str
    relative: str

    @classmethod
    def parse(cls, text: str) -> DatastorePath:
        found = _DS_PATH.match(text or "")
        if found is None or not found["rel"]:
            raise ProviderError(
                f"{text!r} is not a datastore path like '[datastore] dir/disk.vmdk'", retryable=False
            )
        return cls(found["ds"], found["rel"])

    def __str__(self) -> str:
        return f"[{self.datastore}] {self.relative}"

    @property
    def directory(self) -> str:
        return self.relative.rsplit("/", 1)[0] if "/" in self.relative else ""

    def sibling(self, name: str) -> DatastorePath:
        return DatastorePath(self.datastore, f"{self.directory}/{name}" if self.directory else name)

    def flat(self) -> DatastorePath:
        """The data file of a flat disk's descriptor (``disk.vmdk`` -> ``disk-flat.vmdk``)."""
        if not self.relative.endswith(".vmdk") or self.relative.endswith("-flat.vmdk"):
            return self
        return DatastorePath(self.datastore, self.relative[: -len(".vmdk")] + "-flat.vmdk")


class Datastores:
    """The datastores of one datacenter, reached through its vCenter."""

    def __init__(self, settings: VCenterSettings, datacenter: str, cookie: Callable[[], str]) -> None:
        self.settings = settings
        self.datacenter = datacenter
        self.cookie = cookie
        self._context = settings.ssl_context()
        self._local = threading.local()
        self._all: list[http.client.HTTPSConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPSConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPSConnection(
                self.settings.host,
                self.settings.port,
                context=self._context,
                timeout=self.settings.timeout_seconds,
            )
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def _target(self, path: DatastorePath) -> str:
        query = f"dcPath={quote(self.datacenter, safe='')}&dsName={quote(path.datastore, safe='')}"
        return f"/folder/{quote(path.relative)}?{query}"

    def _request(
        self,
        method: str,
        path: DatastorePath,
        what: str,
        headers: dict[str, str],
        body: Iterable[bytes] | bytes | None = None,
    ) -> tuple[int, bytes, http.client.HTTPResponse]:
        # A kept-alive connection the server closed meanwhile fails at once: a read (not a
        # streamed write, whose body is spent) is tried once more on a fresh connection.
        tries = 2 if method in ("GET", "HEAD") else 1
        for attempt in range(1, tries + 1):
            connection = self._connection()
            try:
                connection.request(
                    method, self._target(path), body=body, headers={"Cookie": self.cookie(), **headers}
                )
                response = connection.getresponse()
                return response.status, response.read(), response
            except ssl.SSLCertVerificationError as exc:
                self._drop(connection)
                raise ProviderError(
                    f"vCenter {self.settings.host}: certificate refused while {what} {path}: "
                    f"{exc.verify_message}",
                    retryable=False,
                ) from None
            except NETWORK_ERRORS as exc:
                self._drop(connection)
                if attempt == tries:
                    # vCenter went away or the connection broke: the job can be tried again.
                    raise ProviderError(
                        f"vCenter {self.settings.host}: {what} {path}: {type(exc).__name__}: {exc}"
                    ) from None
            except BaseException:
                # A body that failed half-sent leaves the connection unusable.
                self._drop(connection)
                raise
        raise AssertionError("unreachable")

    def _drop(self, connection: http.client.HTTPSConnection) -> None:
        self._local.connection = None
        with contextlib.suppress(OSError):
            connection.close()

    def _fail(self, status: int, what: str, path: DatastorePath, data: bytes) -> ProviderError:
        reason = data.decode(errors="replace").strip()[:200]
        return ProviderError(
            f"vCenter {self.settings.host}: {what} {path}: HTTP {status}{f' ({reason})' if reason else ''}",
            # The server's own trouble may pass, and so does an expired session (401: the next
            # SOAP call logs in again); a refusal or a missing file will not.
            retryable=status >= 500 or status == 401,
        )

    def size(self, path: DatastorePath) -> int | None:
        """The file's length, None when there is no such file."""
        status, data, response = self._request("HEAD", path, "looking up", {})
        if status == 404:
            return None
        if status != 200:
            raise self._fail(status, "looking up", path, data)
        return int(response.getheader("Content-Length") or 0)

    def read(self, path: DatastorePath, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (fewer at the file's end)."""
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        status, data, _ = self._request("GET", path, "reading", headers)
        if status == 416:
            return b""
        if status == 200:
            # A server that ignores ranges sends the whole file.
            return data[offset : offset + length]
        if status != 206:
            raise self._fail(status, "reading", path, data)
        return data

    def write(self, path: DatastorePath, chunks: Iterable[bytes], size: int) -> None:
        """Replace the file with ``size`` bytes, streamed from ``chunks``."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        status, data, _ = self._request("PUT", path, "writing", headers, _exactly(chunks, size, path))
        if status not in (200, 201, 204):
            raise self._fail(status, "writing", path, data)

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.close()


def _exactly(chunks: Iterable[bytes], size: int, path: DatastorePath) -> Iterable[bytes]:
    """The chunks, checked to add up to the announced length: a short body would leave a
    truncated file that looks written."""
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        if sent > size:
            raise ProviderError(f"writing {path}: more than the {size} bytes announced", retryable=False)
        yield chunk
    if sent != size:
        raise ProviderError(f"writing {path}: {sent} of {size} bytes to send", retryable=False)
