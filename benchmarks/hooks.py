"""Shutdown of N hooks: gracestop against a bare task group running the same coroutines.

For N = 10, 1,000 and 10,000 hooks, each either a no-op or ``await anyio.sleep(0.1)``:

- gracestop: a coordinator (``signals=()``, so the runner's own Ctrl-C stays its
  own; ``wrap_up_time=30``, ``wait_time=60`` so no deadline is ever reached) with
  the N hooks registered as wrap-up hooks in one ``Hooks`` registry, default
  observers (one ``LoggingObserver``, logging not configured). The clock runs
  from just before ``coord.shutdown()`` to ``await coord.finished()`` returning
  the report: the trigger, the runner task waking, the wrap-up phase starting
  every hook in one ``order`` group, the (empty) shutdown phase, the report.
- the baseline: ``async with anyio.create_task_group()`` starting the same N
  coroutines with ``start_soon``, timed from before the group is opened to after
  it has closed (``kind="baseline"``).
- the floor: ``asyncio.TaskGroup`` with ``create_task`` (Python >= 3.11 only).

Registering the hooks, entering the coordinator and creating the event loop are
outside the timed window. Every sample runs in a fresh event loop
(``anyio.run``), in this process, after a ``gc.collect()``. The variants of a
case alternate within each round (9, 7 and 3 rounds for N = 10, 1,000 and
10,000; in smoke mode 2 rounds and N up to 1,000); a row is the ratio of
gracestop's time to the comparison's, per round, and the median of those ratios.
On trio the anyio task group is the only comparison.

    python benchmarks/hooks.py [--smoke]
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

import anyio

sys.path.insert(0, os.path.dirname(__file__))

from _bench import Measure, Row, alternate, cli

import gracestop

Hook = Callable[[], Coroutine[Any, Any, None]]

#: How long a sleeping hook sleeps.
NAP = 0.1


async def noop() -> None:
    """A hook that does nothing."""


async def nap() -> None:
    """A hook that waits a little, like a flush over the network."""
    await anyio.sleep(NAP)


HOOKS: dict[str, Hook] = {"no-op": noop, f"sleep({NAP:g})": nap}


async def with_gracestop(n: int, hook: Hook) -> float:
    hooks = gracestop.Hooks()
    for i in range(n):
        hooks.add_wrap_up_listener(hook, name=f"hook {i}")
    async with gracestop.ShutdownCoordinator(
        hooks=hooks, signals=(), wrap_up_time=30, wait_time=60
    ) as coord:
        started = time.perf_counter()
        coord.shutdown()
        report = await coord.finished()
        took = time.perf_counter() - started
    if not report.ok or len(report.results) != n:
        raise RuntimeError(f"gracestop: the shutdown did not run {n} hooks OK: {report.summary()}")
    return took


async def with_anyio(n: int, hook: Hook) -> float:
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(hook)
    return time.perf_counter() - started


FLOORS: dict[str, Callable[[int, Hook], Awaitable[float]]] = {}

if sys.version_info >= (3, 11):

    async def with_asyncio(n: int, hook: Hook) -> float:
        started = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(n):
                tg.create_task(hook())
        return time.perf_counter() - started

    FLOORS["asyncio"] = with_asyncio


def sample(
    variant: Callable[[int, Hook], Awaitable[float]], backend: str, n: int, hook: Hook
) -> float:
    gc.collect()
    took: float = anyio.run(variant, n, hook, backend=backend)
    return took


def run(smoke: bool) -> list[Row]:
    """One row per (N, hook, backend, comparison)."""
    # Rounds per N: the 10,000-hook samples take seconds each.
    sizes = {10: 2, 1000: 2} if smoke else {10: 9, 1000: 7, 10_000: 3}
    floor = FLOORS.get("asyncio")
    rows = []
    for n, rounds in sizes.items():
        group = f"shutdown of {n:,} hooks"
        for hook_name, hook in HOOKS.items():
            for backend in ("asyncio", "trio"):
                variants: dict[str, Callable[[], float]] = {
                    "gracestop": partial(sample, with_gracestop, backend, n, hook),
                    "anyio": partial(sample, with_anyio, backend, n, hook),
                }
                if backend == "asyncio" and floor is not None:
                    variants["asyncio"] = partial(sample, floor, backend, n, hook)
                samples = alternate(rounds, variants)
                case = f"{hook_name}, {backend}"
                mine = Measure("gracestop", "s", samples["gracestop"])
                note = ""
                if backend == "asyncio" and floor is None:
                    note = "asyncio.TaskGroup row skipped: it needs Python 3.11"
                rows.append(
                    Row(
                        group=group,
                        case=case,
                        a=mine,
                        b=Measure("anyio task group", "s", samples["anyio"]),
                        better="lower",
                        kind="baseline",
                        note=note,
                    )
                )
                if "asyncio" in samples:
                    rows.append(
                        Row(
                            group=group,
                            case=case,
                            a=mine,
                            b=Measure("asyncio.TaskGroup", "s", samples["asyncio"]),
                            better="lower",
                            kind="baseline",
                            note="the floor: asyncio's own task group, no anyio",
                        )
                    )
    return rows


if __name__ == "__main__":
    cli(run, __doc__)
