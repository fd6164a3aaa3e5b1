"""``gracestop.asgi.graceful`` under the real ``uvicorn module:app`` command line.

uvicorn owns the signals here; the wrapper's lifespan takes its handlers over. A
real SIGTERM is sent while a client polls: readiness turns 503 at once while
requests are still served, a slow request in flight ends with 200, and the
coordinator's hooks run before the process ends.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import httpx
import pytest
from _load import ServerProcess

pytestmark = pytest.mark.process

DRAIN_DELAY = 4.0
APP = "asgi_lifespan_app:app"


def start(drain_delay: float = DRAIN_DELAY) -> tuple[ServerProcess, str]:
    server = ServerProcess(
        [sys.executable, "-u", "-m", "uvicorn", APP, "--port", "0"],
        env={"APP_DRAIN_DELAY": str(drain_delay)},
    )
    port = server.expect_err(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", 20).group(1)
    return server, f"http://127.0.0.1:{port}"


def test_sigterm_drains_then_uvicorn_stops_and_hooks_run() -> None:
    server, base = start()
    slow: list[httpx.Response | BaseException] = []
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            ready = client.get("/readyz")
            assert (ready.status_code, ready.json()) == (
                200,
                {"status": "ready", "state": "running"},
            )
            assert client.get("/livez").status_code == 200

            def slow_request() -> None:
                try:
                    with httpx.Client(base_url=base, timeout=20) as own:
                        slow.append(own.get("/slow"))
                except BaseException as exc:  # pragma: no cover - reported below
                    slow.append(exc)

            thread = threading.Thread(target=slow_request, daemon=True)
            thread.start()
            server.expect("^slow request started$", 10)

            signalled = server.signal(signal.SIGTERM)
            server.expect_err("received SIGTERM", 10)
            polled = []
            for _ in range(5):
                probe = client.get("/readyz")
                work = client.get("/work")
                polled.append((probe.status_code, work.status_code, work.headers["connection"]))
            served_by = time.monotonic()
            thread.join(20)
            rc, out, err = server.wait(30)
        context = f"rc {rc}\n--- stdout:\n{out}\n--- stderr:\n{err}"
        # Within the drain delay: readiness off, requests still served, clients told to leave.
        assert served_by < signalled + DRAIN_DELAY, context
        assert polled == [(503, 200, "close")] * 5, context
        assert len(slow) == 1 and isinstance(slow[0], httpx.Response), (slow, context)
        assert (slow[0].status_code, slow[0].json()) == (200, {"slow": "done"}), context
        lines = out.splitlines()
        assert "wrap-up hook ran" in lines, context
        # The slow request ends before the app's lifespan shutdown, and that before
        # the shutdown hooks: nothing is closed under a request in flight.
        order = [lines.index(x) for x in ("slow request done", "app lifespan shutdown")]
        order.append(lines.index("shutdown hook ran"))
        assert order == sorted(order), context
        # uvicorn stops listening only once the drain delay is over.
        assert "readiness off; draining for 4s" in err, context
        assert err.index("draining for") < err.index("Shutting down"), context
        assert "Application shutdown complete." in err, context
        assert "shutdown ok" in err, context
        # uvicorn ends by raising the signal it caught again (its own behaviour).
        assert rc == -signal.SIGTERM, context
    finally:
        server.kill()


def test_second_signal_reaches_uvicorn_at_once() -> None:
    server, base = start(drain_delay=15)
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/readyz").status_code == 200
            signalled = server.signal(signal.SIGTERM)
            server.expect_err("readiness off", 10)
            assert client.get("/readyz").status_code == 503
            server.signal(signal.SIGINT)
            rc, out, err = server.wait(12)
        ended = time.monotonic()
        context = f"rc {rc}\n--- stdout:\n{out}\n--- stderr:\n{err}"
        assert ended - signalled < 12, context
        assert "forcing the quit" in err, context
        assert "shutdown forced by signal" in err, context
        assert "Shutting down" in err, context
        # uvicorn re-raises the signals it caught once it has stopped; the status is
        # then Python's: before 3.11, asyncio.run has no SIGINT handler and uvicorn's
        # own `except KeyboardInterrupt` ends the process with 0.
        if sys.version_info >= (3, 11):
            assert rc in (-signal.SIGTERM, -signal.SIGINT), context
        else:
            assert rc in (0, -signal.SIGTERM, -signal.SIGINT), context
    finally:
        server.kill()
