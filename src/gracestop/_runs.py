"""One hook's run within one shutdown, and how a sync hook gets its thread."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

import anyio
import anyio.lowlevel

from ._config import _describe
from ._hooks import Hook
from ._report import HookResult, HookStatus

__all__ = ["Group", "HookRun", "call_sync_hook_in_thread", "group_done"]


class HookRun:
    """One hook's run within one shutdown."""

    __slots__ = (
        "abandoned",
        "ended",
        "error",
        "final",
        "group",
        "hook",
        "late",
        "started",
        "status",
    )

    def __init__(self, hook: Hook, *, late: bool = False) -> None:
        self.hook = hook
        self.late = late
        # A sync hook whose worker thread was left running at its deadline.
        self.abandoned = False
        # The result handed to the waiter and to the report, made once.
        self.final: HookResult | None = None
        # The order group it runs in, counting its members still running.
        self.group: Group | None = None
        self.status = HookStatus.PENDING
        self.started: float | None = None
        self.ended: float | None = None
        self.error: BaseException | None = None

    def result(self, t0: float) -> HookResult:
        """A snapshot of this run, with times relative to ``t0`` (the trigger)."""
        started_at = None if self.started is None else self.started - t0
        duration = None
        if self.started is not None:
            duration = (self.ended if self.ended is not None else time.monotonic()) - self.started
        return HookResult(
            name=self.hook.name,
            phase=self.hook.phase,
            order=self.hook.order,
            status=self.status,
            started_at=started_at,
            duration=duration,
            error=self.error,
            late=self.late,
        )


class Group:
    """An ``order`` group of one phase: how many of its hooks have not ended."""

    __slots__ = ("pending",)

    def __init__(self, size: int) -> None:
        self.pending = size


async def _unless_expired(deadline: float) -> None:
    """Return at once, unless ``deadline`` has passed: then wait for the
    cancellation that the passed deadline is about to deliver."""
    if anyio.current_time() >= deadline:
        await anyio.sleep_forever()


async def call_sync_hook_in_thread(
    run: HookRun,
    args: tuple[object, ...],
    deadline: float,
    *,
    limiter: anyio.CapacityLimiter,
    call: Callable[[Callable[[], object]], None],
) -> None:
    """Run a sync hook in a daemon worker thread and wait for it.

    At a deadline the thread is abandoned (Python cannot stop a thread) and
    ``run.abandoned`` is set. It is a daemon thread, so it cannot keep the process
    alive once the shutdown is over: trio's worker threads are; on asyncio, whose
    executor threads are not, the hook gets a thread of its own. Either way the
    hook can call back into the loop with ``anyio.from_thread``.
    """
    token = anyio.lowlevel.current_token()
    hook_call = functools.partial(_call_sync_hook, run.hook, args)
    # Whether a thread may be running the hook: only then is it abandoned.
    threaded = False
    try:
        await _unless_expired(deadline)
        if not isinstance(token.native_token, asyncio.AbstractEventLoop):
            threaded = True  # handed to trio, which may start it at any time
            await anyio.to_thread.run_sync(hook_call, abandon_on_cancel=True, limiter=limiter)
            return
        done = anyio.Event()
        failure: list[BaseException] = []
        context = contextvars.copy_context()

        def target() -> None:
            try:
                with _anyio_worker(token):
                    context.run(hook_call)
            except BaseException as exc:
                failure.append(exc)
            finally:
                call(done.set)

        async with limiter:
            # Waiting for a free thread may have used up the hook's time.
            await _unless_expired(deadline)
            thread = threading.Thread(
                target=target, name=f"gracestop hook {run.hook.name}", daemon=True
            )
            thread.start()
            threaded = True
            await done.wait()
        if failure:
            raise failure[0]
    except anyio.get_cancelled_exc_class():
        run.abandoned = threaded
        raise


@contextlib.contextmanager
def _anyio_worker(token: Any) -> Generator[None, None, None]:
    """Let a sync hook's thread call back into the loop with ``anyio.from_thread``,
    as it could in one of anyio's own worker threads."""
    try:
        from anyio._core._eventloop import threadlocals
    except ImportError:  # pragma: no cover - anyio moved it: from_thread needs token=
        yield
        return
    threadlocals.current_token = token
    try:
        yield
    finally:
        del threadlocals.current_token


def group_done(group: list[HookRun], cut_short: Callable[[], bool]) -> bool:
    return cut_short() or group[0].group is None or group[0].group.pending == 0


def _call_sync_hook(hook: Hook, args: tuple[object, ...]) -> None:
    """Run a sync hook in its worker thread, refusing one that returns an awaitable."""
    value = hook.func(*args)
    if inspect.isawaitable(value) or inspect.isasyncgen(value) or inspect.isgenerator(value):
        if inspect.iscoroutine(value) or inspect.isgenerator(value):
            value.close()  # never run: close it rather than warn at GC
        raise TypeError(
            f"sync hook {hook.name!r} returned {_describe(value)} without running "
            "it; declare the hook `async def`"
        )
