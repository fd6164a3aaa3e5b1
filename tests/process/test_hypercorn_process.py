"""``gracestop.hypercorn.serve`` in a real process under load and a real SIGTERM,
on asyncio and on trio.

The server is ``apps.py`` (the example FastAPI app served by hypercorn); see
``_drain.py`` for the scenario.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from _drain import WAIT_TIME, check_rollout, in_thread, server_options, sse_stream, wait_event
from _harness import BACKENDS
from _load import ServerProcess

pytestmark = pytest.mark.process


@pytest.mark.parametrize("backend", BACKENDS)
def test_hypercorn_rollout_under_load(tmp_path: Path, backend: str) -> None:
    server = ServerProcess.python(backend, *server_options(str(tmp_path / "db")), module="apps")
    try:
        check_rollout(server)
    finally:
        server.kill()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_second_sigterm_ends_a_stuck_drain_at_once(tmp_path: Path, backend: str) -> None:
    server = ServerProcess.python(backend, *server_options(str(tmp_path / "db")), module="apps")
    try:
        port = server.listening()
        thread, sse = in_thread(sse_stream, f"http://127.0.0.1:{port}")
        server.expect(r"^SSE open$", 10)
        server.signal(signal.SIGTERM)
        server.expect_err(r"hypercorn: no longer accepting", 10)  # the drain has begun
        again = server.signal(signal.SIGTERM)
        rc, out, err = server.wait(WAIT_TIME + 5)
        exited = time.monotonic()
        thread.join(10)
        context = f"rc {rc}\n--- stdout:\n{out}\n--- stderr:\n{err}"
        assert rc == 1, context
        assert exited - again < 2.5, context
        assert "received SIGTERM again: forcing the quit" in err, context
        assert "Traceback" not in err, context
        report = server.report()
        assert report["forced"] is True and report["forced_by"] == "signal", context
        wait_event(server, sse.done, "the stream to end", 10)
    finally:
        server.kill()
