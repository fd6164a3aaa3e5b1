"""The service that ``gracestop demo`` starts in a child process.

A job worker on loopback: a client sends ``JOB <id>`` lines over TCP; the service
answers ``QUEUED <id>`` once the job is in its in-memory queue, ``DONE <id>`` once
the job is processed *and* committed to a SQLite file, and ``REFUSED <id>`` once
the wrap-up phase has begun. At shutdown:

* the workers take no new job, and the job in hand finishes under a ``coord.hold``
  (the wrap-up phase waits for it);
* a wrap-up hook flushes the jobs still queued to SQLite as ``pending``;
* a shutdown hook closes the database, after both of those.

It prints ``READY {json}`` (the port) when it takes jobs, its log on stderr, and
``REPORT {json}`` (the shutdown report and its rendered timeline) at the end.

    python -m gracestop._demo_service DB [--backend trio] [--job-time 0.2s] ...
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import random
import sqlite3
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._config import parse_duration
from ._coordinator import ShutdownCoordinator
from ._hooks import Hooks
from ._run import exit_code
from ._serving import HOOK_ORDER

log = logging.getLogger("gracestop.demo")

_MAX_LINE = 64


@dataclass(frozen=True)
class ServiceOptions:
    """How the demo service runs; every duration in seconds."""

    db: Path
    backend: str = "asyncio"
    workers: int = 2
    job_time: float = 0.2
    seed: int = 0
    drain_delay: float = 0.3
    wrap_up_time: float = 3.0
    wait_time: float = 5.0
    http: bool = False
    request_time: float = 0.1


class JobStore:
    """One SQLite file, one row per job: ``done`` once processed, ``pending`` if flushed.

    One connection shared by worker threads, so one transaction at a time.
    """

    def __init__(self, path: Path) -> None:
        """Open (and create if needed) the job table in *path*."""
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, state TEXT)")

    def save(self, jobs: list[int], state: str) -> None:
        """Commit *jobs* with *state* in one transaction."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO jobs (id, state) VALUES (?, ?)",
                [(job, state) for job in jobs],
            )

    def close(self) -> None:
        """Close the connection; later saves fail with ``sqlite3.ProgrammingError``."""
        with self._lock:
            self._db.close()


def read_jobs(path: Path) -> dict[int, str]:
    """Every job row in the SQLite file at *path*, as ``{id: state}``.

    Opened read-write (never created) so that SQLite can roll back the journal a
    killed service left behind: read-only, such a file cannot be read at all.

    Raises:
        sqlite3.Error: the file is not a job database or cannot be opened.
    """
    db = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
    try:
        return {int(job): str(state) for job, state in db.execute("SELECT id, state FROM jobs")}
    finally:
        db.close()


class _Replies:
    """Lines back to the client; one writer at a time on the one connection."""

    def __init__(self) -> None:
        self._lock = anyio.Lock()
        self._stream: anyio.abc.ByteStream | None = None

    def attach(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream

    async def send(self, line: str) -> None:
        stream = self._stream
        if stream is None:
            return
        async with self._lock:
            try:
                await stream.send(line.encode() + b"\n")
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                # The client went away: it simply never sees this acknowledgement.
                log.warning("client gone; %s not acknowledged", line)


async def _next_job(jobs: MemoryObjectReceiveStream[int], stop_taking: anyio.Event) -> int | None:
    """The next queued job, or None once *stop_taking* is set (no job is taken then)."""
    job: int | None = None
    async with anyio.create_task_group() as tg:

        async def take() -> None:
            nonlocal job
            job = await jobs.receive()
            tg.cancel_scope.cancel()

        async def stop() -> None:
            await stop_taking.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(take)
        tg.start_soon(stop)
    return job


@dataclass
class _Workers:
    """What every worker shares: the queue, the coordinator, the store, the replies."""

    jobs: MemoryObjectReceiveStream[int]
    stop_taking: anyio.Event
    coord: ShutdownCoordinator
    store: JobStore
    replies: _Replies
    durations: random.Random
    job_time: float

    async def work(self, name: str) -> None:
        while True:
            job = await _next_job(self.jobs, self.stop_taking)
            if job is None:
                log.info("%s: stopped, taking no more jobs", name)
                return
            async with self.coord.hold(f"job-{job}"):
                await anyio.sleep(self.job_time * self.durations.uniform(0.5, 1.5))
                await anyio.to_thread.run_sync(self.store.save, [job], "done")
                # Acknowledged only now that the row is committed.
                await self.replies.send(f"DONE {job}")
                if self.stop_taking.is_set():
                    # Said inside the hold: the database closes only after this line.
                    log.info("%s: job-%d committed; taking no more jobs", name, job)
                    return


async def _intake(
    stream: anyio.abc.ByteStream,
    queue: MemoryObjectSendStream[int],
    coord: ShutdownCoordinator,
    replies: _Replies,
) -> None:
    replies.attach(stream)
    reader = BufferedByteReceiveStream(stream)
    async with stream:
        while True:
            try:
                line = await reader.receive_until(b"\n", _MAX_LINE)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                return
            verb, _, arg = line.decode("ascii", "replace").partition(" ")
            if verb != "JOB" or not arg.isdigit():
                await replies.send(f"ERROR {line[:_MAX_LINE]!r}")
                continue
            job = int(arg)
            # No await between the check and the queueing: the wrap-up flush cannot
            # run in between, so a job queued here is always flushed or processed.
            if coord.accepting:
                queue.send_nowait(job)
                await replies.send(f"QUEUED {job}")
            else:
                await replies.send(f"REFUSED {job}")


async def serve(options: ServiceOptions) -> int:
    """Run the service until a signal ends it; return the exit status."""
    store = JobStore(options.db)
    send, receive = anyio.create_memory_object_stream[int](max_buffer_size=math.inf)
    replies = _Replies()
    durations = random.Random(options.seed)
    coord = ShutdownCoordinator(
        hooks=Hooks(),
        drain_delay=options.drain_delay,
        wrap_up_time=options.wrap_up_time,
        wait_time=options.wait_time,
    )
    stop_taking = anyio.Event()
    async with coord:
        # During drain_delay the workers go on (the service still takes work); from
        # the wrap-up phase on they take no new job, and the job in hand holds the
        # phase open until it is committed. Beside the HTTP server's drain, before
        # the queue is flushed.
        @coord.on_wrap_up(name="stop-workers", order=HOOK_ORDER)
        async def stop_workers() -> None:
            # Async: a sync hook runs in a worker thread, and an anyio Event is set
            # from the loop only (trio refuses it when a worker waits on it).
            stop_taking.set()

        @coord.on_wrap_up(name="flush-queue")
        async def flush_queue() -> None:
            queued: list[int] = []
            while True:
                try:
                    queued.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            if queued:
                await anyio.to_thread.run_sync(store.save, queued, "pending")
            log.info("flush-queue: %d queued jobs saved as pending", len(queued))

        @coord.on_shutdown(name="close-db")
        def close_db() -> None:  # sync: runs in a worker thread
            store.close()
            log.info("close-db: database closed")

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        async with listener, anyio.create_task_group() as tg:
            workers = _Workers(
                receive, stop_taking, coord, store, replies, durations, options.job_time
            )
            for n in range(options.workers):
                tg.start_soon(workers.work, f"worker-{n + 1}")
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            tg.start_soon(
                listener.serve,
                functools.partial(_intake, queue=send, coord=coord, replies=replies),
            )
            ready: dict[str, object] = {"pid": os.getpid(), "port": port}
            if options.http:
                # Imported only here: the worker part runs from the base install.
                from ._demo_http import start_http

                ready["http_port"] = await start_http(
                    tg, coord, options.backend, options.request_time
                )
            print("READY " + json.dumps(ready), flush=True)
            # The coordinator cancels this block once the shutdown is over.
            await anyio.sleep_forever()

    report = coord.report
    assert report is not None
    print("REPORT " + json.dumps({"report": report.to_dict(), "render": report.render()}))
    return exit_code(coord)


def _parse_args(argv: list[str] | None) -> ServiceOptions:
    parser = argparse.ArgumentParser(prog="python -m gracestop._demo_service")
    parser.add_argument("db", type=Path)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--http", action="store_true")
    for name in ("job-time", "drain-delay", "wrap-up-time", "wait-time", "request-time"):
        parser.add_argument(f"--{name}", type=parse_duration)
    args = parser.parse_args(argv)
    given = {
        key: value
        for key, value in vars(args).items()
        if key in {"job_time", "drain_delay", "wrap_up_time", "wait_time", "request_time"}
        and value is not None
    }
    return ServiceOptions(
        db=args.db,
        backend=args.backend,
        workers=args.workers,
        seed=args.seed,
        http=args.http,
        **given,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process."""
    options = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        # Short: the demo prints these lines indented, within 80 columns.
        format="%(asctime)s.%(msecs)03d %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    return anyio.run(serve, options, backend=options.backend)


if __name__ == "__main__":
    sys.exit(main())
