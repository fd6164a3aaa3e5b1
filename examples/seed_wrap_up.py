"""The go-zero scenario gracestop comes from, done right.

A service registers a wrap-up hook that needs about two seconds (it flushes a
buffer of accepted writes), *then* starts its server. SIGTERM arrives while
clients are busy. What must happen, and does here:

1. readiness turns off at once and the server stops accepting connections;
2. requests already in flight finish (each is a ``coord.hold``), so the wrap-up
   phase does not end under them;
3. the 2 s flush runs to the end (go-zero's ``waitForCalled`` would wait for
   every listener of the phase; ``await waiter()`` waits for this one);
4. only then does the shutdown phase close the "database";
5. the process exits 0 with a report of every hook.

Run it and press Ctrl-C (or ``kill -TERM <pid>``)::

    python examples/seed_wrap_up.py

or let it drive itself: clients connect, SIGTERM is sent mid-flight, and the
log and the report are printed::

    python examples/seed_wrap_up.py --demo [--backend trio]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import cast

import anyio
import anyio.abc

import gracestop

log = logging.getLogger("seed")


class Buffer:
    """Writes accepted from clients but not yet stored: what the flush saves."""

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.stored: list[str] = []
        self.closed = False


async def handle(stream: anyio.abc.SocketStream, coord: gracestop.Coordinator, buf: Buffer) -> None:
    """One connection: each line is a write; the reply acknowledges it."""
    async with stream:
        while coord.accepting:
            try:
                line = await stream.receive(1024)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
            async with coord.hold("request"):
                await anyio.sleep(0.2)  # the work of a request
                if buf.closed:
                    raise RuntimeError("database is closed")  # go-zero #3246: must never happen
                buf.pending.append(line.decode().strip())
                await stream.send(b"ok\n")


async def serve(
    listener: anyio.abc.SocketListener,
    coord: gracestop.Coordinator,
    buf: Buffer,
    tg: anyio.abc.TaskGroup,
) -> None:
    while True:
        try:
            stream = await listener.accept()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return
        tg.start_soon(handle, stream, coord, buf)


async def demo_clients(port: int, stats: dict[str, int]) -> None:
    """Three clients writing in a loop; SIGTERM goes out once they are busy."""

    async def client(n: int) -> None:
        try:
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                for i in range(100):
                    await stream.send(f"client{n}-write{i}\n".encode())
                    stats["sent"] += 1
                    reply = await stream.receive(1024)
                    if reply != b"ok\n":
                        stats["failed"] += 1
                        return
                    stats["acknowledged"] += 1
                    if stats["acknowledged"] == 6:
                        log.info(
                            "clients are busy: sending SIGTERM to myself (pid %d)", os.getpid()
                        )
                        os.kill(os.getpid(), signal.SIGTERM)
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            pass  # the server closed the connection after answering: expected

    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(client, n)


async def main(demo: bool) -> int:
    buf = Buffer()
    stats = {"sent": 0, "acknowledged": 0, "failed": 0}

    async with gracestop.ShutdownCoordinator(wait_time=5, wrap_up_time=3, signals=None) as coord:

        async def flush_buffer(ctx: gracestop.HookContext) -> None:
            log.info("flush: storing the buffered writes (needs ~2s)")
            for _ in range(4):
                await anyio.sleep(0.5)
            buf.stored.extend(buf.pending)
            buf.pending.clear()
            log.info("flush: %d writes stored, %.1fs left", len(buf.stored), ctx.remaining())

        # Registered before the server starts, exactly as in go-zero.
        flushed = coord.add_wrap_up_listener(flush_buffer, name="flush-buffer")

        @coord.on_shutdown(name="close-db")
        async def close_db() -> None:
            buf.closed = True
            log.info("database closed with %d writes stored", len(buf.stored))

        multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        # One address, so one socket listener, which has accept() and aclose().
        listener = cast(anyio.abc.SocketListener, multi.listeners[0])
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        print(f"READY listening on 127.0.0.1:{port} (pid {os.getpid()})", flush=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve, listener, coord, buf, tg)
            if demo:
                tg.start_soon(demo_clients, port, stats)
            trigger = await coord.triggered()
            log.info("server: %s, no longer accepting connections", trigger.describe())
            await listener.aclose()
            # The wrap-up hook was registered before the server started; wait for it.
            result = await flushed()
            print(
                f"WAITER flush-buffer {result.status.value} after {result.duration:.2f}s",
                flush=True,
            )

    report = coord.report
    assert report is not None
    print()
    print(report.render())
    if demo:
        lost = stats["acknowledged"] - len(buf.stored)
        refused = stats["sent"] - stats["acknowledged"]
        print(
            f"\nwrites sent {stats['sent']}, acknowledged {stats['acknowledged']}, "
            f"refused after SIGTERM {refused} (clients retry elsewhere), "
            f"stored {len(buf.stored)}, failed {stats['failed']}, lost {lost}"
        )
    return gracestop.exit_code(coord)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="drive clients and SIGTERM itself")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(name)-9s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    sys.exit(anyio.run(main, args.demo, backend=args.backend))
