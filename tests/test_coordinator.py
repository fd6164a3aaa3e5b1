"""ShutdownCoordinator behaviour, in process, on asyncio and trio."""

from __future__ import annotations

import logging
import threading
import time

import anyio
import anyio.lowlevel
import pytest

import gracestop
from gracestop import (
    HookContext,
    Hooks,
    HookStatus,
    Phase,
    ShutdownConfig,
    ShutdownCoordinator,
    ShutdownError,
    State,
)

pytestmark = pytest.mark.anyio

QUIET = {"signals": ()}  # in-process tests trigger by hand; signals are tested in tests/process


def coordinator(hooks: Hooks | None = None, **overrides: object) -> ShutdownCoordinator:
    return ShutdownCoordinator(hooks=hooks if hooks is not None else Hooks(), **QUIET, **overrides)


async def test_phases_run_in_order_and_block_exits_normally() -> None:
    events: list[str] = []
    hooks = Hooks()

    @hooks.on_shutdown
    async def close_db() -> None:
        events.append("shutdown")

    @hooks.on_wrap_up
    async def flush() -> None:
        await anyio.sleep(0.01)
        events.append("wrap_up")

    async with coordinator(hooks) as coord:
        assert coord.state is State.RUNNING
        assert coord.ready
        coord.shutdown("test")
        await anyio.sleep_forever()
    assert events == ["wrap_up", "shutdown"]
    assert coord.state is State.STOPPED
    report = coord.report
    assert report is not None
    assert report.ok
    assert report.trigger.kind == "manual"
    assert report.trigger.reason == "test"
    assert [r.name for r in report.results] == ["flush", "close_db"]
    assert [r.phase for r in report.results] == [Phase.WRAP_UP, Phase.SHUTDOWN]


async def test_body_returning_triggers_exit_and_runs_hooks_before_aexit_returns() -> None:
    ran: list[str] = []
    hooks = Hooks()
    hooks.add_shutdown_listener(lambda: ran.append("sync-lambda"))
    async with coordinator(hooks) as coord:
        pass
    assert ran == ["sync-lambda"]
    assert coord.report is not None
    assert coord.report.trigger.kind == "exit"


async def test_body_error_propagates_unchanged_after_the_hooks_ran() -> None:
    ran: list[str] = []
    hooks = Hooks()

    @hooks.on_shutdown
    async def cleanup() -> None:
        ran.append("cleanup")

    class Boom(Exception):
        pass

    boom = Boom("in the body")
    with pytest.raises(Boom) as info:
        async with coordinator(hooks) as coord:
            raise boom
    assert info.value is boom
    assert ran == ["cleanup"]
    assert coord.report is not None
    assert coord.report.trigger.kind == "error"
    assert "Boom" in coord.report.trigger.reason


async def test_outer_cancellation_runs_the_shutdown_shielded_then_propagates() -> None:
    hooks = Hooks()
    done: list[str] = []

    @hooks.on_wrap_up
    async def slow_flush() -> None:
        await anyio.sleep(0.05)  # must survive the outer cancellation
        done.append("flushed")

    coord = coordinator(hooks)
    with anyio.CancelScope() as outer:
        async with coord:
            outer.cancel()
            await anyio.sleep_forever()
    assert outer.cancelled_caught
    assert done == ["flushed"]
    assert coord.report is not None
    assert coord.report.trigger.kind == "cancelled"
    assert coord.report.ok


async def test_finished_returns_the_report_inside_the_body() -> None:
    async with coordinator() as coord:
        coord.shutdown()
        report = await coord.finished()
        assert report is coord.report
        trigger = await coord.triggered()
        assert trigger is report.trigger


async def test_order_groups_run_in_sequence_and_equal_orders_together() -> None:
    hooks = Hooks()
    log: list[str] = []
    both_running = anyio.Event()
    started: set[str] = set()

    async def together(name: str) -> None:
        started.add(name)
        if {"a", "b"} <= started:
            both_running.set()
        with anyio.fail_after(2):
            await both_running.wait()
        log.append(name)

    async def first() -> None:
        log.append("first")

    async def a() -> None:
        await together("a")

    async def b() -> None:
        await together("b")

    async def last() -> None:
        log.append("last")

    hooks.on_shutdown(order=10)(last)
    hooks.on_shutdown(order=5)(a)
    hooks.on_shutdown(order=5)(b)
    hooks.on_shutdown(order=-1)(first)
    async with coordinator(hooks) as coord:
        coord.shutdown()
    assert log[0] == "first"
    assert sorted(log[1:3]) == ["a", "b"]
    assert log[3] == "last"
    assert coord.report is not None and coord.report.ok


async def test_shutdown_phase_starts_as_soon_as_wrap_up_is_done() -> None:
    hooks = Hooks()
    hooks.add_wrap_up_listener(lambda: None)
    closed = hooks.add_shutdown_listener(lambda: None)
    async with coordinator(hooks, wrap_up_time=3, wait_time=5) as coord:
        coord.shutdown()
    result = await closed()
    assert result.started_at is not None
    # Far below wrap_up_time: no fixed sleep stands between the phases.
    assert result.started_at < 1.0
    assert coord.report is not None and coord.report.duration < 1.0


async def test_hold_keeps_wrap_up_open_until_released() -> None:
    hooks = Hooks()
    order: list[str] = []

    @hooks.on_shutdown
    async def close_db() -> None:
        order.append("db closed")

    async with coordinator(hooks, wrap_up_time=3, wait_time=5) as coord:
        async with coord.hold("request"):
            coord.shutdown()
            await anyio.sleep(0.05)
            assert coord.state is State.WRAPPING_UP
            assert coord.open_holds == ("request",)
            order.append("request done")
    assert order == ["request done", "db closed"]
    assert coord.report is not None
    assert coord.report.open_holds == ()


async def test_hold_still_open_when_wrap_up_time_runs_out_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = Hooks()
    closed = hooks.add_shutdown_listener(lambda: None)
    caplog.set_level(logging.WARNING, logger="gracestop")
    async with coordinator(hooks, wrap_up_time=0.1, wait_time=2) as coord:
        with coord.hold("stuck-request"):  # the sync form
            coord.shutdown()
            result = await closed()
            assert result.status is HookStatus.OK
            await coord.finished()
            assert coord.state is State.STOPPED
    assert coord.report is not None
    assert coord.report.open_holds == ("stuck-request",)
    assert "stuck-request" in caplog.text


async def test_hold_released_from_another_thread_ends_wrap_up() -> None:
    hooks = Hooks()
    closed = hooks.add_shutdown_listener(lambda: None)
    async with coordinator(hooks, wrap_up_time=3, wait_time=5) as coord:
        hold = coord.hold("threaded")
        hold.__enter__()
        coord.shutdown()
        release = threading.Timer(0.05, hold.__exit__, args=(None, None, None))
        release.start()
        result = await closed()
        release.join()
    assert result.status is HookStatus.OK
    assert result.started_at is not None and result.started_at < 2.0


async def test_hold_cannot_be_entered_twice_and_validates_its_name() -> None:
    async with coordinator() as coord:
        hold = coord.hold("x")
        with hold, pytest.raises(ShutdownError, match="already open"):
            hold.__enter__()
        with pytest.raises(TypeError, match="name"):
            coord.hold(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="name"):
            coord.hold("")
        assert "closed" in repr(hold)


async def test_wrap_up_hook_past_the_window_runs_on_beside_shutdown_hooks() -> None:
    hooks = Hooks()
    seen: list[str] = []
    shutdown_started = anyio.Event()

    @hooks.on_wrap_up
    async def long_flush() -> None:
        with anyio.fail_after(2):
            await shutdown_started.wait()
        seen.append("flush saw the shutdown phase")

    @hooks.on_shutdown
    async def close() -> None:
        shutdown_started.set()

    async with coordinator(hooks, wrap_up_time=0.05, wait_time=3) as coord:
        coord.shutdown()
    assert seen == ["flush saw the shutdown phase"]
    assert coord.report is not None and coord.report.ok


async def test_deadline_times_out_running_hooks_and_cancels_unstarted_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gracestop")
    hooks = Hooks()
    stuck = hooks.add_wrap_up_listener(anyio.sleep_forever, name="stuck")
    later = hooks.add_shutdown_listener(lambda: None, name="later", order=1)
    blocker = hooks.add_shutdown_listener(anyio.sleep_forever, name="blocker")
    async with coordinator(hooks, wrap_up_time=0.05, wait_time=0.3) as coord:
        coord.shutdown()
    report = coord.report
    assert report is not None
    assert report.forced
    assert report.forced_by == "deadline"
    assert not report.ok
    assert (await stuck()).status is HookStatus.TIMED_OUT
    assert (await blocker()).status is HookStatus.TIMED_OUT
    never = await later()
    assert never.status is HookStatus.CANCELLED
    assert never.started_at is None
    assert "1 hook never started: later" in caplog.text
    forced = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert forced == [
        f"shutdown forced by deadline in {report.duration:.3f}s: 3 hooks, 2 timed_out, "
        "1 cancelled; cut short: stuck, blocker, later"
    ]


async def test_hook_timeout_and_default_hook_timeout() -> None:
    hooks = Hooks()
    own = hooks.add_wrap_up_listener(anyio.sleep_forever, timeout="50ms")
    default = hooks.add_shutdown_listener(anyio.sleep_forever)
    quick = hooks.add_shutdown_listener(lambda: None)
    async with coordinator(hooks, hook_timeout=0.05, wait_time=3) as coord:
        coord.shutdown()
    assert (await own()).status is HookStatus.TIMED_OUT
    assert (await default()).status is HookStatus.TIMED_OUT
    assert (await quick()).status is HookStatus.OK
    assert isinstance((await own()).error, TimeoutError)
    assert coord.report is not None
    assert not coord.report.forced
    assert coord.report.duration < 2


async def test_sync_hooks_run_in_a_worker_thread_without_blocking_the_loop() -> None:
    hooks = Hooks()
    threads: list[int] = []
    release = threading.Event()
    ticks = 0

    def blocking_close() -> None:
        threads.append(threading.get_ident())
        # Blocks until the loop has ticked five times: a blocked loop never would.
        assert release.wait(5), "the event loop was blocked by a sync hook"

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(5):
            await anyio.sleep(0.01)
            ticks += 1
        release.set()

    hooks.on_shutdown(blocking_close)
    hooks.on_shutdown(ticker)
    async with coordinator(hooks) as coord:
        coord.shutdown()
    assert threads and threads[0] != threading.get_ident()
    assert ticks == 5
    assert coord.report is not None and coord.report.ok


async def test_sync_hook_abandoned_at_its_timeout() -> None:
    hooks = Hooks()
    release = threading.Event()
    stuck = hooks.add_shutdown_listener(lambda: release.wait(5), timeout=0.05)
    async with coordinator(hooks, hard_exit=False) as coord:
        coord.shutdown()
    release.set()
    assert (await stuck()).status is HookStatus.TIMED_OUT
    assert coord.report is not None and coord.report.duration < 2


async def test_sync_hook_returning_a_coroutine_is_reported_as_failed() -> None:
    hooks = Hooks()

    async def work() -> None:
        pass

    wrong = hooks.add_shutdown_listener(lambda: work())
    async with coordinator(hooks) as coord:
        coord.shutdown()
    result = await wrong()
    assert result.status is HookStatus.FAILED
    assert isinstance(result.error, TypeError)
    assert "async def" in str(result.error)


async def test_failing_hook_is_logged_and_reported_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = Hooks()
    ran: list[str] = []

    @hooks.on_shutdown(name="broken")
    async def broken() -> None:
        raise RuntimeError("connection lost")

    @hooks.on_shutdown
    async def fine() -> None:
        await anyio.sleep(0.01)
        ran.append("fine")

    caplog.set_level(logging.WARNING, logger="gracestop")
    async with coordinator(hooks) as coord:
        coord.shutdown()
    assert ran == ["fine"]
    report = coord.report
    assert report is not None and not report.ok and not report.forced
    failed = report.by_status(HookStatus.FAILED)
    assert [r.name for r in failed] == ["broken"]
    assert isinstance(failed[0].error, RuntimeError)
    record = next(r for r in caplog.records if "broken" in r.getMessage())
    assert record.exc_info is not None
    assert "connection lost" in caplog.text


@pytest.mark.parametrize("exit_exc", [KeyboardInterrupt, SystemExit])
async def test_keyboard_interrupt_in_a_hook_is_recorded_then_raised_after_the_shutdown(
    exit_exc: type[BaseException],
) -> None:
    hooks = Hooks()
    ran: list[str] = []

    @hooks.on_wrap_up
    async def interrupted() -> None:
        raise exit_exc

    @hooks.on_shutdown
    async def still_runs() -> None:
        ran.append("ran")

    coord = coordinator(hooks)
    with pytest.raises(exit_exc):
        async with coord:
            coord.shutdown()
    assert ran == ["ran"]
    assert coord.report is not None
    assert coord.report.by_status(HookStatus.FAILED)[0].name == "interrupted"


async def test_hook_context_tells_phase_name_trigger_and_deadline() -> None:
    hooks = Hooks()
    seen: list[HookContext] = []
    remaining: list[float] = []

    @hooks.on_wrap_up(name="ctx-hook", timeout=2)
    async def with_context(ctx: HookContext) -> None:
        seen.append(ctx)
        remaining.append(ctx.remaining())
        assert ctx.deadline <= anyio.current_time() + 2

    @hooks.on_shutdown
    def sync_with_context(ctx: HookContext) -> None:
        remaining.append(ctx.remaining())  # works off the loop thread too

    async with coordinator(hooks, wait_time=5) as coord:
        coord.shutdown("ctx")
    (ctx,) = seen
    assert ctx.name == "ctx-hook"
    assert ctx.phase is Phase.WRAP_UP
    assert ctx.trigger.reason == "ctx"
    assert 1.5 < remaining[0] <= 2
    assert 3 < remaining[1] <= 5
    assert "ctx-hook" in repr(ctx)
    assert coord.report is not None and coord.report.ok


async def test_late_hooks_join_or_start_at_once_and_their_waiters_return() -> None:
    hooks = Hooks()
    waiters: dict[str, gracestop.Waiter] = {}
    registered = anyio.Event()
    ran: list[str] = []

    async def late_shutdown() -> None:
        ran.append("late shutdown")

    async def late_wrap_up() -> None:
        ran.append("late wrap-up")

    coord = coordinator(hooks)

    @hooks.on_wrap_up
    async def registers_more() -> None:
        # The wrap-up phase is running: a wrap-up hook starts at once, a shutdown
        # hook joins its phase.
        waiters["wrap"] = coord.add_wrap_up_listener(late_wrap_up)
        waiters["shut"] = coord.add_shutdown_listener(late_shutdown)
        registered.set()
        await anyio.sleep(0.02)

    async with coord:
        coord.shutdown()
        await coord.triggered()
        body_late = coord.add_shutdown_listener(lambda: ran.append("from body"))
        await registered.wait()
        results = [await waiters["wrap"](), await waiters["shut"](), await body_late()]
    assert all(r.status is HookStatus.OK for r in results)
    assert all(r.late for r in results)
    assert set(ran) == {"late wrap-up", "late shutdown", "from body"}
    assert ran.index("late wrap-up") < ran.index("late shutdown")
    with pytest.raises(ShutdownError, match="stopped"):
        coord.add_shutdown_listener(late_shutdown)


async def test_hook_registered_late_after_both_phases_started_runs_at_once() -> None:
    hooks = Hooks()
    coord = coordinator(hooks, wait_time=3)
    late: list[gracestop.Waiter] = []

    @hooks.on_shutdown
    async def registers_late_wrap_up() -> None:
        late.append(coord.add_wrap_up_listener(lambda: None, name="late-wrap-up"))

    async with coord:
        coord.shutdown()
    result = await late[0]()
    assert result.status is HookStatus.OK
    assert result.late
    assert coord.report is not None
    assert [r.name for r in coord.report.results] == ["late-wrap-up", "registers_late_wrap_up"]


async def test_waiter_of_decorated_hooks_and_of_registries() -> None:
    hooks = Hooks()

    @hooks.on_shutdown
    async def from_registry() -> None:
        pass

    async with coordinator(hooks) as coord:

        @coord.on_wrap_up(name="own")
        async def own() -> None:
            pass

        own_waiter = coord.waiter(own)
        reg_waiter = coord.waiter(from_registry)
        assert reg_waiter is hooks.waiter(from_registry)
        assert not own_waiter.done
        assert own_waiter.result is None
        assert "pending" in repr(own_waiter)
        coord.shutdown()
        first, second = await own_waiter(), await own_waiter.wait()
        assert first is second
        assert await reg_waiter is reg_waiter.result
    assert own_waiter.done
    with pytest.raises(ValueError, match="not registered"):
        coord.waiter(print)


async def test_waiter_awaited_by_several_tasks() -> None:
    hooks = Hooks()
    waiter = hooks.add_wrap_up_listener(lambda: None)
    results: list[object] = []

    async def wait_for_it() -> None:
        results.append(await waiter())

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(wait_for_it)
        async with coordinator(hooks) as coord:
            await anyio.sleep(0.01)
            coord.shutdown()
    assert len(results) == 3
    assert all(r is results[0] for r in results)


async def test_registry_hooks_are_read_at_trigger_time() -> None:
    hooks = Hooks()
    coord = coordinator(hooks)
    async with coord:
        hooks.add_shutdown_listener(lambda: None, name="before")
        coord.shutdown()
        hooks.add_shutdown_listener(lambda: None, name="after")  # not seen
    assert coord.report is not None
    assert [r.name for r in coord.report.results] == ["before"]


async def test_default_registry_and_module_level_decorators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gracestop.default_hooks, "_hooks", [])
    ran: list[str] = []

    @gracestop.on_wrap_up
    async def module_level() -> None:
        ran.append("wrap")

    @gracestop.on_shutdown(name="module-close")
    def module_close() -> None:
        ran.append("close")

    assert len(gracestop.default_hooks) == 2
    async with ShutdownCoordinator(signals=()) as coord:
        coord.shutdown()
    assert ran == ["wrap", "close"]
    assert coord.report is not None
    assert [r.name for r in coord.report.results] == ["module_level", "module-close"]


async def test_several_registries_and_duplicates() -> None:
    one, two = Hooks(), Hooks()
    one.add_wrap_up_listener(lambda: None, name="one")
    two.add_wrap_up_listener(lambda: None, name="two")
    async with ShutdownCoordinator(hooks=[one, two, one], signals=()) as coord:
        coord.shutdown()
    assert coord.report is not None
    assert [r.name for r in coord.report.results] == ["one", "two"]


async def test_states_readiness_and_drain_delay() -> None:
    seen: list[tuple[State, bool, bool]] = []
    hooks = Hooks()

    @hooks.on_wrap_up
    async def record_wrap_up() -> None:
        seen.append((coord.state, coord.ready, coord.accepting))

    @hooks.on_shutdown
    async def record_shutdown() -> None:
        seen.append((coord.state, coord.ready, coord.accepting))

    coord = coordinator(hooks, drain_delay=0.5, wait_time=2)
    assert coord.state is State.IDLE
    assert not coord.ready and not coord.accepting
    async with coord:
        assert (coord.state, coord.ready, coord.accepting) == (State.RUNNING, True, True)
        coord.shutdown()
        assert (coord.state, coord.ready, coord.accepting) == (State.DRAINING, False, True)
        await anyio.sleep(0.05)
        assert coord.state is State.DRAINING  # still serving during the drain delay
    assert seen == [
        (State.WRAPPING_UP, False, False),
        (State.SHUTTING_DOWN, False, False),
    ]
    report = coord.report
    assert report is not None
    drain = report.phases[0]
    assert drain.name == "drain"
    assert drain.end is not None and drain.end - drain.start >= 0.49


async def test_drain_delay_is_skipped_when_the_block_ends() -> None:
    async with coordinator(drain_delay=5, wait_time=6) as coord:
        pass
    assert coord.report is not None
    assert coord.report.duration < 1
    assert [p.name for p in coord.report.phases] == ["wrap_up", "shutdown"]


async def test_shutdown_is_idempotent_and_callable_from_another_thread() -> None:
    async with coordinator() as coord:
        thread = threading.Thread(target=coord.shutdown, args=("from a thread",))
        thread.start()
        trigger = await coord.triggered()
        thread.join()
        coord.shutdown("again")
        assert trigger.reason == "from a thread"
    assert coord.report is not None
    assert coord.report.trigger.reason == "from a thread"


async def test_misuse_raises_shutdown_error() -> None:
    coord = coordinator()
    with pytest.raises(ShutdownError, match="entered"):
        coord.shutdown()
    with pytest.raises(ShutdownError, match="entered"):
        await coord.triggered()
    with pytest.raises(ShutdownError, match="entered"):
        await coord.finished()
    with pytest.raises(ValueError, match="wait_time"):
        coord.set_time_to_force_quit("soon")
    with pytest.raises(ValueError, match="wait_time"):
        coord.set_time_to_force_quit(0.5)  # below wrap_up_time + drain_delay
    async with coord:
        coord.set_time_to_force_quit("3s")
        assert coord.config.wait_time == 3.0
        coord.shutdown()
        with pytest.raises(ShutdownError, match="before"):
            coord.set_time_to_force_quit(10)
    with pytest.raises(ShutdownError, match="runs once"):
        async with coord:
            pass


async def test_bad_input_is_refused_with_clear_errors() -> None:
    coord = coordinator()
    with pytest.raises(TypeError, match="callable"):
        coord.add_wrap_up_listener("not a function")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_shutdown"):
        coord.on_shutdown("db")
    with pytest.raises(ValueError, match="timeout"):
        coord.on_shutdown(timeout=-1)
    with pytest.raises(TypeError, match="order"):
        coord.add_shutdown_listener(print, order="first")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name"):
        coord.add_shutdown_listener(print, name=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reason"):
        async with coord:
            coord.shutdown(reason=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config"):
        ShutdownCoordinator({"wait_time": 3})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="hooks"):
        ShutdownCoordinator(hooks="mine")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="hooks"):
        ShutdownCoordinator(hooks=[Hooks(), 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="wiat_time"):
        ShutdownCoordinator(wiat_time=3)
    with pytest.raises(ValueError, match="wait_time"):
        ShutdownCoordinator(wait_time="soon")
    with pytest.raises(TypeError, match="must take no argument or one HookContext"):
        coord.add_shutdown_listener(lambda a, b: None)


async def test_config_and_overrides_combine() -> None:
    base = ShutdownConfig(wait_time=8, wrap_up_time=2)
    coord = ShutdownCoordinator(base, wrap_up_time=3, signals=())
    assert coord.config.wait_time == 8
    assert coord.config.wrap_up_time == 3
    assert gracestop.Coordinator is ShutdownCoordinator
    assert "idle" in repr(coord)


async def test_progress_lines_name_what_is_still_pending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = Hooks()

    @hooks.on_wrap_up(name="slow-flush")
    async def slow() -> None:
        await anyio.sleep(0.3)

    caplog.set_level(logging.INFO, logger="gracestop")
    async with coordinator(hooks, progress_interval=0.05, wait_time=3) as coord:
        async with coord.hold("upload"):
            coord.shutdown()
            await anyio.sleep(0.2)
    progress = [r.getMessage() for r in caplog.records if "still waiting" in r.getMessage()]
    assert progress
    assert "slow-flush" in progress[0]
    assert "hold upload" in progress[0]
    assert "force quit in" in progress[0]


async def test_trigger_and_summary_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gracestop")
    hooks = Hooks()
    hooks.add_shutdown_listener(lambda: None, name="close")
    async with coordinator(hooks, wait_time=5.5) as coord:
        coord.shutdown("deploy")
    messages = [r.getMessage() for r in caplog.records]
    assert "shutdown requested (deploy), shutting down; force quit in 5.5s" in messages
    assert any(m.startswith("wrap-up phase") for m in messages)
    assert any(m.startswith("shutdown phase") for m in messages)
    assert any(m.startswith("shutdown ok in") for m in messages)
    assert any("hook close ended" in m for m in messages)


async def test_second_signal_forces_the_quit_in_process() -> None:
    import signal

    hooks = Hooks()
    slow = hooks.add_wrap_up_listener(anyio.sleep_forever, name="slow")
    never = hooks.add_shutdown_listener(lambda: None, name="never")
    async with ShutdownCoordinator(hooks=hooks, signals=("USR1",), hard_exit=False) as coord:
        import os

        os.kill(os.getpid(), signal.SIGUSR1)
        await coord.triggered()
        while coord.state is not State.WRAPPING_UP:
            await anyio.sleep(0.005)
        os.kill(os.getpid(), signal.SIGUSR1)
        await anyio.sleep_forever()
    report = coord.report
    assert report is not None
    assert report.forced and report.forced_by == "signal"
    assert (await slow()).status is HookStatus.CANCELLED
    assert (await never()).status is HookStatus.CANCELLED
    assert report.trigger.signal is signal.SIGUSR1


async def test_hook_registered_from_another_thread_while_its_phase_runs() -> None:
    hooks = Hooks()
    coord = coordinator(hooks, wait_time=3)
    late: list[gracestop.Waiter] = []

    @hooks.on_wrap_up
    def registers_from_a_thread() -> None:  # sync: runs in a worker thread
        late.append(coord.add_wrap_up_listener(lambda: None, name="from-thread"))

    async with coord:
        coord.shutdown()
    assert coord.report is not None
    assert coord.report.ok
    result = await late[0]()
    assert result.status is HookStatus.OK
    assert result.late
    assert coord.report.duration < 1


async def test_later_wrap_up_groups_start_when_the_window_closes_not_after_shutdown() -> None:
    hooks = Hooks()
    db = {"open": True}
    seen: list[bool] = []

    @hooks.on_wrap_up(order=0)
    async def long_first() -> None:
        await anyio.sleep(1)

    @hooks.on_wrap_up(order=1)
    async def flush_to_db() -> None:
        seen.append(db["open"])

    @hooks.on_shutdown
    async def close_db() -> None:
        await anyio.sleep(0.1)
        db["open"] = False

    async with coordinator(hooks, wrap_up_time=0.1, wait_time=3) as coord:
        coord.shutdown()
    assert seen == [True]
    report = coord.report
    assert report is not None
    assert report.ok
    started = {r.name: r.started_at for r in report.results}
    assert started["flush_to_db"] is not None
    assert started["flush_to_db"] < 0.5


async def test_a_hook_raising_a_cancellation_of_its_own_is_a_failure() -> None:
    hooks = Hooks()
    ran: list[str] = []

    @hooks.on_wrap_up
    async def leaks_cancel() -> None:
        # A cancellation caught inside its own scope, raised again outside it.
        leaked: BaseException | None = None
        with anyio.CancelScope() as inner:
            inner.cancel()
            try:
                await anyio.sleep(1)
            except anyio.get_cancelled_exc_class() as exc:
                leaked = exc
        assert leaked is not None
        raise leaked

    @hooks.on_shutdown
    async def after() -> None:
        ran.append("after")

    async with coordinator(hooks) as coord:
        coord.shutdown()
    assert ran == ["after"]
    assert coord.report is not None
    assert not coord.report.forced
    (failed,) = coord.report.by_status(HookStatus.FAILED)
    assert failed.name == "leaks_cancel"
    assert isinstance(failed.error, anyio.get_cancelled_exc_class())


async def test_hook_added_to_a_registry_during_its_shutdown_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = Hooks()
    caplog.set_level(logging.WARNING, logger="gracestop")

    @hooks.on_wrap_up
    async def adds_to_registry() -> None:
        hooks.add_shutdown_listener(lambda: None, name="too-late")

    async with coordinator(hooks) as coord:
        coord.shutdown()
    assert "too-late was added to a Hooks registry during a shutdown" in caplog.text
    assert coord.report is not None
    assert [r.name for r in coord.report.results] == ["adds_to_registry"]
    caplog.clear()
    hooks.add_shutdown_listener(lambda: None, name="after-the-shutdown")
    assert "after-the-shutdown" not in caplog.text


async def test_without_drain_delay_the_trigger_moves_straight_to_wrap_up() -> None:
    async with coordinator() as coord:
        coord.shutdown()
        assert coord.state is State.WRAPPING_UP
        assert not coord.ready
        assert not coord.accepting


async def test_system_exit_from_the_body_is_an_exit_trigger() -> None:
    with pytest.raises(SystemExit):
        async with coordinator() as coord:
            raise SystemExit(0)
    assert coord.report is not None
    assert coord.report.trigger.kind == "exit"
    assert coord.report.trigger.reason == "SystemExit(0)"


async def test_holds_open_at_a_forced_quit_are_reported() -> None:
    hooks = Hooks()
    hooks.add_shutdown_listener(anyio.sleep_forever)
    async with coordinator(hooks, wrap_up_time=0, wait_time=0.2) as coord:
        with coord.hold("upload"):
            coord.shutdown()
            await coord.finished()
    assert coord.report is not None
    assert coord.report.forced
    assert coord.report.open_holds == ("upload",)


async def test_nested_coordinator_is_a_child_of_the_enclosing_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gracestop.default_hooks, "_hooks", [])
    events: list[str] = []
    gracestop.default_hooks.add_shutdown_listener(lambda: events.append("default"))
    outer_hooks = Hooks()

    @outer_hooks.on_shutdown
    async def close_outer_db() -> None:
        events.append("outer close")

    outer = ShutdownCoordinator(hooks=[outer_hooks, gracestop.default_hooks], signals=())
    inner_ready = anyio.Event()

    async def library_service() -> None:
        async with ShutdownCoordinator() as inner:  # no hooks=: defaults stay with outer
            assert inner.signals == ()

            @inner.on_wrap_up
            async def inner_flush() -> None:
                await anyio.sleep(0.05)
                events.append("inner flush")

            @inner.on_shutdown
            async def inner_close() -> None:
                events.append("inner close")

            inner_ready.set()
            await anyio.sleep_forever()
        assert inner.report is not None
        assert inner.report.trigger.kind == "manual"
        assert "enclosing coordinator" in inner.report.trigger.reason

    async with outer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(library_service)
            await inner_ready.wait()
            assert outer.open_holds == ("coordinator #" + str(outer._id + 1),)
            outer.shutdown("deploy")
    # The child's whole shutdown runs inside the parent's wrap-up phase, before
    # the parent's own shutdown hooks (which run together).
    assert events[:2] == ["inner flush", "inner close"]
    assert sorted(events[2:]) == ["default", "outer close"]
    assert outer.report is not None
    assert outer.report.ok


async def test_nested_coordinator_entered_after_the_trigger_shuts_down_at_once() -> None:
    async with coordinator(wrap_up_time=2, wait_time=3) as outer:
        outer.shutdown()
        async with ShutdownCoordinator(hooks=Hooks()) as inner:
            assert inner.trigger is not None
            await anyio.sleep_forever()
    assert inner.report is not None
    assert inner.report.ok
    assert outer.report is not None
    assert outer.report.duration < 1


async def test_second_signal_on_the_parent_forces_its_children() -> None:
    hooks = Hooks()
    stuck = hooks.add_wrap_up_listener(anyio.sleep_forever, name="child-stuck")
    async with coordinator(wait_time=5) as outer:
        async with ShutdownCoordinator(hooks=hooks) as inner:
            outer.shutdown()
            while inner.state is not State.WRAPPING_UP:
                await anyio.sleep(0.005)
            await anyio.sleep(0.01)
            outer._force("signal")
            await anyio.sleep_forever()
    assert (await stuck()).status is HookStatus.CANCELLED
    assert inner.report is not None and inner.report.forced_by == "signal"
    assert outer.report is not None and outer.report.forced_by == "signal"


def test_waiter_awaited_on_another_event_loop_wakes_promptly() -> None:
    hooks = Hooks()
    waiter = hooks.add_shutdown_listener(lambda: None, name="cross-loop")
    got: list[float] = []
    waiting = threading.Event()

    async def other_loop() -> None:
        waiting.set()
        await waiter()
        got.append(time.monotonic())

    thread = threading.Thread(target=anyio.run, args=(other_loop,), kwargs={"backend": "trio"})
    thread.start()
    assert waiting.wait(5)

    async def main() -> None:
        async with ShutdownCoordinator(hooks=hooks, signals=()) as coord:
            await anyio.sleep(0.05)
            coord.shutdown()

    anyio.run(main)
    done_at = time.monotonic()
    thread.join(5)
    assert not thread.is_alive()
    assert got
    assert got[0] - done_at < 1


async def test_nested_child_skips_its_drain_when_the_parent_exits() -> None:
    inner = ShutdownCoordinator(hooks=Hooks(), drain_delay=2, wait_time=3)
    entered = anyio.Event()

    async def child() -> None:
        async with inner:
            entered.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        async with coordinator() as outer:
            tg.start_soon(child)  # started inside the outer block: its child
            await entered.wait()
    assert inner.report is not None
    assert inner.report.trigger.kind == "exit"
    assert "enclosing coordinator" in inner.report.trigger.reason
    assert outer.report is not None
    assert outer.report.duration < 1


async def test_watchdog_arming_follows_hard_exit() -> None:
    async with coordinator(hard_exit=True) as always:
        assert always._watchdog is not None
        assert not always._watchdog.armed
        always.shutdown()
        assert always._watchdog.armed  # armed for a manual trigger too
        await always.finished()
        # Disarmed once the coordinator has finished: what the body does after the
        # shutdown is the application's (run() keeps it armed to the loop's end).
        assert not always._watchdog.armed
        assert "the body of the `async with` block" in always._describe_pending()
    assert not always._watchdog.armed
    async with coordinator(hard_exit=False) as never:
        assert never._watchdog is None
    async with coordinator() as default:
        default.shutdown()
        assert default._watchdog is not None
        assert not default._watchdog.armed  # None: only a signal arms it


async def test_an_abandoned_sync_hook_is_named_as_pending() -> None:
    hooks = Hooks()
    release = threading.Event()
    hooks.add_shutdown_listener(lambda: release.wait(5), timeout=0.05, name="stuck-close")
    async with coordinator(hooks, hard_exit=False) as coord:
        coord.shutdown()
    try:
        pending = coord._describe_pending()
        assert "sync shutdown hook stuck-close (abandoned at its deadline" in pending
        assert "its worker thread still running" in pending
    finally:
        release.set()


def test_generator_hooks_are_refused() -> None:
    hooks = Hooks()

    def gen() -> object:
        yield None

    async def agen() -> object:
        yield None

    with pytest.raises(TypeError, match="not a generator"):
        hooks.add_wrap_up_listener(gen)
    with pytest.raises(TypeError, match="not a generator"):
        hooks.on_shutdown(agen)


async def test_thousands_of_hooks_run_and_never_started_ones_are_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gracestop")
    hooks = Hooks()
    ran = 0

    async def count() -> None:
        nonlocal ran
        ran += 1

    for i in range(3000):
        hooks.add_wrap_up_listener(count, name=f"w{i}")
        hooks.add_shutdown_listener(count, name=f"s{i}", order=i % 3)
    async with coordinator(hooks, wait_time=5) as coord:
        coord.shutdown()
    assert ran == 6000
    assert coord.report is not None
    assert coord.report.ok

    blocked = Hooks()
    blocked.add_wrap_up_listener(anyio.sleep_forever, name="stuck")
    for i in range(500):
        blocked.add_shutdown_listener(count, name=f"n{i}", order=1)
    blocked.add_shutdown_listener(anyio.sleep_forever, name="blocker")
    caplog.clear()
    async with coordinator(blocked, wrap_up_time=0.05, wait_time=0.3) as coord:
        coord.shutdown()
    lines = [r.getMessage() for r in caplog.records if "never started" in r.getMessage()]
    assert lines == ["500 hooks never started: n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 490 more"]


async def test_sync_hooks_can_call_back_into_the_event_loop() -> None:
    hooks = Hooks()
    got: list[str] = []

    async def ping() -> str:
        await anyio.lowlevel.checkpoint()
        return "pong"

    @hooks.on_shutdown
    def uses_from_thread() -> None:
        got.append(anyio.from_thread.run(ping))

    async with coordinator(hooks) as coord:
        coord.shutdown()
    assert got == ["pong"]
    assert coord.report is not None
    assert coord.report.ok


async def test_sync_hooks_whose_time_ran_out_waiting_for_a_thread_never_start() -> None:
    hooks = Hooks()
    started: list[str] = []
    lock = threading.Lock()
    release = threading.Event()

    def blocker() -> None:
        with lock:
            started.append("blocker")
        release.wait(5)

    def latecomer() -> None:
        with lock:
            started.append("latecomer")

    for i in range(40):  # every thread slot taken
        hooks.add_wrap_up_listener(blocker, name=f"blocker{i}")
    coord = coordinator(hooks, wrap_up_time=3, wait_time=5, hard_exit=False)

    @hooks.on_wrap_up
    async def add_latecomers() -> None:
        while len(started) < 40:
            await anyio.sleep(0.005)
        late = [
            coord.add_wrap_up_listener(latecomer, name=f"late{i}", timeout=0.1) for i in range(5)
        ]
        results = [await waiter() for waiter in late]
        assert all(r.status is HookStatus.TIMED_OUT for r in results)
        release.set()

    async with coord:
        coord.shutdown()
    assert started.count("blocker") == 40
    assert "latecomer" not in started
    assert coord.report is not None
    assert len(coord.report.by_status(HookStatus.OK)) == 41


async def test_the_parents_deadline_forces_its_children() -> None:
    hooks = Hooks()
    slow = hooks.add_shutdown_listener(anyio.sleep_forever, name="child-slow")
    async with coordinator(wrap_up_time=0.1, wait_time=0.3) as outer:
        async with ShutdownCoordinator(hooks=hooks, wait_time=10) as inner:
            outer.shutdown()
            await anyio.sleep_forever()
    assert (await slow()).status is HookStatus.TIMED_OUT
    assert inner.report is not None
    assert inner.report.forced_by == "deadline"
    assert inner.report.duration < 2
    assert outer.report is not None
    assert outer.report.forced_by == "deadline"


async def test_a_child_on_another_threads_loop_is_forced_through_its_own_loop() -> None:
    hooks = Hooks()
    entered = threading.Event()
    result: list[object] = []

    async def child_service() -> None:
        async with ShutdownCoordinator(hooks=hooks) as inner:
            entered.set()
            await anyio.sleep_forever()
        result.append(inner.report)

    hooks.add_shutdown_listener(anyio.sleep_forever, name="child-slow")
    async with coordinator(wait_time=5) as outer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, anyio.run, child_service)
            await anyio.to_thread.run_sync(entered.wait, 5)
            outer.shutdown()
            while not outer._children or outer._children[0].state is not State.SHUTTING_DOWN:
                await anyio.sleep(0.01)
            outer._force("signal")
    (report,) = result
    assert isinstance(report, gracestop.ShutdownReport)
    assert report.forced_by == "signal"
    assert outer.report is not None
    assert outer.report.duration < 3


async def register_late_after(
    coord: ShutdownCoordinator, first: gracestop.Waiter, steps: int, outcome: list[str]
) -> None:
    # Shielded: the body is cancelled once the coordinator stops, and the outcome
    # must be read either way (a hook accepted at the last moment still runs).
    with anyio.CancelScope(shield=True):
        await first()
        for _ in range(steps):
            await anyio.lowlevel.checkpoint()
        try:
            waiter = coord.add_shutdown_listener(lambda: None, name="late")
            outcome.append((await waiter()).status.value)
        except ShutdownError:
            outcome.append("refused")


async def test_a_hook_registered_as_the_shutdown_ends_runs_or_is_refused() -> None:
    for steps in range(12):
        outcome: list[str] = []
        async with coordinator(wrap_up_time=0.01) as coord:
            first = coord.add_shutdown_listener(lambda: None, name="first")
            async with anyio.create_task_group() as tg:
                tg.start_soon(register_late_after, coord, first, steps, outcome)
                coord.shutdown()
                await anyio.sleep_forever()
        assert outcome in (["ok"], ["refused"]), (steps, outcome)
        assert coord.report is not None
        assert coord.report.ok


async def test_a_child_keeps_the_default_registry_when_its_parent_does_not_run_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gracestop.default_hooks, "_hooks", [])
    ran: list[str] = []
    gracestop.default_hooks.add_shutdown_listener(lambda: ran.append("library cleanup"))
    async with coordinator() as outer:  # its own Hooks(): not the default registry
        async with ShutdownCoordinator(signals=()) as inner:
            outer.shutdown()
            await anyio.sleep_forever()
    assert ran == ["library cleanup"]
    assert inner.report is not None
    assert [r.name for r in inner.report.results] == ["<lambda>"]


async def test_the_watchdog_stays_armed_when_a_sync_hook_was_abandoned() -> None:
    hooks = Hooks()
    release = threading.Event()
    hooks.add_shutdown_listener(lambda: release.wait(5), timeout=0.05, name="stuck")
    async with coordinator(hooks, hard_exit=True, wait_time=60) as coord:
        coord.shutdown()
    assert coord._watchdog is not None
    try:
        # The thread may still hold the process: only the watchdog bounds it now.
        assert coord._watchdog.armed
    finally:
        coord._watchdog.stop()  # this test process must live on
        release.set()
