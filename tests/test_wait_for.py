"""``ShutdownCoordinator.wait_for`` and ``wrap_up_deadline``."""

from __future__ import annotations

import anyio
import pytest

from gracestop import ShutdownCoordinator, State

pytestmark = pytest.mark.anyio


async def test_wait_for_wakes_each_waiter_at_its_state_in_order() -> None:
    seen: list[State] = []
    coord = ShutdownCoordinator(signals=(), drain_delay=0.05, wrap_up_time=0.5, wait_time=5)

    async def watch(state: State) -> None:
        await coord.wait_for(state)
        assert coord.state.rank >= state.rank
        seen.append(state)

    async with anyio.create_task_group() as tg:
        for state in (State.STOPPED, State.SHUTTING_DOWN, State.WRAPPING_UP, State.DRAINING):
            tg.start_soon(watch, state)
        await anyio.wait_all_tasks_blocked()
        assert seen == []
        with anyio.fail_after(5):
            async with coord:
                await coord.wait_for(State.RUNNING)
                async with coord.hold("request"):
                    coord.shutdown("test")
                    with anyio.fail_after(5):
                        await coord.wait_for(State.WRAPPING_UP)
                    await anyio.wait_all_tasks_blocked()
                    # Closing holds does not wake a waiter for a later state.
                    assert seen == [State.DRAINING, State.WRAPPING_UP]
    assert seen == [State.DRAINING, State.WRAPPING_UP, State.SHUTTING_DOWN, State.STOPPED]


async def test_wait_for_returns_at_once_for_a_state_already_past() -> None:
    async with ShutdownCoordinator(signals=()) as coord:
        coord.shutdown()
        await coord.finished()
        with anyio.fail_after(1):
            # DRAINING was skipped (no drain delay): it is behind STOPPED all the same.
            for state in State:
                await coord.wait_for(state)


async def test_wait_for_is_set_from_another_thread() -> None:
    async with ShutdownCoordinator(signals=()) as coord:
        await anyio.to_thread.run_sync(coord.shutdown)
        with anyio.fail_after(5):
            await coord.wait_for(State.WRAPPING_UP)
        assert coord.trigger is not None


async def test_wait_for_refuses_what_is_not_a_state() -> None:
    coord = ShutdownCoordinator(signals=())
    with pytest.raises(TypeError, match=r"state must be a gracestop.State; got str 'stopped'"):
        await coord.wait_for("stopped")  # type: ignore[arg-type]


async def test_wrap_up_deadline_is_the_end_of_the_window() -> None:
    coord = ShutdownCoordinator(signals=(), drain_delay=0.1, wrap_up_time=2, wait_time=10)
    assert coord.wrap_up_deadline is None
    async with coord:
        async with coord.hold("request"):
            coord.shutdown()
            assert coord.wrap_up_deadline is None  # draining
            await coord.wait_for(State.WRAPPING_UP)
            deadline = coord.wrap_up_deadline
            assert deadline is not None
            assert 1.5 < deadline - anyio.current_time() <= 2
    assert coord.wrap_up_deadline == deadline


async def test_wrap_up_is_reached_with_its_deadline_known_without_drain() -> None:
    async with ShutdownCoordinator(signals=(), wrap_up_time=1, wait_time=5) as coord:
        async with coord.hold("request"):
            coord.shutdown()
            assert coord.state is State.WRAPPING_UP
            with anyio.fail_after(5):
                await coord.wait_for(State.WRAPPING_UP)
            assert coord.wrap_up_deadline is not None
