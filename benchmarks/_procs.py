"""A benchmark's child process, driven by the lines it prints, every wait bounded.

``Program`` starts ``python -u script args...``, reads its stdout and stderr on
daemon threads, and offers what a benchmark needs: wait for a line
(:meth:`Program.expect`), send a signal and note when (:meth:`Program.signal`), and
learn when the process ended (:meth:`Program.exited_within`, exact to the
scheduler's wake-up: it waits on a pidfd, not by polling). Leaving the ``with``
block kills the process if it still runs, so no error path leaves one behind.
"""

from __future__ import annotations

import collections
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
PEERS = Path(__file__).resolve().with_name("peers")


class ProgramError(RuntimeError):
    """The child did not do what the benchmark waited for; the message has its output."""


class Program:
    """``python -u PEERS/script args...`` in a child process."""

    def __init__(self, script: str, *args: str) -> None:
        self.args = [script, *args]
        env = dict(os.environ)
        env.pop("PYTHONWARNINGS", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(PEERS / script), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self._pidfd = _pidfd(self.proc.pid)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        # The last lines are enough to say what went wrong (a watchdog's stack dump
        # or an access log can be long).
        self.stderr: collections.deque[str] = collections.deque(maxlen=60)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read_out, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._read_err, args=(self.proc.stderr,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def __enter__(self) -> Program:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _read_out(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.stdout.append(line.rstrip("\n"))
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _read_err(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.stderr.append(line.rstrip("\n"))

    def output(self) -> str:
        """What the child printed, for an error message."""
        out, err = "\n".join(self.stdout), "\n".join(self.stderr)
        return (
            f"{' '.join(self.args)}: returncode {self.proc.poll()}\n"
            f"--- stdout:\n{out}\n--- stderr (last lines):\n{err}"
        )

    def expect(self, prefix: str, timeout: float) -> str:
        """The next stdout line that starts with ``prefix``.

        Raises:
            ProgramError: the child ended, or ``timeout`` seconds passed first.
        """
        end = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise ProgramError(
                    f"no line starting with {prefix!r} within {timeout}s\n{self.output()}"
                ) from None
            if line is None:
                raise ProgramError(f"ended before printing {prefix!r}\n{self.output()}")
            if line.startswith(prefix):
                return line

    def signal(self, sig: int = signal.SIGTERM) -> float:
        """Send ``sig``; return the ``time.monotonic()`` of the send."""
        now = time.monotonic()
        os.kill(self.proc.pid, sig)
        return now

    def exited_within(self, timeout: float) -> float | None:
        """The ``time.monotonic()`` at which the child ended, if it did within
        ``timeout`` seconds; None if it still runs then."""
        if self._pidfd is not None:
            readable, _, _ = select.select([self._pidfd], [], [], timeout)
            if not readable:
                return None
            ended = time.monotonic()
            self.proc.wait()
            return ended
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic()

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def close(self) -> None:
        """Kill the child if it still runs; close the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for reader in self._readers:
            reader.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def _pidfd(pid: int) -> int | None:
    """A pidfd for ``pid`` (Linux 5.3 and later), else None: then waits poll."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


__all__ = ["PEERS", "ROOT", "Program", "ProgramError"]
