"""HTTP load on loopback from worker threads, for the serving tests and the benchmarks.

``Load`` drives a bounded, paced HTTP load with real httpx clients: some workers
keep one connection alive across requests, others open a new connection for every
request (``Connection: close``). Every request is recorded with its start and end
times (``time.monotonic()``, which on Linux is one clock for every process, so the
times compare with those a server prints), status, ``Connection`` header and
error, so a caller can ask what happened in a given window, e.g. between a signal
and the moment the server stopped accepting::

    with Load(f"http://127.0.0.1:{port}", ["/"]) as load:
        load.wait_for_requests(20)
        signalled = send_sigterm()
        ...
    failed = load.failed(started_after=signalled)

The tests import it through ``tests/process/_load.py``.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType

import httpx


class LoadError(AssertionError):
    """The load did not go as asked: workers stuck, or too few requests ended in
    time. An ``AssertionError``, so that a test using the load fails with it."""


@dataclass
class Record:
    """One request: when it ran, what came back, or how it failed."""

    worker: str
    mode: str  # "keepalive" or "fresh"
    path: str
    start: float
    end: float = 0.0
    status: int | None = None
    connection: str | None = None  # the response's Connection header, lower-cased
    error: str | None = None  # "refused", "reset", "timeout" or "other: ..."

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and self.status < 500


def classify(exc: BaseException) -> str:
    """Name a client-side failure: refused, reset, timeout or other."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or (
            isinstance(current, OSError) and current.errno == errno.ECONNREFUSED
        ):
            return "refused"
        if isinstance(current, (ConnectionResetError, BrokenPipeError)):
            return "reset"
        current = current.__cause__ or current.__context__
    if isinstance(exc, httpx.ConnectError):
        return "refused" if "refused" in str(exc).lower() else f"other: {exc!r}"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return "reset"
    return f"other: {exc!r}"


class Load:
    """A bounded, paced HTTP load from worker threads against ``base_url``.

    ``keepalive`` workers each reuse one connection (a server's
    ``Connection: close`` makes the next request reconnect, as real clients do);
    ``fresh`` workers open a new connection for every request. Each worker sends a
    request every ``interval`` seconds at most, to ``paths`` in turn, until
    :meth:`stop`, ``max_requests`` in total or ``max_duration`` seconds. Use it as
    a context manager: leaving the block stops the workers and closes the clients.
    """

    def __init__(
        self,
        base_url: str,
        paths: Iterable[str] = ("/",),
        *,
        keepalive: int = 4,
        fresh: int = 2,
        interval: float = 0.02,
        max_requests: int = 600,
        max_duration: float = 20.0,
        timeout: float = 5.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.paths = list(paths)
        self.interval = interval
        self.max_requests = max_requests
        self.max_duration = max_duration
        self.timeout = timeout
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._started_at = 0.0
        self._threads = [
            threading.Thread(target=self._work, args=(f"ka{i}", "keepalive"), daemon=True)
            for i in range(keepalive)
        ] + [
            threading.Thread(target=self._work, args=(f"fresh{i}", "fresh"), daemon=True)
            for i in range(fresh)
        ]

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._started_at = time.monotonic()
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop sending; wait for requests in flight (bounded by the client timeout)."""
        self._stop.set()
        bound = self.timeout + 5.0 if timeout is None else timeout
        end = time.monotonic() + bound
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise LoadError(f"load workers still running after {bound}s: {alive}")

    def _reserve(self) -> bool:
        with self._lock:
            if self._stop.is_set() or len(self.records) >= self.max_requests:
                return False
            return time.monotonic() - self._started_at < self.max_duration

    def _work(self, name: str, mode: str) -> None:
        headers = {"Connection": "close"} if mode == "fresh" else {}
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(
            base_url=self.base_url, timeout=self.timeout, limits=limits, headers=headers
        ) as client:
            index = 0
            while self._reserve():
                path = self.paths[index % len(self.paths)]
                index += 1
                record = Record(name, mode, path, time.monotonic())
                try:
                    response = client.get(path)
                except httpx.HTTPError as exc:
                    record.error = classify(exc)
                else:
                    record.status = response.status_code
                    record.connection = response.headers.get("connection", "").lower() or None
                record.end = time.monotonic()
                with self._cond:
                    self.records.append(record)
                    self._cond.notify_all()
                # Pacing only: keeps the load bounded on a shared machine.
                self._stop.wait(self.interval)

    # ------------------------------------------------------------------ queries

    def wait_for_requests(self, count: int, timeout: float = 20.0, *, ok: bool = True) -> None:
        """Wait until ``count`` requests have ended (successfully, by default)."""

        def enough() -> bool:
            return sum(1 for r in self.records if r.ok or not ok) >= count

        if not self._wait(enough, timeout):
            done = sum(1 for r in self.snapshot() if r.ok or not ok)
            raise LoadError(
                f"only {done} of {count} requests ended within {timeout}s: {self.summary()}"
            )

    def wait_for_start_after(self, moment: float, timeout: float = 20.0) -> None:
        """Wait until a request that started at ``moment`` or later (monotonic time)
        has ended, successfully or not: the load has covered every time before it."""

        def covered() -> bool:
            return any(r.start >= moment for r in reversed(self.records))

        if not self._wait(covered, timeout):
            raise LoadError(
                f"no request started after {moment:.3f} ended within {timeout}s: {self.summary()}"
            )

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        # The caller builds its error message once the lock is released: summary()
        # takes it again.
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def snapshot(self) -> list[Record]:
        with self._lock:
            return list(self.records)

    def between(
        self, started_after: float = 0.0, started_before: float = float("inf")
    ) -> list[Record]:
        """Requests that started in the window (monotonic times)."""
        return [r for r in self.snapshot() if started_after <= r.start < started_before]

    def failed(
        self, started_after: float = 0.0, started_before: float = float("inf")
    ) -> list[Record]:
        """Requests in the window that failed (error or 5xx)."""
        return [r for r in self.between(started_after, started_before) if not r.ok]

    def statuses(
        self, started_after: float = 0.0, started_before: float = float("inf")
    ) -> dict[int | str, int]:
        """How many requests of the window ended with each status or error."""
        counts: dict[int | str, int] = {}
        for r in self.between(started_after, started_before):
            key: int | str = r.error if r.error is not None else (r.status or 0)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def summary(self) -> str:
        records = self.snapshot()
        failed = [r for r in records if not r.ok]
        return (
            f"{len(records)} requests, {len(failed)} failed; outcomes {self.statuses()}; "
            f"first failures: {failed[:5]}"
        )


def iter_sse_events(response: httpx.Response) -> Iterator[str]:
    """The ``data:`` payloads of a server-sent event stream."""
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield line[len("data:") :].strip()


__all__ = ["Load", "LoadError", "Record", "classify", "iter_sse_events"]
