"""A hook's run and its worker thread (gracestop._runs), on asyncio and trio."""

from __future__ import annotations

import threading

import anyio
import pytest

from gracestop import Hooks, HookStatus, Phase
from gracestop._runs import Group, HookRun, call_sync_hook_in_thread, group_done
from gracestop._signals import loop_caller

pytestmark = pytest.mark.anyio


def make_run(func: object) -> HookRun:
    hooks = Hooks()
    hooks.add_shutdown_listener(func, name="h")  # type: ignore[arg-type]
    (hook,) = hooks
    return HookRun(hook)


async def test_a_sync_hook_runs_in_a_daemon_thread_and_may_use_from_thread() -> None:
    seen: list[object] = []

    async def loop_side() -> str:
        return "from the loop"

    def hook() -> None:
        seen.append(threading.current_thread().daemon)
        seen.append(anyio.from_thread.run(loop_side))

    run = make_run(hook)
    await call_sync_hook_in_thread(
        run, (), anyio.current_time() + 5, limiter=anyio.CapacityLimiter(1), call=loop_caller()
    )
    assert seen == [True, "from the loop"]
    assert not run.abandoned


async def test_a_sync_hooks_exception_reaches_the_caller() -> None:
    def hook() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await call_sync_hook_in_thread(
            make_run(hook),
            (),
            anyio.current_time() + 5,
            limiter=anyio.CapacityLimiter(1),
            call=loop_caller(),
        )


async def test_a_cancelled_sync_hook_is_marked_abandoned() -> None:
    release = threading.Event()
    run = make_run(lambda: release.wait(5))
    with anyio.move_on_after(0.05):
        await call_sync_hook_in_thread(
            run, (), anyio.current_time() + 5, limiter=anyio.CapacityLimiter(1), call=loop_caller()
        )
    release.set()
    assert run.abandoned


async def test_a_sync_hook_past_its_deadline_never_starts() -> None:
    called: list[bool] = []
    run = make_run(lambda: called.append(True))
    with anyio.move_on_after(0.05) as scope:
        await call_sync_hook_in_thread(
            run, (), anyio.current_time() - 1, limiter=anyio.CapacityLimiter(1), call=loop_caller()
        )
    assert scope.cancelled_caught
    assert called == []
    assert not run.abandoned


def test_results_and_groups() -> None:
    run = make_run(lambda: None)
    assert run.result(0.0).status is HookStatus.PENDING
    assert run.result(0.0).started_at is None
    run.started, run.ended, run.status = 10.0, 10.5, HookStatus.OK
    result = run.result(9.0)
    assert (result.started_at, result.duration, result.phase) == (1.0, 0.5, Phase.SHUTDOWN)
    group = Group(2)
    run.group = group
    assert not group_done([run], lambda: False)
    assert group_done([run], lambda: True)
    group.pending = 0
    assert group_done([run], lambda: False)
