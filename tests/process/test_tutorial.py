"""The tutorial (docs/tutorial.md) and its program, examples/tutorial.py.

The program runs in a real subprocess and gets real signals; what it prints must be
what the tutorial shows, and the tutorial's code must be the program's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _harness import BACKENDS, _Stream

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
PROGRAM = ROOT / "examples" / "tutorial.py"
TESTS = ROOT / "examples" / "test_tutorial.py"
# From the signal: wait_time (5 s) and watchdog_grace (0.5 s), and room for a busy machine.
EXIT_BOUND = 5.5 + 10


class Program:
    """examples/tutorial.py in a subprocess, in its own directory, read line by line."""

    def __init__(self, cwd: Path, backend: str) -> None:
        env = {**os.environ, "COLUMNS": "80", "GRACESTOP_REPORT_FILE": "shutdown.json"}
        env.pop("PYTHONWARNINGS", None)
        self.cwd = cwd
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(PROGRAM), backend],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env=env,
        )
        assert self.proc.stdout is not None
        self.out = _Stream(self.proc.stdout, "stdout")

    def fail(self, what: str) -> None:
        pytest.fail(
            f"tutorial.py: {what}\n--- returncode: {self.proc.poll()}\n"
            f"--- output:\n{self.out.text()}",
            pytrace=False,
        )

    def expect(self, pattern: str, timeout: float = 15.0) -> None:
        if self.out.expect(pattern, timeout) is None:
            self.fail(f"no line matching {pattern!r} within {timeout}s")

    def kill(self, sig: int = signal.SIGTERM) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = EXIT_BOUND) -> tuple[int, list[str]]:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            self.fail(f"did not exit within {timeout}s")
            raise  # pragma: no cover - fail() raised
        self.out.join(5.0)
        return rc, self.out.text().splitlines()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def done_in_database(self) -> list[int]:
        with sqlite3.connect(self.cwd / "jobs.sqlite3") as db:
            rows = db.execute("SELECT job FROM done ORDER BY job").fetchall()
        db.close()
        return [job for (job,) in rows]

    def report(self) -> dict[str, object]:
        return dict(json.loads((self.cwd / "shutdown.json").read_text(encoding="utf-8")))


@pytest.fixture
def program(tmp_path: Path, backend: str) -> Iterator[Program]:
    run = Program(tmp_path, backend)
    yield run
    run.close()


def jobs_done(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.fullmatch(r"job (\d+) done", line))]


def counts(lines: list[str]) -> tuple[int, int]:
    for line in lines:
        if m := re.fullmatch(r"jobs accepted (\d+), done (\d+)", line):
            return int(m.group(1)), int(m.group(2))
    raise AssertionError("no 'jobs accepted' line:\n" + "\n".join(lines))


# ---------------------------------------------------------------- what the page shows


def normalise(line: str) -> str:
    """A line with its figures, timeline bars and spacing made comparable across runs."""
    line = re.sub(r"\d+(\.\d+)?", "N", line)
    line = re.sub(r"[━█·]+", "BAR", line)
    return " ".join(line.split())


def console_blocks() -> dict[str, list[str]]:
    """The tutorial's console blocks, by their first command line."""
    page = TUTORIAL.read_text(encoding="utf-8")
    blocks = re.findall(r"^```console\n(.*?)^```$", page, re.S | re.M)
    shown: dict[str, list[str]] = {}
    for block in blocks:
        lines = block.rstrip("\n").splitlines()
        commands = [i for i, line in enumerate(lines) if line.startswith("$ ")]
        last = commands[-1]
        shown[lines[last]] = lines[last + 1 :]
    return shown


# Printed only when the drain takes longer than progress_interval (1 s).
TIMING_DEPENDENT = re.compile(r"^gracestop: still waiting for ")


def check_page_shows(command: str, real: list[str]) -> None:
    """Every line the page shows under ``command`` is a line of a real run."""
    shown = console_blocks()[command]
    assert shown, f"the tutorial shows no output for {command!r}"
    produced = {normalise(line) for line in real}
    missing = [
        line
        for line in shown
        if not TIMING_DEPENDENT.match(line) and normalise(line) not in produced
    ]
    assert not missing, (
        f"docs/tutorial.md shows lines under {command!r} that a real run does not print:\n"
        + "\n".join(missing)
        + "\n--- real run:\n"
        + "\n".join(real)
    )


def python_blocks() -> list[str]:
    page = TUTORIAL.read_text(encoding="utf-8")
    return [block.strip() for block in re.findall(r"^```python\n(.*?)^```$", page, re.S | re.M)]


def test_the_tutorial_code_is_the_example_program_and_its_tests() -> None:
    *steps, whole, tests = python_blocks()
    program = PROGRAM.read_text(encoding="utf-8")
    assert whole + "\n" == program
    # Each step shows a part of the program, as it is in the file, in the file's order.
    assert len(steps) == 4
    positions = [program.index(step) for step in steps]
    assert positions == sorted(positions)
    assert tests + "\n" == TESTS.read_text(encoding="utf-8")


# ---------------------------------------------------------------- the program, signalled


@pytest.mark.process
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_stops_the_intake_drains_the_queue_then_closes_the_database(
    program: Program,
) -> None:
    program.expect(r"^job 3 done$")
    program.kill(signal.SIGTERM)
    rc, lines = program.wait()
    assert rc == 0, "\n".join(lines)

    accepted, done = counts(lines)
    assert accepted == done == len(jobs_done(lines)) >= 3, "\n".join(lines)
    # Every job accepted is done, once, and is in the database.
    assert jobs_done(lines) == list(range(1, accepted + 1))
    assert program.done_in_database() == jobs_done(lines)
    # In order: the signal, the intake stopped, the last job, the database closed.
    signal_at = lines.index("gracestop: received SIGTERM, shutting down; force quit in 5s")
    intake_at = lines.index("intake stopped (ok), draining the queue")
    last_job_at = lines.index(f"job {done} done")
    closed_at = lines.index("database closed")
    assert signal_at < intake_at < closed_at
    assert last_job_at < closed_at

    report = program.report()
    assert report["ok"] is True
    assert report["forced"] is False
    results = report["results"]
    assert isinstance(results, list)
    assert [(r["name"], r["status"]) for r in results] == [
        ("stop-intake", "ok"),
        ("close-db", "ok"),
    ]
    check_page_shows("$ python tutorial.py", lines)


@pytest.mark.process
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_second_sigterm_forces_the_quit_and_the_report_is_still_written(
    program: Program,
) -> None:
    # Five jobs done: the queue (five places) is full, so its drain takes about 1 s.
    program.expect(r"^job 5 done$")
    program.kill(signal.SIGTERM)
    program.expect(r"^intake stopped \(ok\), draining the queue$")
    program.kill(signal.SIGTERM)
    rc, lines = program.wait()
    assert rc == 1, "\n".join(lines)
    assert any(
        line.startswith("gracestop: received SIGTERM again: forcing the quit") for line in lines
    )
    assert "database closed" not in lines

    accepted, done = counts(lines)
    assert done == len(jobs_done(lines)) < accepted, "\n".join(lines)
    # Forced, yet nothing half-done: exactly the jobs printed as done are in the database.
    assert program.done_in_database() == jobs_done(lines)

    report = program.report()
    assert (report["ok"], report["forced"], report["forced_by"]) == (False, True, "signal")
    assert report["open_holds"] == ["worker"]
    results = report["results"]
    assert isinstance(results, list)
    assert [(r["name"], r["status"]) for r in results] == [
        ("stop-intake", "ok"),
        ("close-db", "cancelled"),
    ]
    check_page_shows(
        "$ GRACESTOP_REPORT_FILE=shutdown.json python tutorial.py",
        [line for line in lines if line],
    )
    pretty = subprocess.run(
        [sys.executable, "-m", "json.tool", "shutdown.json"],
        cwd=program.cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    check_page_shows("$ python -m json.tool shutdown.json", pretty.stdout.splitlines())


@pytest.mark.process
def test_the_tutorial_tests_pass_on_both_backends() -> None:
    # A pytest run of its own, as the reader runs it, with this project's settings
    # (warnings are errors, strict markers, pytest-asyncio strict).
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^2 passed in ", proc.stdout, re.M), proc.stdout
    check_page_shows("$ python -m pytest -q test_tutorial.py", proc.stdout.splitlines())
