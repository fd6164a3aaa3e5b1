"""Signal → first wrap-up hook: gracestop against a bare anyio signal receiver.

Each round starts two fresh child processes, one per variant, in alternating
order. The parent sends SIGTERM and notes ``time.monotonic()`` (one clock for
every process on Linux); the child prints the same clock when its first hook
starts. The figure that matters is the ratio of the medians measured in the same
run, since absolute times on a shared machine are noise.

    python benchmarks/signal_latency.py [--smoke]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from functools import partial

sys.path.insert(0, os.path.dirname(__file__))

from _bench import Measure, Row, alternate, table

CHILD = r"""
import sys, time, anyio, gracestop

async def bare() -> None:
    with anyio.open_signal_receiver(__import__("signal").SIGTERM) as signals:
        print("READY", flush=True)
        async for _ in signals:
            print(f"HOOK {time.monotonic()!r}", flush=True)  # the "hook"
            return

async def with_gracestop() -> None:
    hooks = gracestop.Hooks()

    @hooks.on_wrap_up
    async def first() -> None:
        print(f"HOOK {time.monotonic()!r}", flush=True)

    async with gracestop.ShutdownCoordinator(hooks=hooks, signals=["TERM"]):
        print("READY", flush=True)
        await anyio.sleep_forever()

options = {"use_uvloop": True} if sys.argv[3] == "uvloop" else {}
anyio.run(
    bare if sys.argv[1] == "bare" else with_gracestop, backend=sys.argv[2], backend_options=options
)
"""


def one(variant: str, backend: str, uvloop: bool = False) -> float:
    """Start one child, send SIGTERM, return the time until its first hook started."""
    loop = "uvloop" if uvloop else "default"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, variant, backend, loop], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError(f"{variant}: child did not start")
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        line = proc.stdout.readline().split()
        proc.wait(10)
    finally:
        proc.kill()
    return float(line[1]) - sent


BACKENDS = {
    "asyncio": ("asyncio", False),
    "asyncio+uvloop": ("asyncio", True),
    "trio": ("trio", False),
}


def run(smoke: bool) -> list[Row]:
    """One row per backend: gracestop against a bare anyio signal receiver."""
    rounds = 3 if smoke else 15
    rows = []
    for label, (backend, uvloop) in BACKENDS.items():
        samples = alternate(
            rounds,
            {
                "gracestop": partial(one, "gracestop", backend, uvloop),
                "bare": partial(one, "bare", backend, uvloop),
            },
        )
        rows.append(
            Row(
                group="signal -> first wrap-up hook",
                case=label,
                a=Measure("gracestop", "s", samples["gracestop"]),
                b=Measure("bare anyio receiver", "s", samples["bare"]),
                better="lower",
                kind="baseline",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    print(table(run(args.smoke)))


if __name__ == "__main__":
    main()
