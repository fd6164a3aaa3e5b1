"""What run() does with a signal that arrives once the shutdown has finished."""

from __future__ import annotations

import atexit
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from ._report import State
from ._watchdog import _write_stderr

if TYPE_CHECKING:
    from ._coordinator import ShutdownCoordinator
    from ._signals import Handler

__all__ = ["LateSignals"]

_DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# The LateSignals whose exiting() is registered with atexit, if any.
_at_exit: LateSignals | None = None


def _unwrap(sig: signal.Signals, handler: Handler) -> Handler:
    """The handler an earlier run()'s LateSignals passes ``sig`` on to, if ``handler``
    is one: run() again in the same process wraps what was there before the first,
    rather than stacking one "ignore the first late signal" on another."""
    owner = getattr(handler, "__self__", None)
    if isinstance(owner, LateSignals) and sig in owner._outer:
        return owner._outer[sig]
    return handler


class LateSignals:
    """Keeps a signal that comes after the shutdown from changing how run() ends.

    A coordinator gives its signals back when its block exits, and run() then
    ends the process. A SIGTERM in between would meet its default action and end
    the process with status -15, a SIGINT would raise ``KeyboardInterrupt`` into
    the event loop's teardown (a traceback, status 1): a clean shutdown reported
    as a failure, because a second signal came a few milliseconds late.

    :meth:`install` puts this handler in place inside the event loop, before the
    coordinator claims the signals, so that the coordinator puts it back when it
    gives them up. Until the shutdown has finished every signal is passed on to
    the handler that was there before (the loop's own for SIGINT). Afterwards the
    first one is ignored, with a line on stderr; any further one is passed on,
    so that a process stuck in its exit can still be ended. The handler stays
    installed until the process has exited; from the interpreter's final
    clean-up on (:meth:`exiting`) the signals are ignored.
    """

    def __init__(self, coord: ShutdownCoordinator) -> None:
        self._coord = coord
        wanted = coord.config.signals
        self._signals = _DEFAULT_SIGNALS if wanted is None else wanted
        self._outer: dict[signal.Signals, Handler] = {}
        self._wrapped: dict[signal.Signals, Handler] = {}
        self._ignored = False
        if threading.current_thread() is threading.main_thread():
            # Outside the event loop: what is passed on once the loop has closed.
            self._outer = {s: _unwrap(s, signal.getsignal(s)) for s in self._signals}

    def install(self) -> None:
        """Wrap the handlers in place (called on the loop, before the coordinator)."""
        for s in self._outer:
            self._wrapped[s] = _unwrap(s, signal.getsignal(s))
            signal.signal(s, self._handle)

    def loop_closed(self) -> None:
        """The loop's own handlers are stale now: pass signals on to those of before."""
        self._wrapped.update(self._outer)

    def register_at_exit(self) -> None:
        """Make :meth:`exiting` an ``atexit`` callback, in place of an earlier run()'s.

        Registered last, it runs first among the callbacks. A process that runs
        run() more than once (a test suite catching its ``SystemExit``) keeps one
        callback, not one per run holding on to its coordinator.
        """
        global _at_exit
        if _at_exit is not None:
            atexit.unregister(_at_exit.exiting)
        _at_exit = self
        atexit.register(self.exiting)

    def exiting(self) -> None:
        """The interpreter is about to finish (an ``atexit`` callback).

        In its final clean-up Python gives every signal with a Python handler back
        to its default action, so a late SIGTERM or SIGINT would still end the
        process there: from now on they are ignored by the OS, unless a late one
        was ignored already (then the next one ends the process, as promised).
        """
        if self._ignored or self._coord.state is not State.STOPPED:
            return
        for s in self._outer:
            if signal.getsignal(s) == self._handle:
                signal.signal(s, signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        if self._coord.state is State.STOPPED and not self._ignored:
            self._ignored = True
            _write_stderr(
                f"gracestop: {sig.name} after the shutdown had finished: ignored, the "
                "process is exiting with the status the shutdown earned (another signal "
                "is not ignored)\n"
            )
            return
        handler = self._wrapped.get(sig)
        if callable(handler):
            handler(signum, frame)
        elif handler != signal.SIG_IGN:
            # SIG_DFL, or a handler installed outside Python: the default action.
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)
