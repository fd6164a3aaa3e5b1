"""A queue worker with Kubernetes probes and no HTTP app of its own.

The worker takes jobs from a queue and holds each one with ``coord.hold`` while it
runs. ``serve_probes`` answers ``/readyz`` and ``/livez`` on a small HTTP server
beside it. At SIGTERM readiness turns to 503 at once (Kubernetes stops sending
traffic), the worker keeps taking jobs for ``drain_delay``, then finishes the job
in hand, the remaining jobs are put back, and the process exits 0.

    python examples/worker_with_probes.py                 # probes on :8081, Ctrl-C to stop
    python examples/worker_with_probes.py --port 0        # a free port, printed
    python examples/worker_with_probes.py --demo          # sends itself SIGTERM
    curl -i localhost:8081/readyz
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import time

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import gracestop
from gracestop.probes import serve_probes

log = logging.getLogger("worker")


async def produce(jobs: MemoryObjectSendStream[int], coord: gracestop.Coordinator) -> None:
    """Stands in for the broker: a job every 50 ms while the worker accepts work."""
    async with jobs:
        job = 0
        while coord.accepting:
            job += 1
            await jobs.send(job)
            await anyio.sleep(0.05)


async def work(
    jobs: MemoryObjectReceiveStream[int], coord: gracestop.Coordinator, done: list[int]
) -> None:
    """Take jobs while the coordinator accepts work; each job is a hold."""
    async for job in jobs:
        async with coord.hold(f"job-{job}"):
            await anyio.sleep(0.2)  # the work itself
            done.append(job)
            print(f"JOB {job} done at {time.monotonic():.3f}", flush=True)
        if not coord.accepting:
            return


async def main(port: int, drain_delay: float, demo: bool) -> int:
    send, receive = anyio.create_memory_object_stream[int](max_buffer_size=100)
    done: list[int] = []
    async with gracestop.ShutdownCoordinator(
        drain_delay=drain_delay, wrap_up_time=3, wait_time=drain_delay + 5
    ) as coord:

        @coord.on_wrap_up(name="requeue")
        async def requeue() -> None:
            left = 0
            while True:
                try:
                    receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
                left += 1
            print(f"REQUEUED {left}", flush=True)

        async with anyio.create_task_group() as tg:
            bound = await tg.start(functools.partial(serve_probes, coord, port=port))
            print(f"PROBES {bound}", flush=True)
            tg.start_soon(produce, send, coord)
            tg.start_soon(work, receive, coord, done)
            if demo:
                while len(done) < 3:
                    await anyio.sleep(0.05)
                os.kill(os.getpid(), signal.SIGTERM)
            # Runs until the shutdown has finished: the coordinator then cancels the
            # block's body, which stops the probe server too.
            await anyio.sleep_forever()

    report = coord.report
    assert report is not None
    print(report.render())
    print(f"DONE {len(done)} jobs", flush=True)
    return gracestop.exit_code(coord)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8081, help="probe port (0: a free one)")
    parser.add_argument("--drain-delay", type=float, default=2.0, help="seconds (default 2)")
    parser.add_argument("--demo", action="store_true", help="send itself SIGTERM after 3 jobs")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    sys.exit(anyio.run(main, args.port, args.drain_delay, args.demo, backend=args.backend))
