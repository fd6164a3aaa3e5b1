"""An aiohttp service that survives a rolling deploy without failing a request.

It is served by ``gracestop.aiohttp.serve`` instead of ``web.run_app``. On
SIGTERM (what Kubernetes sends) ``/readyz`` turns 503 at once while the service
goes on answering for ``drain_delay``, so the load balancer has time to take it
out of rotation; then the server stops accepting, closes the websocket with 1001,
lets the requests in flight finish (the slow one included) and cuts the endless
event stream before the wrap-up time is up; then the application's cleanup
context ends, and only then the SQLite database is closed, by a shutdown hook:
no request ever meets a closed database. A second SIGTERM or Ctrl-C ends it at
once, without tracebacks.

    python examples/aiohttp_app.py --port 8080
    curl localhost:8080/slow &  kill -TERM <pid>    # the slow request still gets 200

Configuration comes from ``GRACESTOP_*`` variables (``GRACESTOP_DRAIN_DELAY=5``,
``GRACESTOP_WRAP_UP_TIME=20``, ``GRACESTOP_WAIT_TIME=30``), the command line wins.

Endpoints: ``/`` (one SQLite write), ``/slow`` (1.5 s, then a write), ``/events``
(an endless server-sent event stream), ``/ws`` (an echo websocket), ``/readyz``
and ``/livez`` (from gracestop's middleware).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import sqlite3
import sys
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from aiohttp import WSMsgType, web

import gracestop
import gracestop.aiohttp

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
            if self._conn is None:  # opened on first use, so creating the app is cheap
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


def create_app(db: Database, *, slow_seconds: float = 1.5) -> web.Application:
    """The aiohttp application (without gracestop's middleware: serve adds it)."""
    routes = web.RouteTableDef()

    @routes.get("/")
    async def index(request: web.Request) -> web.Response:
        return web.json_response({"hits": db.hit("/")})

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        say("SLOW start")
        await asyncio.sleep(slow_seconds)
        hits = db.hit("/slow")
        say("SLOW end")
        return web.json_response({"hits": hits})

    @routes.get("/events")
    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        say("SSE open")
        number = 0
        try:
            while True:
                await response.write(f"data: {number}\n\n".encode())
                number += 1
                await asyncio.sleep(0.2)
        finally:
            # Cancelled when the drain time is up: the stream never ends by itself.
            say("SSE closed")

    @routes.get("/ws")
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        say("WS open")
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await ws.send_str(message.data)
        say(f"WS closed {ws.close_code}")
        return ws

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        # aiohttp's cleanup context: runs inside runner.cleanup(), after the drain.
        say("LIFESPAN startup")
        yield
        say("LIFESPAN shutdown")

    app = web.Application()
    app.add_routes(routes)
    app.cleanup_ctx.append(lifespan)
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
                gracestop.aiohttp.serve,
                create_app(db, slow_seconds=args.slow),
                coord,
                host=args.host,
                port=args.port,
                access_log=None,
            )
            (_, port), *_ = await tg.start(serve)
            say(f"LISTENING {port}")
    print_outcome(coord, db, args.json_report)
    return gracestop.exit_code(coord)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "aiohttp_app.db"))
    parser.add_argument("--slow", type=float, default=1.5, help="seconds /slow takes")
    parser.add_argument("--drain-delay", dest="drain_delay", type=float)
    parser.add_argument("--wrap-up-time", dest="wrap_up_time", type=float)
    parser.add_argument("--wait-time", dest="wait_time", type=float)
    parser.add_argument("--json-report", action="store_true", help="print REPORT {json}")
    return parser.parse_args(argv)


def config_from_env() -> gracestop.ShutdownConfig:
    """The example's defaults, overridden by ``GRACESTOP_*`` variables."""
    environ = {f"GRACESTOP_{key.upper()}": str(value) for key, value in DEFAULTS.items()}
    return gracestop.ShutdownConfig.from_env(environ={**environ, **os.environ})


if __name__ == "__main__":
    # gracestop logs the timeline (trigger, phases, the drain) on stderr.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    sys.exit(anyio.run(main, parse()))
