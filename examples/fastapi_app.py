"""A FastAPI service that survives a rolling deploy without failing a request.

It is served by ``gracestop.uvicorn.serve``. On SIGTERM (what Kubernetes sends)
``/readyz`` turns 503 at once while the service goes on answering for
``drain_delay``, so the load balancer has time to take it out of rotation; then
uvicorn stops accepting, lets the requests in flight finish (the slow one
included), closes websockets with 1001 and cuts endless streams when the wrap-up
time is up; then the app's lifespan ends, and only then the SQLite database is
closed, by a shutdown hook: no request ever meets a closed database.

    python examples/fastapi_app.py --port 8000
    curl localhost:8000/slow &  kill -TERM <pid>    # the slow request still gets 200
    python examples/fastapi_app.py --port 0 --drain-delay 1 --demo   # the same, by itself

Configuration comes from ``GRACESTOP_*`` variables (``GRACESTOP_DRAIN_DELAY=5``,
``GRACESTOP_WRAP_UP_TIME=20``, ``GRACESTOP_WAIT_TIME=30``), the command line wins.

The same app runs under the plain uvicorn command line too, with the readiness
flip and drain delay done by gracestop's lifespan wrapper::

    uvicorn examples.fastapi_app:cli_app --port 8000

No ``--timeout-graceful-shutdown`` is needed there: shortly before the wrap-up
window ends, the wrapper cuts the requests still running (endless streams) and
closes websockets with 1001, so uvicorn's drain ends in time and the database
closes after the last request. Given, the flag only matters below
``wrap_up_time``, where uvicorn cancels the requests itself, earlier.
``FASTAPI_APP_JSON_REPORT=1`` prints the report as a ``REPORT {json}`` line,
``FASTAPI_APP_SLOW`` sets how long ``/slow`` takes.

Endpoints: ``/`` (one SQLite write), ``/slow`` (1.5 s, then a write), ``/events``
(an endless server-sent event stream), ``/ws`` (an echo websocket), ``/readyz``
and ``/livez`` (from gracestop's middleware).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import sqlite3
import sys
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

import gracestop
import gracestop.asgi
import gracestop.instrumentation
import gracestop.uvicorn

DEFAULTS = {"drain_delay": 5.0, "wrap_up_time": 20.0, "wait_time": 30.0}


def say(*parts: object) -> None:
    """One line on stdout at once: tests (and people) follow the service by these."""
    print(*parts, flush=True)


class Database:
    """A real SQLite database; every use after :meth:`close` is counted, then fails.

    The count is what the shutdown must keep at zero: requests in flight finish
    before the shutdown hooks close the database.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.closed = False
        self.used_after_close = 0
        self.writes = 0

    def hit(self, path: str) -> int:
        """Record a hit; return how many there were."""
        with self._lock:
            if self.closed:
                self.used_after_close += 1
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            if self._conn is None:  # opened on first use, so importing the module is cheap
                self._conn = sqlite3.connect(self.path, check_same_thread=False)
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS hits (id INTEGER PRIMARY KEY, path TEXT)"
                )
            with self._conn:
                self._conn.execute("INSERT INTO hits (path) VALUES (?)", (path,))
            self.writes += 1
            return self.writes

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._conn is not None:
                self._conn.close()


def create_app(db: Database, *, slow_seconds: float = 1.5) -> FastAPI:
    """The FastAPI application (without gracestop's middleware: serve adds it)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        say("LIFESPAN startup")
        yield
        say("LIFESPAN shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def index() -> dict[str, int]:
        return {"hits": db.hit("/")}

    @app.get("/slow")
    async def slow() -> dict[str, int]:
        say("SLOW start")
        await anyio.sleep(slow_seconds)
        hits = db.hit("/slow")
        say("SLOW end")
        return {"hits": hits}

    @app.get("/events")
    async def events() -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            say("SSE open")
            number = 0
            try:
                while True:
                    yield f"data: {number}\n\n"
                    number += 1
                    await anyio.sleep(0.2)
            finally:
                say("SSE closed")

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        say("WS open")
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect as exc:
            say(f"WS closed {exc.code}")

    return app


def print_outcome(coord: gracestop.ShutdownCoordinator, db: Database, json_report: bool) -> None:
    say(f"DB writes={db.writes} used_after_close={db.used_after_close}")
    if coord.report is None:
        return
    print(coord.report.render(), file=sys.stderr, flush=True)
    if json_report:
        say("REPORT " + json.dumps(coord.report.to_dict()))


async def main(args: argparse.Namespace) -> int:
    # The example's defaults, then GRACESTOP_* variables, then the command line.
    config = config_from_env()
    overrides = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    db = Database(args.db)
    async with gracestop.ShutdownCoordinator(config, hooks=gracestop.Hooks(), **overrides) as coord:

        @coord.on_shutdown(name="close-db")
        def close_db() -> None:
            db.close()
            say("DB closed")

        async with anyio.create_task_group() as tg:
            serve = functools.partial(
                gracestop.uvicorn.serve,
                create_app(db, slow_seconds=args.slow),
                coord,
                host=args.host,
                port=args.port,
                log_level=args.log_level,
            )
            (_, port), *_ = await tg.start(serve)
            say(f"LISTENING {port}")
            if args.demo:
                tg.start_soon(demo, port)
    print_outcome(coord, db, args.json_report)
    return gracestop.exit_code(coord)


async def demo(port: int) -> None:
    """Ask for /slow, send ourselves SIGTERM while it runs, show that it still succeeds."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(b"GET /slow HTTP/1.1\r\nHost: demo\r\n\r\n")
        await anyio.sleep(0.3)  # the request is in the handler by now
        os.kill(os.getpid(), signal.SIGTERM)
        status_line = (await stream.receive()).split(b"\r\n", 1)[0].decode()
    say(f"DEMO /slow in flight at SIGTERM answered: {status_line}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "fastapi_app.db"))
    parser.add_argument("--slow", type=float, default=1.5, help="seconds /slow takes")
    parser.add_argument("--drain-delay", dest="drain_delay", type=float)
    parser.add_argument("--wrap-up-time", dest="wrap_up_time", type=float)
    parser.add_argument("--wait-time", dest="wait_time", type=float)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--json-report", action="store_true", help="print REPORT {json}")
    parser.add_argument("--demo", action="store_true", help="send a request, then SIGTERM")
    return parser.parse_args(argv)


def config_from_env() -> gracestop.ShutdownConfig:
    """The example's defaults, overridden by ``GRACESTOP_*`` variables."""
    environ = {f"GRACESTOP_{key.upper()}": str(value) for key, value in DEFAULTS.items()}
    return gracestop.ShutdownConfig.from_env(environ={**environ, **os.environ})


# ``uvicorn examples.fastapi_app:cli_app``: uvicorn owns the signals and the
# server; gracestop's lifespan wrapper turns readiness off and holds the signal
# back from uvicorn for drain_delay, and the database closes after uvicorn drained.
cli_db = Database(os.environ.get("FASTAPI_APP_DB", str(Path(tempfile.gettempdir()) / "cli.db")))
cli_hooks = gracestop.Hooks()


@cli_hooks.on_shutdown(name="close-db")
def _close_cli_db() -> None:
    cli_db.close()
    say("DB closed")
    say(f"DB writes={cli_db.writes} used_after_close={cli_db.used_after_close}")


def _print_report(event: gracestop.instrumentation.Event) -> None:
    if isinstance(event, gracestop.instrumentation.ShutdownFinished) and os.environ.get(
        "FASTAPI_APP_JSON_REPORT"
    ):
        say("REPORT " + json.dumps(event.report.to_dict()))


cli_app = gracestop.asgi.graceful(
    create_app(cli_db, slow_seconds=float(os.environ.get("FASTAPI_APP_SLOW", "1.5"))),
    hooks=cli_hooks,
    config=config_from_env(),
    observers=[*gracestop.instrumentation.get_observers(), _print_report],
)


if __name__ == "__main__":
    # gracestop says what it does (signal, phases, what it waits for) at INFO.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    sys.exit(anyio.run(main, parse()))
