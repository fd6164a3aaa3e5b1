"""A child process driven by the lines it prints, for the real-signal tests.

``Child`` starts ``tests/process/child.py`` with a scenario and a backend, reads
its stdout and stderr on background threads, and lets a test wait for a given
line (``expect``) before it sends a signal. Nothing here sleeps blindly: every
wait is for a line, or for the process to end, with a timeout that fails the
test with everything the child printed so far.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

CHILD = str(Path(__file__).with_name("child.py"))
BACKENDS = ["asyncio", "trio"]


class _Stream:
    """Lines read from one pipe on a daemon thread, with a cursor for ``expect``."""

    def __init__(self, pipe: IO[str], name: str) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._cond = threading.Condition()
        self._cursor = 0
        self._thread = threading.Thread(
            target=self._read, args=(pipe,), name=f"child-{name}", daemon=True
        )
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        try:
            for line in pipe:
                with self._cond:
                    self._add(line.rstrip("\n"))
                    self._cond.notify_all()
        finally:
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def _add(self, line: str) -> None:
        """Keep one line (called under the lock; a subclass may count what it reads)."""
        self.lines.append(line)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def snapshot(self) -> list[str]:
        """The lines read so far."""
        with self._cond:
            return list(self.lines)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` (called under the lock) holds; False if the pipe
        closed or the timeout passed first."""
        end = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = end - time.monotonic()
                if self.closed or left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def expect(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str] | None:
        """The first line from the cursor on that matches; moves the cursor past it.

        Returns None when the pipe closed or the timeout passed first.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        found: list[re.Match[str]] = []

        def matched() -> bool:
            while self._cursor < len(self.lines):
                line = self.lines[self._cursor]
                self._cursor += 1
                match = regex.search(line)
                if match is not None:
                    found.append(match)
                    return True
            return False

        return found[0] if self.wait(matched, timeout) else None


class Child:
    """One child process running one scenario on one backend."""

    def __init__(self, scenario: str, backend: str, *extra: str) -> None:
        self.args = [scenario, backend, *extra]
        env = dict(os.environ)
        env.pop("PYTHONWARNINGS", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-u", CHILD, *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = _Stream(self.proc.stdout, "stdout")
        self.err = _Stream(self.proc.stderr, "stderr")
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _fail(self, what: str) -> None:
        pytest.fail(
            f"child {' '.join(self.args)}: {what}\n"
            f"--- returncode: {self.proc.poll()}\n"
            f"--- stdout:\n{self.out.text()}\n--- stderr:\n{self.err.text()}",
            pytrace=False,
        )

    def expect(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """Wait for a stdout line matching ``pattern`` (a regex, searched)."""
        match = self.out.expect(pattern, timeout)
        if match is None:
            self._fail(f"no stdout line matching {pattern!r} within {timeout}s")
        assert match is not None
        return match

    def expect_err(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """Wait for a stderr line matching ``pattern`` (a regex, searched)."""
        match = self.err.expect(pattern, timeout)
        if match is None:
            self._fail(f"no stderr line matching {pattern!r} within {timeout}s")
        assert match is not None
        return match

    def signal(self, sig: int) -> float:
        """Send ``sig`` to the child; return the ``time.monotonic()`` of the send."""
        now = time.monotonic()
        os.kill(self.proc.pid, sig)
        return now

    def send_line(self, text: str) -> None:
        """Write one line to the child's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = 5.0) -> tuple[int, str, str]:
        """Wait for the child to end; return (returncode, stdout, stderr)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self._fail(f"did not exit within {timeout}s")
            raise  # pragma: no cover - _fail raised
        self.out.join(2.0)
        self.err.join(2.0)
        self.returncode = rc
        return rc, self.out.text(), self.err.text()

    def report(self) -> dict[str, Any]:
        """The report the child printed on its ``REPORT `` line."""
        for line in self.out.text().splitlines():
            if line.startswith("REPORT "):
                return dict(json.loads(line[len("REPORT ") :]))
        self._fail("printed no REPORT line")
        raise AssertionError  # pragma: no cover - _fail raised

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:  # pragma: no cover - a broken stdin pipe
                    pass


def results_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report["results"]}


def index_of(lines: list[str], text: str) -> int:
    """Index of the first line equal to ``text`` (fails with the lines if absent)."""
    assert text in lines, f"{text!r} not printed; stdout was:\n" + "\n".join(lines)
    return lines.index(text)


__all__ = ["BACKENDS", "CHILD", "Child", "index_of", "results_by_name"]
