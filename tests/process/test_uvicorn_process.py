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
from _drain import CONNECT_MARGIN, DRAIN_DELAY, check_rollout, server_options
from _load import ROOT, Load, ServerProcess

pytestmark = pytest.mark.process

EXAMPLE = str(ROOT / "examples" / "fastapi_app.py")


def test_uvicorn_rollout_under_load(tmp_path: Path) -> None:
    server = ServerProcess([sys.executable, "-u", EXAMPLE, *server_options(str(tmp_path / "db"))])
    try:
        check_rollout(server)
    finally:
        server.kill()


def test_uvicorn_command_line_with_the_lifespan_wrapper(tmp_path: Path) -> None:
    """``uvicorn examples.fastapi_app:cli_app``: uvicorn owns the signals, the
    lifespan wrapper still turns readiness off and keeps serving for drain_delay."""
    env = {
        "GRACESTOP_DRAIN_DELAY": str(DRAIN_DELAY),
        "GRACESTOP_WRAP_UP_TIME": "3",
        "GRACESTOP_WAIT_TIME": "6",
        "FASTAPI_APP_DB": str(tmp_path / "db"),
    }
    args = [sys.executable, "-u", "-m", "uvicorn", "examples.fastapi_app:cli_app"]
    server = ServerProcess([*args, "--port", "0", "--timeout-graceful-shutdown", "2"], env=env)
    try:
        port = int(server.expect_err(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", 20).group(1))
        base = f"http://127.0.0.1:{port}"
        with Load(base, ["/"], keepalive=4, fresh=2, interval=0.03, max_requests=400) as load:
            load.wait_for_requests(20)
            signalled = server.signal(signal.SIGTERM)
            with httpx.Client(base_url=base, timeout=5) as probe:
                ready = probe.get("/readyz")
            not_ready_at = time.monotonic()
            assert ready.status_code == 503, ready.text
            rc, out, err = server.wait(15)
        context = f"rc {rc}\n--- stdout:\n{out}\n--- stderr:\n{err}\n--- load: {load.summary()}"
        drain_end = signalled + DRAIN_DELAY - CONNECT_MARGIN
        assert load.failed(started_before=drain_end) == [], context
        during = load.between(not_ready_at, drain_end)
        assert len(during) >= 5, context
        assert {r.connection for r in during} == {"close"}, context
        # uvicorn ends by raising the signal it caught again (its own behaviour): -15.
        assert rc == -signal.SIGTERM, context
        assert "Application shutdown complete." in err, context
        assert "DB writes=" in out and "used_after_close=0" in out, context
    finally:
        server.kill()
