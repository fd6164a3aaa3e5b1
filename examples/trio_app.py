"""The same API on trio, started with ``gracestop.run``.

A service with a periodic task, a wrap-up hook that flushes metrics and a
shutdown hook that closes a connection pool, written with trio's own
primitives. ``gracestop.run`` runs it inside a coordinator and turns the outcome
into the exit status: 0 when every hook ended OK.

    python examples/trio_app.py            # Ctrl-C or kill -TERM to stop
    python examples/trio_app.py --demo     # sends itself SIGTERM after a few ticks
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import trio

import gracestop

log = logging.getLogger("trio_app")

hooks = gracestop.Hooks()
metrics: list[int] = []


@hooks.on_wrap_up(timeout=2)
async def flush_metrics(ctx: gracestop.HookContext) -> None:
    """Send what was counted; trio's own deadline tools work on ctx.deadline."""
    with trio.move_on_at(ctx.deadline):
        await trio.sleep(0.2)  # the network round trip
        log.info("flushed %d metric points", len(metrics))


@hooks.on_shutdown(name="close-pool")
async def close_pool() -> None:
    await trio.sleep(0.05)
    log.info("connection pool closed")


async def main(coord: gracestop.Coordinator, demo: bool) -> None:
    print(f"READY trio service running (pid {os.getpid()})", flush=True)
    async with trio.open_nursery() as nursery:

        async def tick() -> None:
            while coord.accepting:
                metrics.append(len(metrics))
                if demo and len(metrics) == 3:
                    os.kill(os.getpid(), signal.SIGTERM)
                await trio.sleep(0.05)

        nursery.start_soon(tick)
        await coord.triggered()
    # The ticker ended by itself. Wait for the hooks and show how they went.
    report = await coord.finished()
    print(report.render(), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="send itself SIGTERM")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(name)-9s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )

    async def service(coord: gracestop.Coordinator) -> None:
        await main(coord, args.demo)

    gracestop.run(service, backend="trio", hooks=hooks, wait_time=3)
