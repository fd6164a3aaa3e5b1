"""The rollout scenario every server integration must pass, driven from a test.

A server subprocess runs the example FastAPI app (``examples/fastapi_app.py``
with uvicorn, ``apps.py`` with hypercorn). Under a load of keep-alive and fresh
connections, with a slow request, an endless SSE stream and a websocket open,
the test sends SIGTERM and checks what a load balancer and the clients see:
nothing fails during ``drain_delay``, readiness is 503 and responses say
``Connection: close``, the slow request ends with 200, the stream and the
websocket (closed with 1001) do not keep the process past ``wait_time``, the
database is closed only after the last request, and the process exits 0 with
every hook OK.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from _load import Load, ServerProcess, iter_sse_events
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

DRAIN_DELAY = 1.2
WRAP_UP_TIME = 4.0
WAIT_TIME = 8.0
SLOW = 1.8
# A request started this long before the end of the drain delay may still reach
# the server after it stopped accepting (a busy machine delays the connect).
CONNECT_MARGIN = 0.1


def server_options(db: str) -> list[str]:
    """The command-line options both app programs take."""
    return [
        "--port",
        "0",
        "--db",
        db,
        "--slow",
        str(SLOW),
        "--drain-delay",
        str(DRAIN_DELAY),
        "--wrap-up-time",
        str(WRAP_UP_TIME),
        "--wait-time",
        str(WAIT_TIME),
        "--json-report",
    ]


@dataclass
class Outcome:
    """What a background client saw."""

    done: threading.Event = field(default_factory=threading.Event)
    ended_at: float | None = None
    value: Any = None
    error: BaseException | None = None
    items: list[str] = field(default_factory=list)


def in_thread(target: Any, *args: Any) -> tuple[threading.Thread, Outcome]:
    outcome = Outcome()

    def run() -> None:
        try:
            outcome.value = target(outcome, *args)
        except BaseException as exc:
            outcome.error = exc
        finally:
            outcome.ended_at = time.monotonic()
            outcome.done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def slow_request(outcome: Outcome, base: str) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=WAIT_TIME + 5) as client:
        return client.get("/slow")


def sse_stream(outcome: Outcome, base: str) -> None:
    with (
        httpx.Client(base_url=base, timeout=WAIT_TIME + 5) as client,
        client.stream("GET", "/events") as response,
    ):
        for event in iter_sse_events(response):
            outcome.items.append(event)


def websocket_session(outcome: Outcome, url: str) -> int | None:
    with connect(url, open_timeout=10, close_timeout=5) as ws:
        ws.send("hello")
        outcome.items.append(str(ws.recv(timeout=10)))
        try:
            ws.recv(timeout=WAIT_TIME + 5)
        except ConnectionClosed as exc:
            return None if exc.rcvd is None else int(exc.rcvd.code)
    return None


def wait_event(server: ServerProcess, event: threading.Event, what: str, timeout: float) -> None:
    if not event.wait(timeout):
        server._fail(f"timed out after {timeout}s waiting for {what}")


def check_rollout(
    server: ServerProcess, port: int | None = None, exit_status: int = 0, close_code: int = 1001
) -> None:
    """Run the rollout scenario against a started server and check every promise.

    ``port``: where the server listens, if it prints no ``LISTENING`` line.
    ``exit_status``: the status the server exits with after a clean shutdown.
    ``close_code``: the code the websocket is closed with.
    """
    if port is None:
        port = server.listening()
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10) as probe:
        assert probe.get("/readyz").status_code == 200
        assert probe.get("/livez").status_code == 200
    with Load(base, ["/"], keepalive=4, fresh=2, interval=0.03, max_requests=500) as load:
        load.wait_for_requests(20)
        sse_thread, sse = in_thread(sse_stream, base)
        ws_thread, ws = in_thread(websocket_session, f"ws://127.0.0.1:{port}/ws")
        opened = {server.expect(r"^(SSE|WS) open$", 10).group(1) for _ in range(2)}
        assert opened == {"SSE", "WS"}
        slow_thread, slow = in_thread(slow_request, base)
        server.expect(r"^SLOW start$", 10)

        signalled = server.signal(signal.SIGTERM)
        with httpx.Client(base_url=base, timeout=5) as probe:
            ready = probe.get("/readyz")
        not_ready_at = time.monotonic()
        assert ready.status_code == 503, ready.text
        assert ready.headers["connection"] == "close"
        assert json.loads(ready.text)["state"] == "draining"

        rc, out, err = server.wait(WAIT_TIME + 10)
        exited = time.monotonic()
    for thread in (sse_thread, ws_thread, slow_thread):
        thread.join(10)
    lines = out.splitlines()
    context = f"\n--- stdout:\n{out}\n--- stderr:\n{err}\n--- load: {load.summary()}"

    assert rc == exit_status, context
    # Cut streams end without a cancelled task's traceback.
    assert "Traceback" not in err, context
    # The process never outlives wait_time, whatever the stream and websocket do.
    assert exited - signalled < WAIT_TIME + 3, context

    # No request failed during the drain delay, and there was traffic in it.
    drain_end = signalled + DRAIN_DELAY - CONNECT_MARGIN
    assert load.failed(started_before=drain_end) == [], context
    during = load.between(not_ready_at, drain_end)
    assert len(during) >= 5, context
    # After the trigger every response asks the client to reconnect elsewhere.
    assert {r.connection for r in during} == {"close"}, context

    # The slow request in flight at SIGTERM finished with 200.
    assert slow.error is None, f"{slow.error!r}{context}"
    assert slow.value.status_code == 200, context

    # The stream had sent events and was cut before the exit; the websocket got
    # its close code.
    assert sse.done.is_set() and len(sse.items) >= 1, context
    assert ws.error is None, f"{ws.error!r}{context}"
    assert ws.items == ["hello"], context
    assert ws.value == close_code, context

    # The database closed after the last request and the app's lifespan.
    assert "DB closed" in lines, context
    for line in ("SLOW end", "SSE closed", "LIFESPAN shutdown"):
        assert lines.index(line) < lines.index("DB closed"), context
    db_line = next(line for line in lines if line.startswith("DB writes="))
    writes, used_after_close = (int(part.split("=")[1]) for part in db_line.split()[1:])
    assert used_after_close == 0, context
    assert writes >= len(load.between(0, signalled)) > 0, context

    report = server.report()
    assert report["ok"] is True and report["forced"] is False, context
    assert report["trigger"]["signal"] == "SIGTERM"
    assert {r["status"] for r in report["results"]} == {"ok"}, context
    assert report["open_holds"] == [], context


def check_second_signal(
    server: ServerProcess, drain_begun: str, open_holds: list[str] | None = None
) -> None:
    """A second SIGTERM while an endless stream holds the drain ends the process at
    once: exit status 1, no traceback, a report that says the quit was forced.

    ``drain_begun``: a pattern of the log line that tells the drain has begun;
    ``open_holds``: the holds the report must name, when the server's hold names
    are known.
    """
    port = server.listening()
    thread, sse = in_thread(sse_stream, f"http://127.0.0.1:{port}")
    server.expect(r"^SSE open$", 10)
    server.signal(signal.SIGTERM)
    server.expect_err(drain_begun, 10)
    again = server.signal(signal.SIGTERM)
    rc, out, err = server.wait(WAIT_TIME + 5)
    exited = time.monotonic()
    thread.join(10)
    context = f"rc {rc}\n--- stdout:\n{out}\n--- stderr:\n{err}"
    assert rc == 1, context
    # Well before the drain of the stream (wrap-up time less a reserve) was up.
    assert exited - again < 2.5, context
    assert "received SIGTERM again: forcing the quit" in err, context
    assert "Traceback" not in err and "InvalidStateError" not in err, context
    report = server.report()
    assert report["forced"] is True and report["forced_by"] == "signal", context
    if open_holds is not None:
        assert report["open_holds"] == open_holds, context
    wait_event(server, sse.done, "the stream to end", 10)
