"""Listening for signals, the ``signal.signal`` fallback, and restoring handlers."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Literal, cast

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus

from ._report import ShutdownError

__all__ = ["SignalListener", "claimed_signals", "loop_caller"]

logger = logging.getLogger("gracestop")

# Signals claimed by a live coordinator in this process, with their owner's name.
_claims: dict[signal.Signals, str] = {}
_claims_lock = threading.Lock()


def claimed_signals() -> dict[signal.Signals, str]:
    """Signals held by coordinators of this process right now, and who holds them."""
    with _claims_lock:
        return dict(_claims)


def loop_caller() -> Callable[[Callable[[], object]], None]:
    """Return a function that schedules a callback on the current event loop.

    The function never blocks, may be called from any thread and from a signal
    handler, and is silent once the loop has closed.
    """
    native: Any = anyio.lowlevel.current_token().native_token
    if isinstance(native, asyncio.AbstractEventLoop):
        loop = native

        def call_asyncio(fn: Callable[[], object]) -> None:
            try:
                loop.call_soon_threadsafe(fn)
            except RuntimeError:  # the loop is closed: nobody is left to tell
                pass

        return call_asyncio

    token = native

    def call_trio(fn: Callable[[], object]) -> None:
        try:
            token.run_sync_soon(fn)
        except Exception:  # trio.RunFinishedError: the run is over
            pass

    return call_trio


Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


LoopHandlers = dict[signal.Signals, tuple[Any, Any, tuple[Any, ...]]]


def _signal_handle_registry(loop: asyncio.AbstractEventLoop) -> dict[int, object] | None:
    """The selector loop's private signal number -> ``asyncio.Handle`` map, if it has one."""
    registry = getattr(loop, "_signal_handlers", None)
    # Not public API: typed as holding objects, each read with getattr.
    return cast("dict[int, object]", registry) if isinstance(registry, dict) else None


def _asyncio_loop_handlers(
    signals: tuple[signal.Signals, ...], previous: dict[signal.Signals, Handler]
) -> LoopHandlers | None:
    """Handlers an application added with ``loop.add_signal_handler`` for these
    signals, so they can be put back after anyio's receiver has removed them.

    ``None`` when the loop has such handlers but does not let them be read
    (uvloop): the receiver must not be used then, or they would be lost.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio: no asyncio loop
        return {}
    registry = _signal_handle_registry(loop)
    if registry is None:
        owned = any(getattr(h, "__self__", None) is loop for h in previous.values())
        return None if owned else {}
    saved: LoopHandlers = {}
    for s in signals:
        handle = registry.get(s)
        callback = getattr(handle, "_callback", None)
        if callback is not None:
            saved[s] = (loop, callback, tuple(getattr(handle, "_args", ()) or ()))
    return saved


class SignalListener:
    """Owns a set of signals for one coordinator, from claim to release.

    ``claim()`` records the handlers in place and installs a forwarding handler of
    our own; ``run()`` (a task) receives the signals, through
    `anyio.open_signal_receiver` or, in ``"handler"`` mode or where the loop
    cannot add signal handlers, through the forwarding handler itself;
    ``release()`` puts back exactly the handlers found by ``claim()``.

    The forwarding handler stays installed under anyio's receiver on purpose:
    anyio's asyncio backend leaves ``SIG_DFL`` behind when its receiver closes,
    and trio re-delivers signals that were never read into the handler it
    restores. With ours underneath, a late signal reaches the coordinator instead
    of killing the process, and release() then restores the real previous handler.
    """

    def __init__(
        self,
        signals: tuple[signal.Signals, ...],
        mode: Literal["auto", "handler"],
        on_signal: Callable[[signal.Signals], None],
        owner: str,
    ) -> None:
        self.signals = signals
        self.mode = mode
        self._on_signal = on_signal
        self._owner = owner
        self._previous: dict[signal.Signals, Handler] = {}
        self._call: Callable[[Callable[[], object]], None] | None = None
        self.used_fallback = False
        self._loop_handlers: LoopHandlers = {}

    def claim(self) -> None:
        """Claim the signals, or raise ShutdownError if another coordinator holds one."""
        with _claims_lock:
            taken = {s: _claims[s] for s in self.signals if s in _claims}
            if taken:
                held = ", ".join(f"{s.name} (by {owner})" for s, owner in taken.items())
                raise ShutdownError(
                    f"signals already claimed by another coordinator: {held}; "
                    "pass signals=() to a coordinator that should not listen"
                )
            for s in self.signals:
                _claims[s] = self._owner
        self._call = loop_caller()
        try:
            for s in self.signals:
                self._previous[s] = signal.getsignal(s)
                signal.signal(s, self._forward)
        except BaseException:
            self.release()
            raise

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        """Python-level handler: hand the signal to the loop, thread-safely."""
        if self._call is not None:
            sig = signal.Signals(signum)
            self._call(lambda: self._on_signal(sig))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Receive signals until cancelled."""
        if not self.signals:
            task_status.started()
            await anyio.sleep_forever()
        loop_handlers = _asyncio_loop_handlers(self.signals, self._previous)
        if self.mode == "handler":
            self.used_fallback = True
        elif loop_handlers is None:
            # uvloop keeps its handlers out of reach: anyio's receiver would drop
            # the application's for good, so the forwarding handler serves instead.
            logger.debug("the loop's own signal handlers cannot be saved; using signal.signal")
            self.used_fallback = True
        else:
            self._loop_handlers = loop_handlers
            try:
                receiver = anyio.open_signal_receiver(*self.signals)
                try:
                    with receiver as signals:
                        try:
                            task_status.started()
                            async for sig in signals:
                                self._on_signal(sig)
                        finally:
                            self._take_over_from_loop()
                finally:
                    # anyio's asyncio backend has just left SIG_DFL behind: until
                    # release() restores the previous handlers, ours must catch
                    # any signal, or a SIGTERM now would kill the process.
                    self._reinstall()
            except NotImplementedError:
                # The loop cannot add signal handlers (asyncio on Windows): the
                # forwarding handler installed by claim() delivers them instead.
                logger.debug("event loop has no signal support; using signal.signal")
                self.used_fallback = True
        task_status.started()
        await anyio.sleep_forever()

    def _take_over_from_loop(self) -> None:
        """Put the forwarding handler back before anyio's receiver closes.

        Closing it calls the loop's ``remove_signal_handler``, which sets the
        default action (``SIG_DFL``; ``default_int_handler`` for SIGINT): a signal
        in the moment before :meth:`_reinstall` would end the process, or raise
        ``KeyboardInterrupt``, in the middle of the exit. With the forwarding
        handler in place first and the loop's entries dropped, closing the
        receiver finds nothing to remove and changes no handler.
        """
        self._reinstall()
        try:
            registry = _signal_handle_registry(asyncio.get_running_loop())
        except RuntimeError:  # trio: its receiver puts the forwarding handler back
            return
        if registry is None:  # pragma: no cover - such loops take the fallback path
            return
        for s in self.signals:
            registry.pop(s, None)
        if not registry:
            # What remove_signal_handler does once the loop handles no signal.
            signal.set_wakeup_fd(-1)

    def _reinstall(self) -> None:
        if self._call is not None:
            for s in self._previous:
                signal.signal(s, self._forward)

    def release(self) -> None:
        """Restore the previous handlers and give the signals back."""
        for s, previous in self._previous.items():
            try:
                signal.signal(s, previous if previous is not None else signal.SIG_DFL)
            except (OSError, ValueError, TypeError):  # pragma: no cover - defensive
                logger.warning("could not restore the handler of %s", s.name, exc_info=True)
        self._previous.clear()
        self._call = None
        loop_handlers, self._loop_handlers = self._loop_handlers, {}
        for s, (loop, callback, args) in loop_handlers.items():
            # The receiver replaced, then removed, the loop's own handler for
            # this signal (one an application added with loop.add_signal_handler).
            try:
                loop.add_signal_handler(s, callback, *args)
            except (RuntimeError, ValueError, OSError):  # pragma: no cover - loop closed
                logger.warning("could not restore the event loop's %s handler", s.name)
        with _claims_lock:
            for s in self.signals:
                if _claims.get(s) == self._owner:
                    del _claims[s]
