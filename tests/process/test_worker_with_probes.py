"""``examples/worker_with_probes.py`` for real: probes over HTTP, a real SIGTERM."""

from __future__ import annotations

import signal
import sys
import time

import httpx
import pytest
from _harness import BACKENDS
from _load import ROOT, ServerProcess

pytestmark = pytest.mark.process

EXAMPLE = str(ROOT / "examples" / "worker_with_probes.py")
DRAIN_DELAY = 3.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_probes_follow_the_shutdown_and_the_worker_exits_0(backend: str) -> None:
    args = ["--port", "0", "--drain-delay", str(DRAIN_DELAY), "--backend", backend]
    worker = ServerProcess([sys.executable, "-u", EXAMPLE, *args])
    try:
        port = int(worker.expect(r"^PROBES (\d+)$", 20).group(1))
        worker.expect(r"^JOB 1 done", 10)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            ready = client.get("/readyz")
            assert (ready.status_code, ready.json()) == (
                200,
                {"status": "ready", "state": "running"},
            )
            assert client.get("/livez").status_code == 200
            signalled = worker.signal(signal.SIGTERM)
            worker.expect_err("received SIGTERM", 10)
            draining = client.get("/readyz")
            live = client.get("/livez")
            asked_by = time.monotonic()
            rc, out, err = worker.wait(20)
        context = f"rc {rc}\n--- stdout:\n{out}\n--- stderr:\n{err}"
        assert asked_by < signalled + DRAIN_DELAY, context
        assert (draining.status_code, draining.json()) == (
            503,
            {"status": "not ready", "state": "draining"},
        ), context
        assert (live.status_code, live.json()) == (200, {"status": "alive", "state": "draining"})
        assert rc == 0, context
        # Work went on during the drain delay.
        finished = [float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if "JOB" in line]
        assert any(t > signalled for t in finished), context
        assert "REQUEUED" in out and "DONE" in out, context
        assert "shutdown ok" in out, context
    finally:
        worker.kill()
