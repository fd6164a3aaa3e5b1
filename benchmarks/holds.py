"""hold() cost: one ``coord.hold()`` opened and closed, against a bare counter of the same shape.

Work in flight (a request, a job) is wrapped in ``async with coord.hold(name):``, or
``with coord.hold(name):`` in a thread or sync code, so it is on every hot path.
Each sample opens and closes ``OPS`` holds in a loop inside one entered
coordinator (``signals=()``, no shutdown), timed with ``time.perf_counter()``,
and divides by ``OPS``: the figure is the time of one open and close, loop
included. The baseline does the same with a bare counter in the same shape: a
method that returns a fresh slotted context manager whose enter increments and
whose exit decrements an integer (``kind="baseline"``). Async form on asyncio and
on trio, the sync form on asyncio only (it does not use the event loop, so the
backend makes no difference to it). The two variants alternate within each round, each sample in a
fresh event loop.

    python benchmarks/holds.py [--smoke]
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from types import TracebackType

import anyio

sys.path.insert(0, os.path.dirname(__file__))

from _bench import Measure, Row, alternate, cli

import gracestop


class Counted:
    """The baseline: a count of work in flight, nothing else."""

    def __init__(self) -> None:
        self.count = 0

    def hold(self, name: str = "work") -> CountedHold:
        return CountedHold(self)


class CountedHold:
    __slots__ = ("_owner",)

    def __init__(self, owner: Counted) -> None:
        self._owner = owner

    def __enter__(self) -> CountedHold:
        self._owner.count += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._owner.count -= 1

    async def __aenter__(self) -> CountedHold:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


async def gracestop_async(ops: int) -> float:
    async with gracestop.ShutdownCoordinator(hooks=gracestop.Hooks(), signals=()) as coord:
        started = time.perf_counter()
        for _ in range(ops):
            async with coord.hold("request"):
                pass
        took = time.perf_counter() - started
        if coord.open_holds:
            raise RuntimeError(f"holds left open: {coord.open_holds}")
    return took / ops


async def gracestop_sync(ops: int) -> float:
    async with gracestop.ShutdownCoordinator(hooks=gracestop.Hooks(), signals=()) as coord:
        started = time.perf_counter()
        for _ in range(ops):
            with coord.hold("request"):
                pass
        took = time.perf_counter() - started
        if coord.open_holds:
            raise RuntimeError(f"holds left open: {coord.open_holds}")
    return took / ops


async def counter_async(ops: int) -> float:
    counted = Counted()
    started = time.perf_counter()
    for _ in range(ops):
        async with counted.hold("request"):
            pass
    took = time.perf_counter() - started
    if counted.count:
        raise RuntimeError(f"counter left at {counted.count}")
    return took / ops


async def counter_sync(ops: int) -> float:
    counted = Counted()
    started = time.perf_counter()
    for _ in range(ops):
        with counted.hold("request"):
            pass
    took = time.perf_counter() - started
    if counted.count:
        raise RuntimeError(f"counter left at {counted.count}")
    return took / ops


CASES = {
    "async with, asyncio": (gracestop_async, counter_async, "asyncio"),
    "async with, trio": (gracestop_async, counter_async, "trio"),
    "with (sync), asyncio": (gracestop_sync, counter_sync, "asyncio"),
}


def sample(variant: Callable[[int], Awaitable[float]], backend: str, ops: int) -> float:
    gc.collect()
    took: float = anyio.run(variant, ops, backend=backend)
    return took


def run(smoke: bool) -> list[Row]:
    """One row per form and backend: a hold against a bare counter."""
    rounds, ops = (3, 5_000) if smoke else (15, 50_000)
    rows = []
    for case, (mine, bare, backend) in CASES.items():
        samples = alternate(
            rounds,
            {
                "gracestop": partial(sample, mine, backend, ops),
                "counter": partial(sample, bare, backend, ops),
            },
        )
        rows.append(
            Row(
                group="hold() open and close",
                case=case,
                a=Measure("gracestop", "s", samples["gracestop"]),
                b=Measure("bare counter", "s", samples["counter"]),
                better="lower",
                kind="baseline",
                note=(
                    f"per operation, loop included; {ops:,} operations a sample; the hold takes"
                    " a lock (holds open from any thread), records its name and notifies the"
                    " coordinator when it closes; the counter does none of that"
                ),
            )
        )
    return rows


if __name__ == "__main__":
    cli(run, __doc__)
