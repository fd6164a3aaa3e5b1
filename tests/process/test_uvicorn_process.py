"""``gracestop.uvicorn.serve`` in a real process under load and a real SIGTERM.

The server is ``examples/fastapi_app.py``; see ``_drain.py`` for the scenario.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
from _drain import (
    DRAIN_DELAY,
    SLOW,
    WAIT_TIME,
    WRAP_UP_TIME,
    check_rollout,
    check_second_signal,
    in_thread,
    server_options,
    slow_request,
    wait_event,
)
from _load import ROOT, ServerProcess

pytestmark = pytest.mark.process

EXAMPLE = str(ROOT / "examples" / "fastapi_app.py")


def test_uvicorn_rollout_under_load(tmp_path: Path) -> None:
    server = ServerProcess([sys.executable, "-u", EXAMPLE, *server_options(str(tmp_path / "db"))])
    try:
        check_rollout(server)
    finally:
        server.kill()


def cli_server(tmp_path: Path, env: dict[str, str], *flags: str) -> tuple[ServerProcess, int]:
    """``uvicorn examples.fastapi_app:cli_app`` and the port it listens on."""
    env = {"FASTAPI_APP_DB": str(tmp_path / "db"), "FASTAPI_APP_JSON_REPORT": "1", **env}
    args = [sys.executable, "-u", "-m", "uvicorn", "examples.fastapi_app:cli_app"]
    server = ServerProcess([*args, "--port", "0", *flags], env=env)
    port = int(server.expect_err(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", 20).group(1))
    return server, port


def test_uvicorn_command_line_rollout_under_load(tmp_path: Path) -> None:
    """``uvicorn examples.fastapi_app:cli_app`` without ``--timeout-graceful-shutdown``:
    the same rollout promises as ``serve()``. The endless stream is cut before the
    wrap-up window ends, so uvicorn's drain ends, the app's lifespan shutdown runs,
    then the hooks; no watchdog is needed."""
    env = {
        "GRACESTOP_DRAIN_DELAY": str(DRAIN_DELAY),
        "GRACESTOP_WRAP_UP_TIME": str(WRAP_UP_TIME),
        "GRACESTOP_WAIT_TIME": str(WAIT_TIME),
        "FASTAPI_APP_SLOW": str(SLOW),
    }
    server, port = cli_server(tmp_path, env)
    try:
        # uvicorn ends by raising the signal it caught again (its own behaviour): -15.
        # Its command line closes websockets itself when its drain begins, with 1012
        # (service restart), before the middleware would.
        check_rollout(server, port, exit_status=-signal.SIGTERM, close_code=1012)
        out, err = server.out.text(), server.err.text()
        context = f"--- stdout:\n{out}\n--- stderr:\n{err}"
        assert "Application shutdown complete." in err, context
        assert "watchdog" not in err.lower(), context
    finally:
        server.kill()


@pytest.mark.parametrize(("slow", "completes"), [(1.5, True), (6.0, False)])
def test_uvicorn_command_line_never_closes_the_db_under_a_request(
    tmp_path: Path, slow: float, completes: bool
) -> None:
    """A slow request in flight across the start of the wrap-up phase, with a
    ``--timeout-graceful-shutdown`` longer than the wrap-up window: it ends with
    200, or is cut if it outlives the window; it never meets a closed database."""
    env = {
        "GRACESTOP_DRAIN_DELAY": "0.3",
        "GRACESTOP_WRAP_UP_TIME": "2",
        "GRACESTOP_WAIT_TIME": "10",
        "FASTAPI_APP_SLOW": str(slow),
    }
    server, port = cli_server(tmp_path, env, "--timeout-graceful-shutdown", "20")
    try:
        thread, request = in_thread(slow_request, f"http://127.0.0.1:{port}")
        server.expect(r"^SLOW start$", 10)
        signalled = server.signal(signal.SIGTERM)
        rc, out, err = server.wait(WAIT_TIME + 10)
        exited = time.monotonic()
        wait_event(server, request.done, "the slow request to end", 10)
        thread.join(10)
        context = f"rc {rc}\n--- stdout:\n{out}\n--- stderr:\n{err}\n--- {request.error!r}"
        assert rc == -signal.SIGTERM, context
        assert exited - signalled < 10 + 3, context
        lines = out.splitlines()
        assert "used_after_close=0" in out, context
        assert lines.index("LIFESPAN shutdown") < lines.index("DB closed"), context
        if completes:
            assert request.error is None and request.value.status_code == 200, context
            assert lines.index("SLOW end") < lines.index("DB closed"), context
        else:
            # Cut before its response began: uvicorn answers 500 for the app that
            # returned without one (a cut after the start ends the connection).
            if request.error is None:
                assert request.value.status_code == 500, context
                assert "closed database" not in request.value.text, context
                assert "ASGI callable returned without starting response" in err, context
            else:
                assert isinstance(request.error, httpx.HTTPError), context
            assert "SLOW end" not in lines, context
            assert "cutting 1 request(s) still running" in err, context
        report = server.report()
        assert report["ok"] is True and report["forced"] is False, context
        assert report["open_holds"] == [], context
    finally:
        server.kill()


def test_a_second_sigterm_ends_a_stuck_drain_at_once(tmp_path: Path) -> None:
    """Plain uvicorn ignores a second SIGTERM while a stream holds it; here the
    second signal forces the quit: exit status 1 at once, the report says so."""
    server = ServerProcess([sys.executable, "-u", EXAMPLE, *server_options(str(tmp_path / "db"))])
    try:
        check_second_signal(server, r"uvicorn: no longer accepting", ["http GET /events"])
    finally:
        server.kill()
