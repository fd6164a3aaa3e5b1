"""Signal → first wrap-up hook: gracestop against a bare anyio signal receiver.

Each round starts two fresh child processes (``benchmarks/peers/signal_child.py``),
one per variant, in alternating order; every wait on a child is bounded. The
parent sends SIGTERM and notes ``time.monotonic()`` (one clock for every process
on Linux); the child prints the same clock when its first hook starts. The figure
that matters is the ratio of the medians measured in the same run, since absolute
times on a shared machine are noise.

    python benchmarks/signal_latency.py [--smoke]
"""

from __future__ import annotations

import os
import sys
from functools import partial

sys.path.insert(0, os.path.dirname(__file__))

from _bench import Measure, Row, alternate, cli
from _procs import Program, ProgramError

#: Bound on each wait: for READY (a child starting on a busy machine), for HOOK, for
#: the exit.
TIMEOUT = 30.0


def one(variant: str, backend: str, uvloop: bool = False) -> float:
    """Start one child, send SIGTERM, return the time until its first hook started."""
    loop = "uvloop" if uvloop else "default"
    with Program("signal_child.py", variant, backend, loop) as program:
        program.expect("READY", TIMEOUT)
        sent = program.signal()
        line = program.expect("HOOK ", TIMEOUT)
        if program.exited_within(TIMEOUT) is None:
            raise ProgramError(f"still running {TIMEOUT}s after its hook\n{program.output()}")
    return float(line.split()[1]) - sent


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


if __name__ == "__main__":
    cli(run, __doc__)
