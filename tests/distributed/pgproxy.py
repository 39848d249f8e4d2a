"""A TCP proxy in front of PostgreSQL that a test can cut: what a database restart looks
like to a worker (every connection dropped, new ones refused for a moment), without
restarting the server other tests share. It can also lose the answer to a commit: the
server commits, and the client sees its connection drop instead of the reply."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from sqlalchemy.engine import make_url

# A COMMIT as a client sends it: a simple query message (type, length, text, NUL).
_COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"


class Proxy:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._lose_commit_answer = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        # What a cut did, so a test can tell it hit the worker at all.
        self.dropped = 0
        self.refused = 0
        self.answers_lost = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    @contextlib.contextmanager
    def before(cls, database_url: str) -> Iterator[tuple[Proxy, str]]:
        """A proxy to the database of ``database_url``, and the same URL through it."""
        url = make_url(database_url)
        proxy = cls(url.host or "127.0.0.1", url.port or 5432)
        try:
            yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        finally:
            proxy.close()

    def cut(self) -> None:
        """Drop every connection and refuse new ones until ``restore``."""
        self._open.clear()
        with self._lock:
            self.dropped += len(self._sockets) // 2
            for sock in self._sockets:
                _close(sock)
            self._sockets.clear()

    def restore(self) -> None:
        self._open.set()

    def lose_next_commit_answer(self) -> None:
        """The next COMMIT a client sends reaches the server; the server's reply does not
        reach the client, whose connection is dropped instead."""
        self._lose_commit_answer.set()

    def close(self) -> None:
        self.cut()
        _close(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if not self._open.is_set():
                self.refused += 1
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
            committing = threading.Event()  # this connection's COMMIT whose reply is lost
            threading.Thread(target=self._pump, args=(client, server, committing, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, committing, False), daemon=True).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, committing: threading.Event, up: bool
    ) -> None:
        try:
            while data := source.recv(65536):
                if up and _COMMIT in data and self._lose_commit_answer.is_set():
                    self._lose_commit_answer.clear()
                    committing.set()  # before the server can answer
                elif not up and committing.is_set():
                    self.answers_lost += 1
                    break  # the server answered the commit: drop the answer and the connection
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
