"""Every example runs end to end in a real subprocess and tells the right story."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.process


def run_example(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-u", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=EXAMPLES.parent,
        check=False,
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_seed_example_demo_finishes_the_flush_and_loses_nothing(backend: str) -> None:
    proc = run_example(str(EXAMPLES / "seed_wrap_up.py"), "--demo", "--backend", backend)
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "received SIGTERM, shutting down" in out
    assert re.search(r"WAITER flush-buffer ok after 2\.\d\ds", out)
    # The flush (wrap-up) ends before the database closes (shutdown).
    assert out.index("flush: ") < out.index("database closed")
    assert re.search(r"failed 0, lost 0", out)
    assert "shutdown ok in" in out
    assert "flush-buffer  ok" in out


def test_seed_example_under_an_external_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLES / "seed_wrap_up.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY"), line
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, out + err
    assert "WAITER flush-buffer ok" in out
    # The 2 s flush ran to its end; nothing waited for the 5 s deadline.
    assert 1.9 < elapsed < 4.5


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_worker_example_finishes_the_job_in_hand(backend: str) -> None:
    proc = run_example(str(EXAMPLES / "worker.py"), "--demo", "--backend", backend)
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    match = re.search(r"jobs acknowledged (\d+), persisted (\d+), requeued (\d+), lost (\d+)", out)
    assert match, out
    acknowledged, persisted, requeued, lost = map(int, match.groups())
    assert acknowledged >= 3
    assert persisted == acknowledged
    assert requeued > 0
    assert lost == 0
    assert out.index("requeue:") < out.index("database closed")


def test_trio_example_runs_through_gracestop_run() -> None:
    proc = run_example(str(EXAMPLES / "trio_app.py"), "--demo")
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.index("flushed 3 metric points") < out.index("connection pool closed")
    assert "shutdown ok in" in out
    assert "close-pool" in out


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_worker_with_probes_demo_exits_0(backend: str) -> None:
    # The probes under a real SIGTERM: tests/process/test_worker_with_probes.py.
    args = ("--demo", "--port", "0", "--backend", backend)
    proc = run_example(str(EXAMPLES / "worker_with_probes.py"), *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^PROBES \d+$", proc.stdout, re.MULTILINE), proc.stdout
    assert "received SIGTERM" in proc.stderr, proc.stderr
    assert "shutdown ok in" in proc.stdout
    assert "requeue" in proc.stdout


def test_examples_are_all_exercised() -> None:
    here = Path(__file__).read_text()
    for example in EXAMPLES.glob("*.py"):
        assert example.name in here, f"{example.name} has no test"
    assert os.access(EXAMPLES / "seed_wrap_up.py", os.R_OK)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_diagnostics_example_asks_itself_for_a_dump_and_a_profile(
    backend: str, tmp_path: Path
) -> None:
    directory = tmp_path / "diag"
    proc = run_example(
        str(EXAMPLES / "diagnostics.py"), "--demo", "--backend", backend, "--dir", str(directory)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "--- task 'poll fast-upstream'" in out
    assert "--- task 'poll slow-upstream'" in out
    calls = re.search(r"profile (\S+\.pstats): checksum called (\d+) times", out)
    assert calls is not None, out
    assert int(calls.group(2)) > 0
    assert Path(calls.group(1)).parent == directory
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert "shutdown ok" in proc.stderr
