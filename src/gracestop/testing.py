"""Helpers for testing code that uses gracestop: fast shutdowns that never end the
test process.

**Testing mode.** `set_testing` (or ``GRACESTOP_TESTING=1`` in the
environment) makes every coordinator built afterwards use short settings for each
field the test leaves at its default: no drain delay, a 0.5 s wrap-up window, a 2 s
``wait_time``, no signals (the test runner keeps its Ctrl-C) and no watchdog (a
test run is never ended by ``os._exit``):

    from gracestop.testing import set_testing

    set_testing(True)                  # for the rest of the process
    with set_testing(True, wait_time=1):
        ...                            # only inside the block; then as before

**A coordinator for a test.** `open_coordinator` enters a coordinator in a
task of its own, so the test's own code is never cancelled when the shutdown
finishes, and `shut_down` triggers the shutdown and returns the report:

    async with open_coordinator() as coord:
        coord.add_shutdown_listener(close_pool)
        report = await shut_down(coord)
    assert report.ok

**pytest plugin.** With ``pytest_plugins = ["gracestop.testing"]`` in a
``conftest.py``, the ``gracestop_coordinator`` fixture gives an entered coordinator
(testing mode on) to tests run by anyio's pytest plugin (``@pytest.mark.anyio``),
on asyncio and on trio; ``gracestop_testing`` turns testing mode on for one test;
override ``gracestop_options`` to pass `open_coordinator` arguments.

Testing mode is process-wide, like the signals it concerns: tests that run in
parallel threads of one process share it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Generator, Iterable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from ._config import ShutdownConfig, parse_timeout
from ._coordinator import ShutdownCoordinator
from ._hooks import Hooks
from ._report import ShutdownError, ShutdownReport, State
from ._testing import (
    ENV_VAR,
    TESTING_DEFAULTS,
    is_testing,
    restore_state,
    swap_state,
    validated_settings,
)
from ._testing import (
    current_settings as _current_settings,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._config import ConfigOverrides

__all__ = [
    "ENV_VAR",
    "TESTING_DEFAULTS",
    "current_settings",
    "is_testing",
    "open_coordinator",
    "set_testing",
    "shut_down",
]

# Beyond wait_time + watchdog_grace a shutdown can only be late because the event
# loop was blocked; the margin keeps a busy test machine from failing a test.
_FINISH_MARGIN = 5.0


class _RestoreTesting:
    """What `set_testing` returns: ignore it, or use it as a context manager
    that puts the previous testing state back on exit."""

    __slots__ = ("_previous",)

    def __init__(self, previous: tuple[bool | None, Any]) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        """Nothing to do: `set_testing` already applied the new state."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Restore the testing state that was in force before the call."""
        restore_state(self._previous)


def set_testing(testing: bool, **settings: Unpack[ConfigOverrides]) -> _RestoreTesting:
    """Turn testing mode on or off for coordinators built from now on.

    In testing mode a coordinator takes `TESTING_DEFAULTS`, with *settings*
    over them, for every field the code under test leaves at its library default
    (a field given to the coordinator, or set to another value in its
    [`ShutdownConfig`][gracestop.ShutdownConfig], is kept). If the testing timings do not
    fit with timings the code sets itself, the code's timings are kept.

    Works as a plain call and as a context manager that restores the previous
    state (nesting works):

        set_testing(True)
        with set_testing(True, wait_time=0.5):
            ...
        with set_testing(False):
            ...  # a real shutdown's settings, e.g. to test the defaults

    Decided here, the state wins over ``GRACESTOP_TESTING``; the variable applies
    while no call has decided (or after the outermost ``with`` block has ended).

    Raises:
        TypeError: *testing* is not a bool, or a setting has the wrong type.
        ValueError: a bad setting (the message names it), or settings that make an
            invalid config together with the other testing defaults.
        UnknownFieldError: a setting that is not a config field.
    """
    if not isinstance(testing, bool):
        raise TypeError(f"testing must be True or False; got {type(testing).__name__} {testing!r}")
    checked = validated_settings(settings)
    return _RestoreTesting(swap_state(testing, checked))


def current_settings() -> Mapping[str, object]:
    """The settings testing mode applies now (a read-only mapping of field names)."""
    return _current_settings()


@asynccontextmanager
async def open_coordinator(
    config: ShutdownConfig | None = None,
    *,
    hooks: Hooks | Iterable[Hooks] | None = None,
    **overrides: Unpack[ConfigOverrides],
) -> AsyncGenerator[ShutdownCoordinator, None]:
    """An entered coordinator for a test, in testing mode, run in a task of its own.

    The coordinator's ``async with`` block runs in a background task, so when the
    shutdown finishes only that task is cancelled, never the test. On exit, if
    the test has not shut it down, the shutdown runs (reason ``"test finished"``)
    and is waited for. Testing mode is on while the block runs (the state from
    `set_testing` or ``GRACESTOP_TESTING`` is kept if already on).

    *hooks* defaults to a fresh [`Hooks`][gracestop.Hooks] registry rather than
    [`default_hooks`][gracestop.default_hooks], so tests do not run each other's import-time
    hooks; pass ``hooks=gracestop.default_hooks`` to test those. *config* and
    *overrides* are as for [`ShutdownCoordinator`][gracestop.ShutdownCoordinator].

    For example:

        async with open_coordinator(wrap_up_time=1) as coord:
            async with coord.hold("request"):
                ...
            report = await shut_down(coord)
    """
    with contextlib.nullcontext() if is_testing() else set_testing(True):
        coord = ShutdownCoordinator(config, hooks=Hooks() if hooks is None else hooks, **overrides)

        async def serve(*, task_status: TaskStatus[None]) -> None:
            async with coord:
                task_status.started()
                await anyio.sleep_forever()

        error: BaseException | None = None
        async with anyio.create_task_group() as tg:
            await tg.start(serve, name="gracestop test coordinator")
            try:
                yield coord
            except BaseException as exc:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    raise
                # Raised below as it is, not wrapped in the task group's
                # ExceptionGroup: the test's failure reads as the test's.
                error = exc
            finally:
                with anyio.CancelScope(shield=True):
                    await shut_down(coord, "test finished")
        if error is not None:
            raise error


async def shut_down(
    coord: ShutdownCoordinator, reason: str = "test", *, timeout: float | None = None
) -> ShutdownReport:
    """Trigger *coord*'s shutdown (unless it has begun) and return its report.

    Waits at most *timeout* seconds; by default the coordinator's ``wait_time +
    watchdog_grace`` plus a margin of 5 s. Callable from inside the
    coordinator's own ``async with`` block: the report is returned before the
    block's body is cancelled.

    Raises:
        ShutdownError: *coord* was never entered.
        TimeoutError: the shutdown did not finish in time (the message names what
            was still pending); only a blocked event loop can cause it.
        TypeError, ValueError: a bad *reason* or *timeout*.
    """
    if not isinstance(coord, ShutdownCoordinator):
        raise TypeError(
            f"coord must be a ShutdownCoordinator; got {type(coord).__name__} {coord!r}"
        )
    limit = parse_timeout(timeout, "timeout")
    if coord.state is State.IDLE:
        raise ShutdownError("shut_down() needs an entered coordinator (use `async with`)")
    if coord.trigger is None:
        coord.shutdown(reason)
    elif not isinstance(reason, str):
        raise TypeError(f"reason must be a str; got {type(reason).__name__} {reason!r}")
    if limit is None:
        limit = coord.config.wait_time + coord.config.watchdog_grace + _FINISH_MARGIN
    with anyio.move_on_after(limit):
        return await coord.finished()
    pending = coord._describe_pending() or "nothing the coordinator knows of"
    raise TimeoutError(
        f"the shutdown did not finish within {limit:g}s of shut_down(); still pending: {pending}"
    )


# The fixtures, defined only where pytest is installed: the rest works without it.
try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixtures
    pass
else:

    @pytest.fixture
    def gracestop_testing() -> Generator[None, None, None]:
        """Testing mode on for one test, then the previous state back."""
        with set_testing(True):
            yield

    @pytest.fixture
    def gracestop_options() -> dict[str, Any]:
        """Arguments for `open_coordinator` used by ``gracestop_coordinator``;
        override this fixture to give hooks or settings (``{"wait_time": 1}``)."""
        return {}

    @pytest.fixture
    async def gracestop_coordinator(
        gracestop_options: dict[str, Any],
    ) -> AsyncGenerator[ShutdownCoordinator, None]:
        """An entered coordinator in testing mode (see `open_coordinator`).

        Needs anyio's pytest plugin: mark the test ``@pytest.mark.anyio``.
        """
        async with open_coordinator(**gracestop_options) as coord:
            yield coord
