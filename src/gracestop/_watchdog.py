"""The hard-exit watchdog: ends a process whose event loop is stuck past the deadline."""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["Watchdog"]


class Watchdog:
    """A daemon thread that calls ``os._exit`` if the shutdown outlives its deadline.

    The thread is started when the coordinator is entered, because starting a
    thread costs more than the signal path may spend; it sleeps until
    `arm` gives it a deadline on the ``time.monotonic()`` clock. A hook
    that blocks the event loop (``time.sleep``, a busy loop, a blocking call)
    cannot be interrupted by anyio's deadlines; this thread does not need the
    loop, so the process still ends on time. Before it exits it writes what was
    pending and every thread's stack to stderr.
    """

    def __init__(
        self,
        *,
        exit_code: int,
        describe_pending: Callable[[], str],
        before_exit: Callable[[], None] | None = None,
        name: str = "gracestop-watchdog",
    ) -> None:
        self._exit_code = exit_code
        self._describe_pending = describe_pending
        self._before_exit = before_exit
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the (unarmed) thread."""
        self._thread.start()

    @property
    def armed(self) -> bool:
        """True while a deadline is set."""
        with self._cond:
            return self._deadline is not None and not self._stopped

    @property
    def deadline(self) -> float | None:
        """The monotonic time at which the process will be ended, if armed."""
        with self._cond:
            return self._deadline

    def arm(self, deadline: float) -> None:
        """End the process at ``deadline`` (``time.monotonic()`` clock) unless disarmed."""
        with self._cond:
            if self._deadline is None or deadline < self._deadline:
                self._deadline = deadline
            self._cond.notify_all()

    def stop(self) -> None:
        """Disarm for good and let the thread end."""
        with self._cond:
            self._stopped = True
            self._deadline = None
            self._cond.notify_all()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left <= 0:
                    break
                # Condition.wait refuses timeouts above threading.TIMEOUT_MAX.
                self._cond.wait(min(left, threading.TIMEOUT_MAX))
            if self._stopped:
                return
        self._fire()

    def _fire(self) -> None:
        try:
            pending = self._describe_pending()
        except Exception as exc:  # pragma: no cover - never let the report stop the exit
            pending = f"(could not describe pending work: {exc!r})"
        message = (
            "gracestop: the process outlived its shutdown deadline (wait_time + "
            f"watchdog_grace). Forcing exit with status {self._exit_code}.\n"
            f"gracestop: still pending: {pending or 'nothing the coordinator knows of'}\n"
            "gracestop: stacks of every thread follow.\n"
        )
        _write_stderr(message)
        try:
            faulthandler.dump_traceback(file=sys.__stderr__ or sys.stderr, all_threads=True)
        except Exception:  # pragma: no cover - stderr may be closed
            pass
        if self._before_exit is not None:
            _bounded(self._before_exit, BEFORE_EXIT_LIMIT)
        _flush_stdio()
        os._exit(self._exit_code)


BEFORE_EXIT_LIMIT = 1.0
"""Longest the watchdog waits for its ``before_exit`` callback (writing the report
file): a hung file system must not keep a stuck process alive."""


def _bounded(fn: Callable[[], None], limit: float) -> None:
    """Run *fn* on a helper thread and wait at most *limit* seconds for it."""

    def run() -> None:
        try:
            fn()
        except Exception as exc:  # never let it stop the exit
            _write_stderr(f"gracestop: could not finish before the exit: {exc!r}\n")

    helper = threading.Thread(target=run, name="gracestop-before-exit", daemon=True)
    helper.start()
    helper.join(limit)
    if helper.is_alive():
        _write_stderr(f"gracestop: gave up waiting {limit:g}s for the report file\n")


def _write_stderr(text: str) -> None:
    # os.write on the descriptor: the main thread may hold the lock of sys.stderr.
    data = text.encode("utf-8", "replace")
    try:
        os.write(2, data)
    except OSError:  # pragma: no cover - nothing to write to
        pass


def _flush_stdio() -> None:
    """Flush Python's buffers if that does not hang (the loop thread may hold their
    locks); a helper thread gives it a short time."""

    def flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:  # pragma: no cover
                pass

    helper = threading.Thread(target=flush, daemon=True)
    helper.start()
    helper.join(0.1)
