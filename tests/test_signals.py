"""Signals in process: claiming, the fallback path, restoring handlers.

Real signals are sent to this very process with os.kill; the subprocess suite in
tests/process covers exit codes and deadlines.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

import anyio
import pytest

from gracestop import Hooks, ShutdownCoordinator, ShutdownError, State
from gracestop._signals import claimed_signals

pytestmark = pytest.mark.anyio


def previous_handler(signum: int, frame: FrameType | None) -> None:
    raise AssertionError("the coordinator should have had this signal")


@pytest.fixture
def restore_usr_handlers() -> object:
    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    yield saved
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("mode", ["auto", "handler"])
async def test_signal_triggers_and_previous_handlers_come_back(
    mode: str, restore_usr_handlers: object
) -> None:
    signal.signal(signal.SIGUSR1, previous_handler)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    async with ShutdownCoordinator(
        hooks=Hooks(), signals=["USR1", "SIGUSR2"], signal_mode=mode, hard_exit=False
    ) as coord:
        assert coord.signals == (signal.SIGUSR1, signal.SIGUSR2)
        assert set(claimed_signals()) >= {signal.SIGUSR1, signal.SIGUSR2}
        os.kill(os.getpid(), signal.SIGUSR2)
        trigger = await coord.triggered()
        await anyio.sleep_forever()
    assert trigger.kind == "signal"
    assert trigger.signal is signal.SIGUSR2
    assert signal.getsignal(signal.SIGUSR1) is previous_handler
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN
    assert signal.SIGUSR1 not in claimed_signals()


async def test_sigint_handler_of_the_event_loop_is_restored_after_a_sigint_shutdown() -> None:
    # asyncio's runner and trio each install their own SIGINT handler: it must come back.
    before = signal.getsignal(signal.SIGINT)
    async with ShutdownCoordinator(hooks=Hooks(), signals=["INT"], hard_exit=False) as coord:
        os.kill(os.getpid(), signal.SIGINT)
        await coord.finished()
    assert coord.report is not None
    assert coord.report.trigger.signal is signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before


async def test_a_second_claim_of_a_signal_is_refused(restore_usr_handlers: object) -> None:
    async with ShutdownCoordinator(hooks=Hooks(), signals=["USR1"]) as outer:
        with pytest.raises(ShutdownError, match="SIGUSR1"):
            async with ShutdownCoordinator(hooks=Hooks(), signals=[signal.SIGUSR1]):
                pass
        assert outer.state is State.RUNNING


async def test_default_signals_already_claimed_means_going_without() -> None:
    # Not necessarily SIG_DFL: gracestop.run() run in this process before (a docs
    # block) leaves its late-signal handler in place.
    before = signal.getsignal(signal.SIGTERM)
    async with ShutdownCoordinator(hooks=Hooks(), hard_exit=False) as outer:
        assert outer.signals == (signal.SIGTERM, signal.SIGINT)
        async with ShutdownCoordinator(hooks=Hooks()) as inner:
            assert inner.signals == ()
        assert signal.SIGTERM in claimed_signals()
    assert signal.SIGTERM not in claimed_signals()
    assert signal.getsignal(signal.SIGTERM) == before


def test_off_the_main_thread_no_signals_unless_asked_then_an_error() -> None:
    outcome: dict[str, object] = {}

    async def default() -> None:
        async with ShutdownCoordinator(hooks=Hooks()) as coord:
            outcome["signals"] = coord.signals

    async def explicit() -> None:
        async with ShutdownCoordinator(hooks=Hooks(), signals=["TERM"]):
            pass

    def in_thread() -> None:
        anyio.run(default)
        try:
            anyio.run(explicit, backend="trio")
        except ShutdownError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(10)
    assert outcome["signals"] == ()
    assert "main thread" in str(outcome["error"])
    assert signal.SIGTERM not in claimed_signals()


async def logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """Wait until the gracestop log has a line containing ``text``."""
    with anyio.fail_after(2):
        while text not in caplog.text:
            await anyio.sleep(0.005)


async def test_signal_after_a_manual_trigger_counts_as_the_first_and_arms_the_watchdog(
    restore_usr_handlers: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gracestop")
    hooks = Hooks()
    release = anyio.Event()

    @hooks.on_wrap_up
    async def waits() -> None:
        with anyio.fail_after(2):
            await release.wait()

    async with ShutdownCoordinator(hooks=hooks, signals=["USR1"]) as coord:
        coord.shutdown("deploy")
        assert coord._watchdog is not None
        assert not coord._watchdog.armed  # a manual trigger does not arm it
        os.kill(os.getpid(), signal.SIGUSR1)
        await logged(caplog, "received SIGUSR1 during the shutdown")
        assert coord._watchdog.armed
        assert coord.state is State.WRAPPING_UP  # not forced
        release.set()
    assert not coord._watchdog.armed
    assert coord.report is not None
    assert coord.report.ok
    assert coord.report.trigger.kind == "manual"


async def test_second_signal_ignored_when_configured(
    restore_usr_handlers: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gracestop")
    hooks = Hooks()
    release = anyio.Event()
    done = hooks.add_wrap_up_listener(release.wait)
    async with ShutdownCoordinator(
        hooks=hooks, signals=["USR1"], second_signal="ignore", hard_exit=False
    ) as coord:
        os.kill(os.getpid(), signal.SIGUSR1)
        await coord.triggered()
        os.kill(os.getpid(), signal.SIGUSR1)
        await logged(caplog, "second_signal='ignore', so the shutdown goes on")
        assert not done.done
        release.set()
    assert coord.report is not None
    assert coord.report.ok


@pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param("asyncio", id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ],
)
async def test_an_applications_loop_signal_handler_comes_back(
    restore_usr_handlers: object,
) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    received = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, received.set)
    try:
        async with ShutdownCoordinator(hooks=Hooks(), signals=["USR1"], hard_exit=False) as coord:
            os.kill(os.getpid(), signal.SIGUSR1)  # the coordinator's while it runs
            trigger = await coord.triggered()
        assert trigger.signal is signal.SIGUSR1
        received.clear()
        os.kill(os.getpid(), signal.SIGUSR1)  # the application's again afterwards
        with anyio.fail_after(2):
            await received.wait()
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_native_asyncio_cancellation_during_the_exit_still_finishes_and_releases(
    restore_usr_handlers: object,
) -> None:
    import asyncio

    hooks = Hooks()
    closed: list[str] = []

    @hooks.on_shutdown
    async def close_db() -> None:
        await asyncio.sleep(0.15)
        closed.append("closed")

    coord = ShutdownCoordinator(hooks=hooks, signals=["USR1"], hard_exit=False)

    async def service() -> None:
        async with coord:
            coord.shutdown()
            await anyio.sleep_forever()

    task = asyncio.ensure_future(service())
    await asyncio.sleep(0.02)
    task.cancel()  # native cancellations, as asyncio.timeout or wait_for send them
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == ["closed"]
    assert coord.state is State.STOPPED
    assert signal.SIGUSR1 not in claimed_signals()
    assert signal.getsignal(signal.SIGUSR1) is restore_usr_handlers[signal.SIGUSR1]  # type: ignore[index]


async def test_loops_without_signal_support_fall_back_to_signal_signal(
    restore_usr_handlers: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*signals: signal.Signals) -> object:
        raise NotImplementedError("no add_signal_handler here")

    monkeypatch.setattr(anyio, "open_signal_receiver", unsupported)
    async with ShutdownCoordinator(hooks=Hooks(), signals=["USR1"], hard_exit=False) as coord:
        assert coord._listener is not None
        assert coord._listener.used_fallback
        os.kill(os.getpid(), signal.SIGUSR1)
        trigger = await coord.triggered()
        await anyio.sleep_forever()
    assert trigger.signal is signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) is restore_usr_handlers[signal.SIGUSR1]  # type: ignore[index]


async def test_sibling_coordinators_share_the_default_signals_by_going_without() -> None:
    seen: dict[str, tuple[signal.Signals, ...]] = {}
    first_in = anyio.Event()
    second_done = anyio.Event()

    async def first() -> None:
        async with ShutdownCoordinator(hooks=Hooks(), hard_exit=False) as coord:
            seen["first"] = coord.signals
            first_in.set()
            await second_done.wait()

    async def second() -> None:
        await first_in.wait()
        async with ShutdownCoordinator(hooks=Hooks()) as coord:
            seen["second"] = coord.signals
        second_done.set()

    async with anyio.create_task_group() as tg:  # siblings: neither encloses the other
        tg.start_soon(first)
        tg.start_soon(second)
    assert seen == {"first": (signal.SIGTERM, signal.SIGINT), "second": ()}


async def test_drain_delay_applies_to_a_signal_trigger(restore_usr_handlers: object) -> None:
    async with ShutdownCoordinator(
        hooks=Hooks(), signals=["USR1"], drain_delay=0.2, wait_time=2, hard_exit=False
    ) as coord:
        os.kill(os.getpid(), signal.SIGUSR1)
        await coord.triggered()
        assert coord.state is State.DRAINING
        assert coord.accepting
        assert not coord.ready
        await anyio.sleep_forever()
    assert coord.report is not None
    drain = coord.report.phases[0]
    assert drain.name == "drain"
    assert drain.end is not None
    assert drain.end - drain.start >= 0.19


async def test_closing_the_receiver_never_leaves_the_default_action_in_place(
    restore_usr_handlers: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncio's remove_signal_handler sets SIG_DFL: a signal in that moment would
    # end the process in the middle of its exit. Every handler set is recorded.
    set_to: list[tuple[int, object]] = []
    real_signal = signal.signal

    def recording_signal(signum: int, handler: object) -> object:
        set_to.append((signum, handler))
        return real_signal(signum, handler)  # type: ignore[arg-type]

    signal.signal(signal.SIGUSR1, previous_handler)
    signal.signal(signal.SIGUSR2, previous_handler)
    monkeypatch.setattr(signal, "signal", recording_signal)
    async with ShutdownCoordinator(
        hooks=Hooks(), signals=["USR1", "USR2"], hard_exit=False
    ) as coord:
        coord.shutdown()
    assert set_to, "no handler was set at all"
    assert (signal.SIGUSR1, signal.SIG_DFL) not in set_to
    assert (signal.SIGUSR2, signal.SIG_DFL) not in set_to
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGUSR1) is previous_handler
    assert signal.getsignal(signal.SIGUSR2) is previous_handler
