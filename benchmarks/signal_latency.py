"""Signal → first wrap-up hook: gracestop against a bare anyio signal receiver.

Each round starts two fresh child processes, one per variant, in alternating
order. The parent sends SIGTERM and notes ``time.monotonic()`` (one clock for
every process on Linux); the child prints the same clock when its first hook
starts. The figure that matters is the ratio of the medians measured in the same
run, since absolute times on a shared machine are noise.

    python benchmarks/signal_latency.py [--rounds 15] [--backend asyncio|trio]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

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

anyio.run(bare if sys.argv[1] == "bare" else with_gracestop, backend=sys.argv[2])
"""


def one(variant: str, backend: str) -> float:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, variant, backend], stdout=subprocess.PIPE, text=True
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {"bare": [], "gracestop": []}
    for n in range(args.rounds):
        order = ["bare", "gracestop"] if n % 2 == 0 else ["gracestop", "bare"]
        for variant in order:
            samples[variant].append(one(variant, args.backend))
    medians = {k: statistics.median(v) for k, v in samples.items()}
    ratio = medians["gracestop"] / medians["bare"]
    print(f"signal -> first wrap-up hook ({args.backend}, {args.rounds} rounds, alternating)")
    for name, values in samples.items():
        print(
            f"  {name:<10} median {medians[name] * 1000:7.3f} ms"
            f"  (min {min(values) * 1000:.3f}, max {max(values) * 1000:.3f})"
        )
    print(f"  ratio gracestop / bare receiver: {ratio:.2f}")
    if args.json:
        args.json.write_text(
            json.dumps({"backend": args.backend, "samples": samples, "ratio": ratio}, indent=2)
        )


if __name__ == "__main__":
    main()
