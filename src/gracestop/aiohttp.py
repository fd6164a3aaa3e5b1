"""Serve an aiohttp application under a [`ShutdownCoordinator`][gracestop.ShutdownCoordinator].

``aiohttp.web.run_app`` handles signals itself: a second signal ends it mid-cleanup
with tracebacks, and its 60 s ``shutdown_timeout`` is applied twice to a response
that never ends (a server-sent event stream). `serve` runs the application
with ``web.AppRunner(handle_signals=False)`` and ``web.TCPSite`` and lets the
coordinator drive the shutdown instead:

    import anyio
    from aiohttp import web

    import gracestop
    import gracestop.aiohttp


    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", hello)
        async with gracestop.Coordinator(drain_delay=5, wrap_up_time=20, wait_time=30) as coord:
            await gracestop.aiohttp.serve(app, coord, host="0.0.0.0", port=8080)


    anyio.run(main)

The timeline after SIGTERM:

1. At once: ``/readyz`` answers 503 and every response carries ``Connection: close``,
   so clients reconnect and load balancers stop routing here. Requests are still
   served, on new connections too, for the coordinator's ``drain_delay``.
2. When the wrap-up phase starts: the listening socket and the idle keep-alive
   connections are closed, websocket upgrades get 503, and the requests in flight
   get the wrap-up time left, less a tenth of it (at most 0.5 s), or
   ``shutdown_timeout`` if shorter, to finish.
3. At the end of the drain (once no HTTP request is left, or at the latest when
   that time is up): websockets are closed with code 1001 (going away). What is
   still running then, such as an endless stream, is cancelled.
4. ``runner.cleanup()`` runs the application's ``on_shutdown``, ``on_cleanup`` and
   cleanup contexts.
5. Then the application's own wrap-up hooks run (the server's hook has
   ``order=HOOK_ORDER``, -1000), then the shutdown hooks: after the last request.

Every request (websockets included) is a `hold`
while it runs, so the wrap-up phase does not end under it.

aiohttp runs only on asyncio: under trio, `serve` raises
[`ShutdownError`][gracestop.ShutdownError]. This module imports aiohttp and is not imported
by ``import gracestop``; install it with ``pip install gracestop[aiohttp]``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from aiohttp import WSCloseCode, hdrs, web
from anyio.abc import TaskStatus

from ._config import _describe, parse_timeout
from ._coordinator import ShutdownCoordinator
from ._health import ProbeAnswer, check_path, liveness, method_not_allowed, readiness
from ._hooks import HookContext
from ._report import ShutdownError
from ._serving import (
    HOOK_ORDER,
    ServerStartupError,
    check_running,
    running_on_asyncio,
    wrap_up_left,
)
from .instrumentation import _names

__all__ = ["HOOK_ORDER", "ServerStartupError", "serve", "setup"]

logger = logging.getLogger("gracestop")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: After the drain, how long the requests cancelled then may take to end: a
#: tenth of the wrap-up time, at most this.
_CANCEL_WAIT = 0.5
#: Bound on the last cleanup when `serve` itself is cancelled.
_LAST_CLEANUP = 1.0
_GOING_AWAY = b"server shutting down"


class _Tracker:
    """Per-application state: the requests in flight and the open websockets."""

    def __init__(
        self, coord: ShutdownCoordinator, readiness_path: str | None, liveness_path: str | None
    ) -> None:
        self.coord = coord
        self.readiness_path = readiness_path
        self.liveness_path = liveness_path
        self.tasks: dict[asyncio.Task[Any], str] = {}
        # Keyed by the request's task: a request is a mapping and cannot be a key.
        self.websockets: dict[asyncio.Task[Any] | None, web.WebSocketResponse] = {}
        self._idle: anyio.Event | None = None

    async def handle(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        path = request.path
        if path == self.readiness_path:
            return self._probe(request, readiness(self.coord))
        if path == self.liveness_path:
            return self._probe(request, liveness(self.coord))
        websocket = _is_websocket_upgrade(request)
        if websocket and not self.coord.accepting:
            # Accepted after the drain began, it would only be closed at once.
            return web.json_response(
                {"status": "shutting down", "state": self.coord.state.value}, status=503
            )
        name = f"websocket {path}" if websocket else f"http {request.method} {path}"
        task = asyncio.current_task()
        async with self.coord.hold(name):
            if task is not None:
                self.tasks[task] = name
            try:
                return await handler(request)
            finally:
                if task is not None:
                    self.tasks.pop(task, None)
                self.websockets.pop(task, None)
                if self._idle is not None:
                    self._idle.set()

    async def on_prepare(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        if isinstance(response, web.WebSocketResponse):
            self.websockets[asyncio.current_task()] = response
        elif self.coord.trigger is not None:
            # Makes keep-alive clients reconnect, reaching an instance that is
            # still ready once the load balancer has caught up. The header is set
            # as well: aiohttp may have computed its headers before this hook.
            response.force_close()
            response.headers[hdrs.CONNECTION] = "close"

    def _probe(self, request: web.Request, answer: ProbeAnswer) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            answer = method_not_allowed()
        response = web.Response(
            status=answer.status, body=answer.body, content_type="application/json"
        )
        response.headers[hdrs.CACHE_CONTROL] = "no-store"
        return response

    async def wait_idle(self, *, http_only: bool = False) -> None:
        """Return once no request (or no HTTP request: websockets aside) is in flight."""
        while len(self.tasks) > (len(self.websockets) if http_only else 0):
            self._idle = anyio.Event()
            await self._idle.wait()

    def cancel_all(self) -> None:
        """Cancel every request in flight."""
        for task in list(self.tasks):
            task.cancel()

    async def close_websockets(self) -> None:
        """Close every open websocket with 1001, concurrently."""
        async with anyio.create_task_group() as tg:
            for ws in list(self.websockets.values()):
                tg.start_soon(_close_websocket, ws)


async def _close_websocket(ws: web.WebSocketResponse) -> None:
    try:
        await ws.close(code=WSCloseCode.GOING_AWAY, message=_GOING_AWAY)
    except Exception as exc:  # a failing client must not stop the drain
        logger.debug("closing a websocket failed: %r", exc)


def _is_websocket_upgrade(request: web.BaseRequest) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


_TRACKER = web.AppKey("gracestop_tracker", _Tracker)


def setup(
    app: web.Application,
    coord: ShutdownCoordinator,
    *,
    readiness_path: str | None = "/readyz",
    liveness_path: str | None = "/livez",
) -> None:
    """Install gracestop's middleware on ``app`` (before it starts).

    `serve` calls this for you; call it yourself to serve the application
    some other way (a ``web.AppRunner`` and site of your own) and still get the
    probes, the holds and ``Connection: close``; closing the listener, the
    websockets and the drain are then up to you.

    The middleware goes first in ``app.middlewares``, so it sees every request:

    - ``readiness_path`` answers 200 ``{"status": "ready", ...}`` while ``coord.ready``,
      and 503 from the trigger on; ``liveness_path`` answers 200 until the coordinator has
      stopped. Both bodies carry the coordinator's ``state``. Pass ``None`` to turn
      a probe off.
    - every other request, websockets included, is a ``coord.hold`` while it runs;
    - once the shutdown is triggered, every response carries ``Connection: close``;
      once the wrap-up phase has started, websocket upgrades get 503.

    For example:

        app = web.Application()
        gracestop.aiohttp.setup(app, coord, liveness_path=None)

    Raises:
        TypeError: ``app`` is not a ``web.Application``, ``coord`` not a
            coordinator, or a path is not a string.
        ValueError: a path does not start with ``/``, or both paths are the same.
        ShutdownError: the application has started already (it is frozen) or was
            set up with another coordinator or other paths.
    """
    _tracker_for(app, coord, readiness_path, liveness_path)


def _tracker_for(
    app: web.Application, coord: ShutdownCoordinator, readiness_path: object, liveness_path: object
) -> _Tracker:
    if not isinstance(app, web.Application):
        raise TypeError(f"app must be an aiohttp.web.Application; got {type(app).__name__}")
    if not isinstance(coord, ShutdownCoordinator):
        raise TypeError(f"coord must be a ShutdownCoordinator; got {type(coord).__name__}")
    ready_path = check_path("readiness_path", readiness_path)
    live_path = check_path("liveness_path", liveness_path)
    if ready_path is not None and ready_path == live_path:
        raise ValueError(f"readiness_path and liveness_path must differ; both are {ready_path!r}")
    existing = app.get(_TRACKER)
    if existing is not None:
        if existing.coord is not coord or (existing.readiness_path, existing.liveness_path) != (
            ready_path,
            live_path,
        ):
            raise ShutdownError(
                "the application is set up already with "
                f"{existing.coord!r} (readiness_path={existing.readiness_path!r}, "
                f"liveness_path={existing.liveness_path!r})"
            )
        return existing
    if app.frozen:
        raise ShutdownError(
            "the application has started already; call gracestop.aiohttp.setup() before"
        )
    tracker = _Tracker(coord, ready_path, live_path)

    @web.middleware
    async def gracestop_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        return await tracker.handle(request, handler)

    app[_TRACKER] = tracker
    app.middlewares.insert(0, gracestop_middleware)
    app.on_response_prepare.append(tracker.on_prepare)
    return tracker


async def serve(
    app: web.Application,
    coord: ShutdownCoordinator,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    readiness_path: str | None = "/readyz",
    liveness_path: str | None = "/livez",
    shutdown_timeout: float | str | None = None,
    order: int = HOOK_ORDER,
    task_status: TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
    **runner_options: Any,
) -> None:
    """Serve ``app`` on ``host:port`` until the coordinator has drained it.

    Call it inside ``async with ShutdownCoordinator() as coord:``, directly or with
    ``tg.start`` to learn the addresses it is bound to (useful with ``port=0``;
    ``tg.start`` passes no keyword arguments, hence `functools.partial`):

        async with gracestop.Coordinator(drain_delay=5) as coord:
            async with anyio.create_task_group() as tg:
                (host, port), *_ = await tg.start(
                    functools.partial(gracestop.aiohttp.serve, app, coord, port=0)
                )
                print("listening on", port)

    It installs the middleware of `setup` (probes at ``readiness_path`` and
    ``liveness_path``), starts the server, and registers on ``coord`` a wrap-up hook named
    ``aiohttp <host>:<port>`` with ``order`` (`HOOK_ORDER`, -1000, by
    default: the server drains before the application's own wrap-up hooks run).
    The hook closes the listening socket and the idle connections, waits for the
    HTTP requests in flight, then closes websockets with code 1001, cancels what
    still runs when the drain time is up, and runs ``runner.cleanup()`` (the
    application's ``on_shutdown``, ``on_cleanup`` and cleanup contexts).
    `serve` returns once that is done.

    Args:
        app: the application; it must not have started.
        coord: an entered coordinator whose shutdown has not begun.
        host: the address to bind.
        port: the TCP port; 0 picks a free one, reported through ``task_status``.
        readiness_path: path of the readiness probe, or ``None``.
        liveness_path: path of the liveness probe, or ``None``.
        shutdown_timeout: the longest the requests in flight may take once the
            wrap-up phase has started (any duration form). The drain never lasts
            longer than the wrap-up time left, less a tenth of it (at most 0.5 s)
            for the application's cleanup.
        order: the ``order`` of the wrap-up hook.
        task_status: for ``tg.start``; receives the bound ``(host, port)``
            addresses, as ``gracestop.uvicorn.serve`` and ``gracestop.hypercorn.serve``
            report them (one per address ``host`` resolves to).
        **runner_options: passed to ``web.AppRunner`` (``access_log``,
            ``keepalive_timeout``, ...), except ``handle_signals`` and
            ``shutdown_timeout``, which serve sets itself.

    Raises:
        ShutdownError: on trio (aiohttp runs on asyncio only), when ``coord`` is
            not entered or its shutdown has begun, or when the application has
            started already or was set up with another coordinator.
        ServerStartupError: the server could not start (the address is in use,
            say); the ``OSError`` is its cause.
        TypeError, ValueError: a bad argument, named in the message.
    """
    if not running_on_asyncio():
        raise ShutdownError(
            "gracestop.aiohttp.serve() needs asyncio: aiohttp does not run on trio. "
            "Use anyio's asyncio backend (gracestop.run(main, backend='asyncio'))."
        )
    check_running(coord)
    if not isinstance(host, str):
        raise TypeError(f"host must be a str; got {_describe(host)}")
    if not host:
        raise ValueError("host must not be empty")
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"port must be an int; got {_describe(port)}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535; got {port!r}")
    timeout = parse_timeout(shutdown_timeout, "shutdown_timeout")
    if not isinstance(order, int) or isinstance(order, bool):
        raise TypeError(f"order must be an int; got {_describe(order)}")
    if "handle_signals" in runner_options:
        raise TypeError(
            "handle_signals cannot be passed to web.AppRunner through serve(): "
            "the coordinator handles the signals"
        )
    tracker = _tracker_for(app, coord, readiness_path, liveness_path)
    if app.frozen:
        raise ShutdownError(
            "the application has started already (it is frozen); serve() runs it from the start"
        )

    cancel_wait = min(_CANCEL_WAIT, coord.config.wrap_up_time / 10)
    # aiohttp's own timeout only matters for handlers that ignore cancellation:
    # serve() has drained and cancelled the requests before runner.cleanup().
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=max(cancel_wait, 0.1), **runner_options
    )
    server = _Server(runner, tracker, cancel_wait, timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise ServerStartupError(f"aiohttp could not start on {host}:{port}: {exc}") from exc
        bound = [(str(a[0]), int(a[1])) for a in runner.addresses]
        server.label = f"aiohttp {host}:{bound[0][1]}"
        coord.on_wrap_up(name=server.label, order=order)(server.drain)
        logger.info("%s: serving", server.label)
        task_status.started(bound)
        await server.done.wait()
    finally:
        if not server.done.is_set():
            # Cancelled (a forced quit, or from outside): cut the requests in flight
            # at once rather than let aiohttp wait for each of them.
            tracker.cancel_all()
            with anyio.CancelScope(shield=True), anyio.move_on_after(_LAST_CLEANUP):
                await server.cleanup()


class _Server:
    """One running server and its drain, run as a wrap-up hook."""

    def __init__(
        self,
        runner: web.AppRunner,
        tracker: _Tracker,
        cancel_wait: float,
        timeout: float | None,
    ) -> None:
        self.runner = runner
        self.tracker = tracker
        self.cancel_wait = cancel_wait
        self.timeout = timeout
        self.label = "aiohttp"
        self.done = anyio.Event()
        self._lock = anyio.Lock()

    async def drain(self, ctx: HookContext) -> None:
        """Stop accepting, drain the requests in flight, clean the application up."""
        if self.done.is_set():
            return  # serve() was cancelled and has cleaned up already
        tracker = self.tracker
        started = anyio.current_time()
        # The drain ends in time for the cleanup to finish before the shutdown
        # hooks (closing the database) start.
        budget = wrap_up_left(tracker.coord, ctx, started)
        if self.timeout is not None:
            budget = min(budget, self.timeout)
        logger.info(
            "%s: stopped accepting; draining %d request(s), closing %d websocket(s); "
            "streams are cut in %.3gs",
            self.label,
            len(tracker.tasks),
            len(tracker.websockets),
            budget,
        )
        for site in list(self.runner.sites):
            await site.stop()
        server = self.runner.server
        if server is not None:
            # Idle keep-alive connections close now, busy ones after their response.
            for conn in list(server.connections):
                conn.close()
        with anyio.move_on_at(started + budget):
            # Websockets close at the end of the drain: once no HTTP request is
            # left, or when the budget is up.
            await tracker.wait_idle(http_only=True)
        await tracker.close_websockets()
        with anyio.move_on_at(started + budget):
            await tracker.wait_idle()
        if tracker.tasks:
            names = sorted(tracker.tasks.values())
            logger.warning(
                "%s: cancelling %d request(s) still running after the drain: %s",
                self.label,
                len(names),
                _names(names),
            )
            tracker.cancel_all()
            with anyio.move_on_after(self.cancel_wait):
                await tracker.wait_idle()
        began = time.monotonic()
        await self.cleanup()
        logger.info("%s: cleaned up in %.3gs", self.label, time.monotonic() - began)

    async def cleanup(self) -> None:
        """``runner.cleanup()``, once, whoever gets here first."""
        async with self._lock:
            if self.done.is_set():
                return
            try:
                await self.runner.cleanup()
            finally:
                self.done.set()
