"""A service that reports its shutdown to the log, to Prometheus and to systemd.

Run it by hand (Ctrl-C or SIGTERM stops it), or with ``--demo`` to have it send
itself SIGTERM once started::

    python examples/observed_service.py --demo --backend trio

Under systemd with ``Type=notify`` (see docs/systemd.md) it also sends READY=1,
STOPPING=1, EXTEND_TIMEOUT_USEC and STATUS lines: nothing to configure, the
coordinator sees ``NOTIFY_SOCKET`` in its environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import anyio
from prometheus_client import CollectorRegistry, generate_latest

import gracestop
from gracestop import instrumentation as gi

registry = CollectorRegistry()


def print_outcomes(event: gi.Event) -> None:
    """A home-made observer: one line per hook, and the metrics at the end."""
    match event:
        case gi.HookEnded(name=name, phase=phase, status=status):
            print(f"{phase} hook {name}: {status}", flush=True)
        case gi.ShutdownFinished(report=report):
            # The Prometheus observer comes first in the list, so the metrics
            # already count this shutdown.
            for line in generate_latest(registry).decode().splitlines():
                if (
                    line.startswith("gracestop_")
                    and "_bucket" not in line
                    and "_created" not in line
                ):
                    print(line)
            print(report.summary(), flush=True)
        case _:
            pass


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--demo", action="store_true", help="stop once started")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")

    async def serve(coord: gracestop.ShutdownCoordinator) -> None:
        requests_done = anyio.Event()

        @coord.on_wrap_up(name="finish-requests")
        async def finish_requests() -> None:
            await requests_done.wait()

        @coord.on_shutdown(name="close-db")
        def close_db() -> None:
            pass

        async def request() -> None:
            # Work in flight: the wrap-up phase waits for the hold to close.
            async with coord.hold("request"):
                await coord.triggered()
                await anyio.sleep(0.1)
            requests_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(request)
            print("READY", flush=True)
            if args.demo:
                os.kill(os.getpid(), signal.SIGTERM)
            await anyio.sleep_forever()

    gracestop.run(
        serve,
        backend=args.backend,
        observers=[gi.PrometheusObserver(registry=registry), print_outcomes],
        wait_time=5,
        wrap_up_time=3,
    )


if __name__ == "__main__":
    main()
