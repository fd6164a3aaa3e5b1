"""The job service built in the tutorial: a worker that shuts down gracefully."""

import itertools
import logging
import sqlite3
import sys
from pathlib import Path

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

import gracestop


class JobStore:
    """The resource to close last: a SQLite file with one row per job done."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS done (job INTEGER PRIMARY KEY)")

    def save(self, job: int) -> None:
        # A local SQLite commit takes about a millisecond; a slower call would go
        # through anyio.to_thread.run_sync rather than block the event loop.
        with self.db:
            self.db.execute("INSERT INTO done (job) VALUES (?)", (job,))

    def close(self) -> None:
        self.db.close()  # closing twice does nothing


async def take_jobs(queue: ObjectSendStream[int], accepted: list[int]) -> None:
    """The intake: a new job every 0.1 s (in a real service, a broker or an endpoint)."""
    async with queue:  # closing the queue tells the worker that no more jobs will come
        for job in itertools.count(1):
            await queue.send(job)
            accepted.append(job)
            await anyio.sleep(0.1)


async def work(
    queue: ObjectReceiveStream[int],
    coord: gracestop.ShutdownCoordinator,
    store: JobStore,
    done: list[int],
) -> None:
    """The worker: one job at a time, until the queue is closed and empty."""
    # The hold keeps the wrap-up phase open while the worker has jobs to do, so the
    # shutdown phase (which closes the database) cannot start under it.
    async with queue, coord.hold("worker"):
        async for job in queue:
            await anyio.sleep(0.2)  # the work itself
            store.save(job)
            done.append(job)
            print(f"job {job} done")


async def serve(
    coord: gracestop.ShutdownCoordinator,
    store: JobStore,
    accepted: list[int],
    done: list[int],
) -> None:
    """Run the intake and the worker until the shutdown has drained them."""
    send, receive = anyio.create_memory_object_stream[int](max_buffer_size=5)
    intake = anyio.CancelScope()

    async def stop_intake() -> None:
        intake.cancel()

    # Wrap-up phase: stop taking jobs. go-zero's name; it returns the hook's waiter.
    intake_stopped = coord.add_wrap_up_listener(stop_intake, name="stop-intake")

    # Shutdown phase, once no wrap-up hook runs and no hold is open: release resources.
    @coord.on_shutdown(name="close-db")
    async def close_db() -> None:
        store.close()
        print("database closed")

    async def run_intake() -> None:
        with intake:
            await take_jobs(send, accepted)

    async def say_when_intake_stops() -> None:
        # Like go-zero's waitForCalled: returns once that one hook has ended.
        result = await intake_stopped()
        print(f"intake stopped ({result.status}), draining the queue")

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_intake)
        tg.start_soon(work, receive, coord, store, done)
        tg.start_soon(say_when_intake_stops)


async def main() -> int:
    store = JobStore(Path("jobs.sqlite3"))
    accepted: list[int] = []
    done: list[int] = []
    async with gracestop.ShutdownCoordinator(wrap_up_time=3, wait_time=5) as coord:
        await serve(coord, store, accepted, done)
    store.close()  # a forced quit skips close-db; otherwise this does nothing
    report = coord.report
    assert report is not None
    print(report.render())
    print(f"jobs accepted {len(accepted)}, done {len(done)}")
    return gracestop.exit_code(coord)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stdout)
    Path("jobs.sqlite3").unlink(missing_ok=True)  # a fresh database for each run
    sys.exit(anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio"))
