"""Worker threads for everything that touches a disk or the repository, waited on with a
deadline.

A hung NFS mount blocks a thread in the kernel and no Python code can take it back, so the
caller never does such I/O itself: it hands the work to a pool thread and waits at most
``timeout`` seconds for it, then fails the job with a ProviderError. The threads are daemon
threads of the pool's own (not ``concurrent.futures``' executor, whose threads the
interpreter joins at exit), so a stuck one costs a thread, never the worker process.
"""

from __future__ import annotations

import queue
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from orchestrator.domain.errors import ProviderError

T = TypeVar("T")
_STOP = object()
# Work that moves a lot of data at once (flushing, converting) gets the I/O deadline plus
# the time it takes at this slow but working pace.
SLOW_PACE_BYTES_S = 10_000_000


def paced_timeout(base: float, nbytes: int) -> float:
    return base + nbytes / SLOW_PACE_BYTES_S


class IoTimeout(ProviderError):
    """Work on the source disks or the repository did not finish in time."""


class IoPool:
    def __init__(self, threads: int, timeout: float, where: str) -> None:
        self.timeout = timeout
        self.where = where
        self._size = threads
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> IoPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_threads(self) -> None:
        with self._lock:
            while len(self._threads) < self._size:
                thread = threading.Thread(target=self._work, name=f"nas-io-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        if self._closed:
            raise RuntimeError("I/O pool is closed")
        if not self._threads:
            self._start_threads()
        future: Future[T] = Future()
        self._queue.put((future, fn, args))
        return future

    def wait(self, future: Future[T], what: str, timeout: float | None = None) -> T:
        """The future's result, or IoTimeout once ``timeout`` seconds pass without one."""
        limit = self.timeout if timeout is None else timeout
        try:
            return future.result(timeout=limit)
        except FutureTimeout:
            future.cancel()
            raise IoTimeout(
                f"{self.where}: no answer within {limit:g} s while {what} "
                "(is a storage mount hung?); the job was stopped instead of waiting forever",
                retryable=True,
            ) from None

    def call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        return self.wait(self.submit(fn, *args), what)

    def call_within(self, timeout: float, what: str, fn: Callable[..., T], *args: Any) -> T:
        """``call`` with its own deadline, for work that legitimately waits (locks, conversions)."""
        return self.wait(self.submit(fn, *args), what, timeout)

    def call_detached(self, what: str, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """``call`` on a thread of its own: for clean-up after a timeout, when every pool
        thread may be stuck on the storage that stopped answering."""
        future: Future[T] = Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)

        threading.Thread(target=run, name="nas-io-cleanup", daemon=True).start()
        return self.wait(future, what, timeout)

    def close(self) -> None:
        """Stop the threads once they are idle; never waits for a stuck one."""
        if self._closed:
            return
        self._closed = True
        # Drop queued work nobody will wait for, then let every thread leave.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                item[0].cancel()
        for _ in self._threads:
            self._queue.put(_STOP)


@contextmanager
def bounded(pool: IoPool, cm: AbstractContextManager[T], timeout: float, what: str) -> Iterator[T]:
    """Enter and leave ``cm`` on pool threads, each within ``timeout`` (e.g. a snapshot of
    disks on hung storage must not hang the worker). Entered too late, it is left at once."""
    future = pool.submit(cm.__enter__)
    try:
        value = pool.wait(future, what, timeout)
    except IoTimeout:
        future.add_done_callback(lambda f: _exit_if_entered(f, cm))
        raise
    try:
        yield value
    except BaseException as exc:
        what = f"{what}: cleaning up"
        pool.call_detached(what, cm.__exit__, type(exc), exc, exc.__traceback__, timeout=timeout)
        raise
    pool.call_detached(f"{what}: cleaning up", cm.__exit__, None, None, None, timeout=timeout)


def _exit_if_entered(future: Future[Any], cm: AbstractContextManager[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        cm.__exit__(None, None, None)


def run_bounded(
    argv: list[str],
    timeout: float,
    what: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """Run a program and return (exit status, stdout, stderr) within ``timeout`` seconds.

    On timeout the process is killed and reaped by a background thread: a program stuck
    in the kernel on a hung mount cannot be waited for.
    """
    try:
        proc = subprocess.Popen(  # noqa: S603 - programs and hooks the operator configured
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise ProviderError(f"cannot run {argv[0]} for {what}: {exc}", retryable=False) from None
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        threading.Thread(target=proc.wait, daemon=True).start()
        raise IoTimeout(f"{argv[0]} did not finish {what} within {timeout:g} s (hung storage?)") from None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
