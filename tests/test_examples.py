"""Every example runs end to end in a real subprocess and tells the right story."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
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
    assert re.search(r"flush-buffer +(✓|\+) ok ", out), out


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


def test_testing_example_runs_on_both_backends() -> None:
    # A pytest run of its own, as the application's suite would run it, with this
    # project's pytest settings (warnings are errors, strict markers and asyncio).
    proc = run_example(
        "-m", "pytest", "-v", "-p", "no:cacheprovider", str(EXAMPLES / "testing_app"), timeout=60
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed" in out, out
    for backend in ("asyncio", "trio"):
        assert f"test_the_pool_closes_after_the_request_in_flight[{backend}] PASSED" in out


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_observed_service_example_reports_to_prometheus_and_systemd(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unix socket paths are limited to about 107 bytes: pytest's tmp_path may be longer.
    with tempfile.TemporaryDirectory(prefix="gs-", dir="/tmp") as name:
        path = str(Path(name) / "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
            systemd.bind(path)
            monkeypatch.setenv("NOTIFY_SOCKET", path)
            proc = run_example(
                str(EXAMPLES / "observed_service.py"), "--demo", "--backend", backend
            )
            systemd.setblocking(False)
            datagrams = []
            with contextlib.suppress(BlockingIOError):
                while True:
                    datagrams.append(systemd.recv(65536).decode())
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.index("wrap_up hook finish-requests: ok") < out.index("shutdown hook close-db: ok")
    assert 'gracestop_shutdowns_total{trigger="signal"} 1.0' in out
    assert "gracestop_shutdown_duration_seconds_count 1.0" in out
    assert 'gracestop_hook_duration_seconds_count{phase="shutdown",status="ok"} 1.0' in out
    assert "gracestop_open_holds 0.0" in out
    assert "shutdown ok in" in out
    assert "received SIGTERM, shutting down; force quit in 5s" in proc.stderr
    lines = [line for datagram in datagrams for line in datagram.split("\n")]
    assert lines[0] == "READY=1"
    assert lines.index("STOPPING=1") < lines.index("EXTEND_TIMEOUT_USEC=6500000")
    assert lines[-1].startswith("STATUS=shutdown ok in")


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
    # tutorial.py and test_tutorial.py are run, with real signals, by
    # tests/process/test_tutorial.py, which also checks them against docs/tutorial.md.
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


def test_fastapi_example_demo_answers_the_request_in_flight(tmp_path: Path) -> None:
    # Under load, with a slow request, a stream and a websocket:
    # tests/process/test_uvicorn_process.py.
    args = ("--port", "0", "--db", str(tmp_path / "db"), "--drain-delay", "0.5", "--demo")
    proc = run_example(str(EXAMPLES / "fastapi_app.py"), *args)
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, out + err
    assert "DEMO /slow in flight at SIGTERM answered: HTTP/1.1 200 OK" in out, out + err
    assert "received SIGTERM, shutting down" in err, err
    assert out.index("SLOW end") < out.index("DB closed"), out
    assert "DB writes=1 used_after_close=0" in out, out
    assert "shutdown ok in" in err, err


def test_aiohttp_example_serves_then_exits_0_on_sigterm(tmp_path: Path) -> None:
    # Under load, with a slow request, a stream, a websocket and a second signal:
    # tests/process/test_aiohttp_process.py.
    import httpx

    args = ["--port", "0", "--db", str(tmp_path / "db"), "--drain-delay", "0.2"]
    proc = subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLES / "aiohttp_app.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=EXAMPLES.parent,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        port = int(lines[1].split()[1]) if lines[1].startswith("LISTENING") else 0
        assert port, lines
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            assert client.get("/").json() == {"hits": 1}
            assert client.get("/readyz").status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, out + err
    assert out.index("LIFESPAN shutdown") < out.index("DB closed"), out + err
    assert "DB writes=1 used_after_close=0" in out, out + err
    assert "shutdown ok in" in err, err
