"""A queue worker that stops taking jobs and finishes the one in hand.

Jobs arrive on a queue; the worker takes one at a time and persists its result
to a SQLite file. A job is *acknowledged* only once its row is committed. At
SIGTERM the worker stops taking new jobs at once, finishes the job in hand under
a ``coord.hold`` (so the wrap-up phase waits for it), a wrap-up hook puts the
jobs still queued back into the database as ``pending`` (nothing is lost), and a
shutdown hook closes the database afterwards.

    python examples/worker.py            # Ctrl-C to stop
    python examples/worker.py --demo     # sends itself SIGTERM after a few jobs
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import sys
import tempfile
import threading
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import gracestop

log = logging.getLogger("worker")


class JobStore:
    """A SQLite file: one row per job, ``done`` once processed, ``pending`` if requeued."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # One connection used from worker threads: one transaction at a time.
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, state TEXT)")
        self.db.commit()

    def save(self, job: int, state: str) -> None:
        with self.lock, self.db:
            self.db.execute("INSERT OR REPLACE INTO jobs (id, state) VALUES (?, ?)", (job, state))

    def count(self, state: str) -> int:
        with self.lock:
            query = "SELECT COUNT(*) FROM jobs WHERE state = ?"
            (n,) = self.db.execute(query, (state,)).fetchone()
        return int(n)

    def close(self) -> None:
        with self.lock:
            self.db.close()


async def next_job(
    jobs: MemoryObjectReceiveStream[int], coord: gracestop.Coordinator
) -> int | None:
    """The next job, or None once the shutdown has begun (no job is taken then)."""
    job: int | None = None
    async with anyio.create_task_group() as tg:

        async def take() -> None:
            nonlocal job
            job = await jobs.receive()
            tg.cancel_scope.cancel()

        async def stop() -> None:
            await coord.triggered()
            tg.cancel_scope.cancel()

        tg.start_soon(take)
        tg.start_soon(stop)
    return job


async def work(
    jobs: MemoryObjectReceiveStream[int],
    coord: gracestop.Coordinator,
    store: JobStore,
    done: list[int],
) -> None:
    while coord.accepting:
        job = await next_job(jobs, coord)
        if job is None:
            log.info("worker: shutdown begun, taking no more jobs")
            return
        async with coord.hold(f"job-{job}"):
            log.info("worker: job %d taken", job)
            await anyio.sleep(0.3)  # the work itself
            await anyio.to_thread.run_sync(store.save, job, "done")
            done.append(job)  # acknowledged: committed to the database


async def produce(jobs: MemoryObjectSendStream[int], coord: gracestop.Coordinator) -> None:
    """Stands in for the broker: queues a job every 50 ms until the shutdown begins."""
    async with jobs:
        for job in range(1, 1001):
            if not coord.accepting:
                return
            await jobs.send(job)
            await anyio.sleep(0.05)


async def main(demo: bool, db_path: Path) -> int:
    store = JobStore(db_path)
    send, receive = anyio.create_memory_object_stream[int](max_buffer_size=100)
    done: list[int] = []

    async with gracestop.ShutdownCoordinator(wait_time=5, wrap_up_time=3) as coord:

        @coord.on_wrap_up(name="requeue")
        async def requeue() -> None:
            queued = []
            while True:
                try:
                    queued.append(receive.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            for job in queued:
                await anyio.to_thread.run_sync(store.save, job, "pending")
            log.info("requeue: %d queued jobs saved as pending", len(queued))

        @coord.on_shutdown(name="close-db")
        def close_db() -> None:  # a sync hook: runs in a worker thread
            store.close()
            log.info("database closed")

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce, send, coord)
            tg.start_soon(work, receive, coord, store, done)
            print(f"READY worker running (pid {os.getpid()})", flush=True)
            if demo:
                while len(done) < 3:
                    await anyio.sleep(0.05)
                # SIGTERM arrives while a job is in hand.
                await anyio.sleep(0.1)
                os.kill(os.getpid(), signal.SIGTERM)
            # Nothing is cancelled here: the worker finishes the job in hand under its
            # hold and returns; the producer stops queueing.
            await coord.triggered()

    check = JobStore(db_path)
    persisted, pending = check.count("done"), check.count("pending")
    check.close()
    report = coord.report
    assert report is not None
    print()
    print(report.render())
    lost = len(done) - persisted
    print(
        f"\njobs acknowledged {len(done)}, persisted {persisted}, requeued {pending}, lost {lost}"
    )
    return gracestop.exit_code(coord)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="send itself SIGTERM mid-job")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--db", type=Path, help="SQLite file (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(name)-9s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "jobs.sqlite3"
        sys.exit(anyio.run(main, args.demo, path, backend=args.backend))
