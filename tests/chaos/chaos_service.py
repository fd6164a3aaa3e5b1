"""The job service the chaos test kills: producer → bounded queue → workers → SQLite.

    python chaos_service.py DB --backend trio --workers 3 --queue-size 4 --job-time 0.01

A producer hands numbered jobs to a bounded anyio memory object stream; workers
take them, each under a ``coord.hold``, sleep for the job's (seeded, random)
duration and insert one row per job into a SQLite file. A job is
**acknowledged only once its row is committed**: the worker prints ``ACK <id>``
right after the commit, with no checkpoint in between, so no cancellation can
come between the two.

The service uses gracestop as a user would, through :func:`gracestop.run`:

* a wrap-up hook (``stop-intake``) stops the producer, which closes the queue,
  and waits until the workers have drained what is queued and returned;
* a shutdown hook (``close-db``) closes the database, after that;
* SIGTERM and SIGINT start the shutdown; a second one forces the quit, and the
  process ends with ``force_exit_code`` (:data:`FORCE_EXIT_CODE`).

What it guarantees, and the chaos test checks:

* after one signal: every job produced is committed exactly once and
  acknowledged, and the exit status is 0;
* after a second signal: every job acknowledged is committed exactly once, every
  committed job was acknowledged (the ``ACK`` line follows the commit even when
  the quit is forced), jobs produced but not yet committed are simply not
  acknowledged (a broker would deliver them again), and the exit status is
  :data:`FORCE_EXIT_CODE`, or 0 when the signal came too late to force anything.

Lines on stdout, each written whole and flushed: ``READY``, ``PRODUCED <id>``
(before the job enters the queue), ``ACK <id>``, the hooks' ``STOP-INTAKE``,
``PRODUCER-STOPPED``, ``DRAINED``, ``CLOSE-DB`` and ``DB-CLOSED``, and last
``FINISHED {report}`` once the coordinator has finished. The gracestop log goes
to stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import random
import sqlite3
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import gracestop

#: The exit status of a forced quit (a second signal, or the watchdog).
FORCE_EXIT_CODE = 3
#: Deadlines far beyond what the drain needs, so that only a real hang reaches them.
WAIT_TIME = 10.0
WRAP_UP_TIME = 8.0
WATCHDOG_GRACE = 0.5


def say(*parts: object) -> None:
    """One whole line on stdout, flushed (one write: lines never interleave)."""
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


class JobStore:
    """One SQLite connection shared by the workers' threads, one commit at a time.

    The table has no key: a job saved twice shows up as two rows rather than
    being hidden by a constraint.
    """

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS jobs (job INTEGER, worker INTEGER)")

    def save(self, job: int, worker: int) -> None:
        """Insert and commit one row (in a worker thread)."""
        with self._lock, self._db:
            self._db.execute("INSERT INTO jobs (job, worker) VALUES (?, ?)", (job, worker))

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass(frozen=True)
class Options:
    """How one run of the service behaves; durations in seconds."""

    db: Path
    backend: str
    seed: int
    workers: int
    queue_size: int
    job_time: float
    produce_gap: float
    drain_delay: float
    signal_mode: Literal["auto", "handler"]


async def produce(
    queue: MemoryObjectSendStream[int], stopping: anyio.Event, gap: float, rng: random.Random
) -> None:
    """Queue jobs 1, 2, 3... until told to stop, then close the queue.

    A send blocked on a full queue is never cancelled by the stop: the workers go
    on draining, so it completes, and no job is half handed over.
    """
    async with queue:
        job = 0
        while not stopping.is_set():
            job += 1
            say("PRODUCED", job)
            await queue.send(job)
            if gap:
                await anyio.sleep(rng.uniform(0, gap))


async def work(
    number: int,
    queue: MemoryObjectReceiveStream[int],
    *,
    coord: gracestop.Coordinator,
    store: JobStore,
    job_time: float,
    rng: random.Random,
) -> None:
    """Process jobs until the queue is closed and empty."""
    async with queue:
        async for job in queue:
            async with coord.hold(f"job-{job}"):
                await anyio.sleep(rng.uniform(0, job_time))
                await anyio.to_thread.run_sync(store.save, job, number)
                # Acknowledged only now that the row is committed, and at once: no
                # checkpoint here, so even a forced quit cannot come in between.
                say("ACK", job)


async def service(coord: gracestop.Coordinator, options: Options) -> None:
    """The body run by gracestop.run: hooks, producer, workers."""
    rng = random.Random(options.seed)
    store = JobStore(options.db)
    send, receive = anyio.create_memory_object_stream[int](max_buffer_size=options.queue_size)
    stopping = anyio.Event()
    producer_done = anyio.Event()
    drained = anyio.Event()

    @coord.on_wrap_up(name="stop-intake")
    async def stop_intake() -> None:
        say("STOP-INTAKE")
        stopping.set()
        await producer_done.wait()
        say("PRODUCER-STOPPED")
        await drained.wait()
        say("DRAINED")

    @coord.on_shutdown(name="close-db")
    async def close_db() -> None:
        say("CLOSE-DB")
        await anyio.to_thread.run_sync(store.close)
        say("DB-CLOSED")

    async def run_producer() -> None:
        try:
            await produce(send, stopping, options.produce_gap, random.Random(rng.random()))
        finally:
            producer_done.set()

    async def run_workers() -> None:
        async with receive, anyio.create_task_group() as workers:
            for number in range(1, options.workers + 1):
                workers.start_soon(
                    functools.partial(
                        work,
                        coord=coord,
                        store=store,
                        job_time=options.job_time,
                        rng=random.Random(rng.random()),
                    ),
                    number,
                    receive.clone(),
                )
        drained.set()

    async def announce_finish() -> None:
        report = await coord.finished()
        say("FINISHED", json.dumps(report.to_dict()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce_finish)
        tg.start_soon(run_workers)
        tg.start_soon(run_producer)
        say("READY")


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("db", type=Path)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue-size", type=int, default=4)
    parser.add_argument("--job-time", type=float, default=0.01)
    parser.add_argument("--produce-gap", type=float, default=0.0)
    parser.add_argument("--drain-delay", type=float, default=0.0)
    parser.add_argument("--signal-mode", choices=["auto", "handler"], default="auto")
    args = parser.parse_args(argv)
    return Options(**vars(args))


def main(argv: list[str] | None = None) -> None:
    options = parse(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )

    async def body(coord: gracestop.Coordinator) -> None:
        await service(coord, options)

    gracestop.run(
        body,
        backend=options.backend,
        hooks=gracestop.Hooks(),
        wait_time=WAIT_TIME,
        wrap_up_time=WRAP_UP_TIME,
        watchdog_grace=WATCHDOG_GRACE,
        drain_delay=options.drain_delay,
        signal_mode=options.signal_mode,
        force_exit_code=FORCE_EXIT_CODE,
    )


if __name__ == "__main__":
    main()
