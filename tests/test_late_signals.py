"""LateSignals, the handler run() keeps for signals that come after the shutdown.

The real signals are sent in ``tests/process/test_late_signals_process.py``;
here the handler is called directly, around a real coordinator, to pin down
each of its rules. SIGHUP stands in for the coordinator's signals, so that the
test process's own SIGTERM and SIGINT are never touched.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from gracestop import Hooks, ShutdownCoordinator, State
from gracestop._late_signals import LateSignals

pytestmark = pytest.mark.anyio


@pytest.fixture
def received() -> Iterator[list[int]]:
    """SIGHUP goes to a recorder for the test; its handler is put back afterwards."""
    seen: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    before = signal.signal(signal.SIGHUP, record)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGHUP, before)


def coordinator() -> ShutdownCoordinator:
    return ShutdownCoordinator(hooks=Hooks(), signals=["HUP"], wait_time=5)


async def test_before_the_shutdown_has_finished_signals_are_passed_on(
    received: list[int],
) -> None:
    coord = coordinator()
    late = LateSignals(coord)
    late.install()
    late._handle(signal.SIGHUP, None)
    assert received == [signal.SIGHUP]
    async with coord:
        coord.shutdown()
    assert coord.state is State.STOPPED


async def test_after_the_shutdown_the_first_is_ignored_the_next_passed_on(
    received: list[int], capfd: pytest.CaptureFixture[str]
) -> None:
    coord = coordinator()
    late = LateSignals(coord)
    late.install()
    async with coord:
        coord.shutdown()
    # The coordinator gave SIGHUP back to the handler it found: this one.
    assert signal.getsignal(signal.SIGHUP) == late._handle
    late._handle(signal.SIGHUP, None)
    assert received == []
    assert "gracestop: SIGHUP after the shutdown had finished: ignored" in capfd.readouterr().err
    late._handle(signal.SIGHUP, None)
    assert received == [signal.SIGHUP]
    late.exiting()  # one was ignored already: the next must still end the process
    assert signal.getsignal(signal.SIGHUP) == late._handle


async def test_once_the_loop_has_closed_signals_go_to_the_handlers_of_before(
    received: list[int],
) -> None:
    coord = coordinator()
    late = LateSignals(coord)
    seen_by_loop: list[int] = []
    signal.signal(signal.SIGHUP, lambda signum, frame: seen_by_loop.append(signum))
    late.install()
    late._handle(signal.SIGHUP, None)
    late.loop_closed()
    late._handle(signal.SIGHUP, None)
    assert seen_by_loop == [signal.SIGHUP]
    assert received == [signal.SIGHUP]


async def test_an_ignored_signal_stays_ignored(received: list[int]) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    late = LateSignals(coordinator())
    late.install()
    late._handle(signal.SIGHUP, None)  # nothing happens: SIG_IGN was in place
    assert signal.getsignal(signal.SIGHUP) == late._handle
    assert received == []


async def test_exiting_ignores_the_signals_once_the_shutdown_has_finished(
    received: list[int],
) -> None:
    coord = coordinator()
    late = LateSignals(coord)
    late.install()
    late.exiting()  # not finished yet: nothing changes
    assert signal.getsignal(signal.SIGHUP) == late._handle
    async with coord:
        coord.shutdown()
    late.exiting()
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN


async def test_exiting_leaves_a_handler_the_application_put_in_place_since(
    received: list[int],
) -> None:
    coord = coordinator()
    late = LateSignals(coord)
    late.install()
    async with coord:
        coord.shutdown()

    def own(signum: int, frame: FrameType | None) -> None:
        pass

    signal.signal(signal.SIGHUP, own)
    late.exiting()
    assert signal.getsignal(signal.SIGHUP) is own


def test_off_the_main_thread_nothing_is_installed(received: list[int]) -> None:
    lates: list[LateSignals] = []
    thread = threading.Thread(target=lambda: lates.append(LateSignals(coordinator())))
    thread.start()
    thread.join(5)
    lates[0].install()
    assert signal.getsignal(signal.SIGHUP) != lates[0]._handle


async def test_a_second_run_wraps_the_handler_of_before_the_first_not_the_first(
    received: list[int],
) -> None:
    """run() twice in one process (a test suite catching SystemExit): the second
    LateSignals passes on to the handler found before the first, so one late
    signal is ignored, not one per run."""
    first = coordinator()
    late1 = LateSignals(first)
    late1.install()
    async with first:
        first.shutdown()
    assert signal.getsignal(signal.SIGHUP) == late1._handle
    second = coordinator()
    late2 = LateSignals(second)
    late2.install()
    async with second:
        second.shutdown()
    assert signal.getsignal(signal.SIGHUP) == late2._handle
    late2._handle(signal.SIGHUP, None)  # the first late one: ignored
    assert received == []
    late2._handle(signal.SIGHUP, None)  # the next goes to the recorder at once
    assert received == [signal.SIGHUP]


def test_one_exit_callback_for_all_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each run() replaces the exit callback of the one before (atexit itself is
    recorded here: its callbacks run only as the interpreter ends)."""
    from gracestop import _late_signals

    registered: list[object] = []
    monkeypatch.setattr(_late_signals.atexit, "register", registered.append)
    monkeypatch.setattr(_late_signals.atexit, "unregister", registered.remove)
    monkeypatch.setattr(_late_signals, "_at_exit", None)
    lates = [LateSignals(coordinator()) for _ in range(3)]
    for late in lates:
        late.register_at_exit()
    assert registered == [lates[-1].exiting]
    assert _late_signals._at_exit is lates[-1]
