"""ASGI integration: drain an ASGI app without dropping a request.

Two pieces, both pure ASGI 3 with no third-party dependency:

- `ShutdownMiddleware` counts every HTTP request and websocket session as a
  `hold`, answers the readiness and liveness
  probes, asks keep-alive clients to leave once the shutdown has begun
  (``Connection: close``) and closes websockets with code 1001 (going away) when the
  wrap-up window is over.
- `graceful` wraps an app for servers started from their command line
  (``uvicorn app:app``, ``fastapi run``): the app's ``lifespan`` runs a
  [`ShutdownCoordinator`][gracestop.ShutdownCoordinator] and takes over the server's signal
  handlers so that a SIGTERM first turns readiness off and keeps serving for
  ``drain_delay`` before the server hears of it.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import FrameType
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from ._config import ShutdownConfig, _describe
from ._coordinator import ShutdownCoordinator, _current
from ._health import ProbeAnswer, check_path, liveness, method_not_allowed, readiness
from ._hooks import Hooks
from ._report import ShutdownError, State
from ._signals import loop_caller
from ._watchdog import Watchdog
from .instrumentation import Observer

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._config import ConfigOverrides

__all__ = [
    "GOING_AWAY",
    "ASGIApp",
    "GracefulApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "ShutdownMiddleware",
    "graceful",
]

logger = logging.getLogger("gracestop")

Scope = MutableMapping[str, Any]
"""An ASGI connection scope."""
Message = MutableMapping[str, Any]
"""An ASGI event, sent or received."""
Receive = Callable[[], Awaitable[Message]]
"""The ``receive`` callable of an ASGI app."""
Send = Callable[[Message], Awaitable[None]]
"""The ``send`` callable of an ASGI app."""
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application."""

GOING_AWAY = 1001
"""Websocket close code 1001, "going away": the server is shutting down."""

_HTTP1 = ("1.0", "1.1")
# Hold names kept per (method, path); paths with ids in them are not all kept.
_NAME_CACHE_SIZE = 1024
_WATCHER = "gracestop websocket closer"
# Part of the wrap-up window (at most a quarter) left to the server after the
# requests are cut: it finishes its drain and runs the app's lifespan shutdown.
_SERVER_RESERVE = 0.5


class ShutdownMiddleware:
    """ASGI middleware that lets a coordinator drain an app without dropping requests.

    - Every HTTP request and every websocket session is a
      `hold` (named ``"http GET /path"`` or
      ``"websocket /path"``), so the wrap-up phase waits for them and the shutdown
      phase (closing the database) starts only once they are done or
      ``wrap_up_time`` is up.
    - ``readiness_path`` answers 200 while the coordinator is running and 503 from
      the trigger on; ``liveness_path`` answers 200 until the coordinator has
      stopped, 503 after. Both answer short JSON such as
      ``{"status":"ready","state":"running"}``. Probe requests are not holds and
      never reach the app.
    - Once the shutdown is triggered, every HTTP/1.x response carries
      ``Connection: close`` (replacing any keep-alive header), so keep-alive
      clients reconnect to another replica.
    - When the wrap-up window is over (the shutdown phase starts, the coordinator
      stops or the quit is forced), open websocket sessions are closed with code
      1001 and their handlers cancelled. A server integration can do it earlier
      with `close_websockets`.
    - ``lifespan`` and unknown scope types pass through untouched.

    Args:
        app: the ASGI app to wrap.
        coordinator: the coordinator to report to. ``None`` finds it at call time:
            the one run by `graceful`'s lifespan, else the innermost entered
            coordinator of the task serving the request (a server started inside
            ``async with ShutdownCoordinator():``).
        readiness_path: path of the readiness probe, or ``None`` for none.
        liveness_path: path of the liveness probe, or ``None`` for none.

    For example:

        coord = gracestop.ShutdownCoordinator(drain_delay=5, wait_time=30)
        app = ShutdownMiddleware(fastapi_app, coord)
        async with coord:
            await hypercorn.asyncio.serve(app, hypercorn_config)
    """

    def __init__(
        self,
        app: ASGIApp,
        coordinator: ShutdownCoordinator | None = None,
        *,
        readiness_path: str | None = "/readyz",
        liveness_path: str | None = "/livez",
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be an ASGI app (a callable); got {_describe(app)}")
        if coordinator is not None and not isinstance(coordinator, ShutdownCoordinator):
            raise TypeError(
                f"coordinator must be a ShutdownCoordinator or None; got {_describe(coordinator)}"
            )
        self.app = app
        self.readiness_path = check_path("readiness_path", readiness_path)
        self.liveness_path = check_path("liveness_path", liveness_path)
        if self.readiness_path is not None and self.readiness_path == self.liveness_path:
            raise ValueError(
                f"readiness_path and liveness_path must differ; both are {self.readiness_path!r}"
            )
        self._coordinator = coordinator
        self._bound: ShutdownCoordinator | None = None
        self._sessions: set[_Session] = set()
        # One watcher per coordinator closes the websockets at the end of the
        # wrap-up window, however many sessions are open.
        self._watched: weakref.WeakSet[ShutdownCoordinator] = weakref.WeakSet()
        self._http_count = 0
        self._http_idle: anyio.Event | None = None
        self._hold_names: dict[tuple[str, str | None], str] = {}

    @property
    def coordinator(self) -> ShutdownCoordinator | None:
        """The coordinator given or bound by `graceful` (``None`` if found per call)."""
        return self._coordinator or self._bound

    @property
    def open_websockets(self) -> int:
        """How many websocket sessions are open through this middleware."""
        return len(self._sessions)

    def _find(self) -> ShutdownCoordinator:
        coord = self._coordinator or self._bound or _current.get()
        if coord is None:
            raise ShutdownError(
                "ShutdownMiddleware found no coordinator: pass one "
                "(ShutdownMiddleware(app, coord)), wrap the app with gracestop.asgi.graceful(app) "
                "so that its lifespan runs one, or serve the app inside "
                "`async with ShutdownCoordinator():`"
            )
        return coord

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        kind = scope.get("type")
        if kind == "http":
            await self._http(self._find(), scope, receive, send)
        elif kind == "websocket":
            await self._websocket(self._find(), scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def close_websockets(self, code: int = GOING_AWAY) -> None:
        """Close every open websocket session now and wait until they are closed.

        Each session gets ``websocket.close`` with ``code`` (unless it is already
        closed) and its handler is cancelled. The server integrations call this at
        the end of their drain (once no HTTP request is left, or just before the
        requests still running are cut); without it sessions are closed when the
        wrap-up window is over.
        """
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"code must be an int; got {_describe(code)}")
        if not 1000 <= code <= 4999:
            raise ValueError(f"code must be a websocket close code (1000-4999); got {code!r}")
        sessions = list(self._sessions)
        for session in sessions:
            session.request_close(code)
        for session in sessions:
            await session.done.wait()

    # ------------------------------------------------------------------ http

    async def _http(
        self, coord: ShutdownCoordinator, scope: Scope, receive: Receive, send: Send
    ) -> None:
        path = scope.get("path")
        if path is not None and path == self.readiness_path:
            await self._probe(coord, scope, send, readiness(coord))
            return
        if path is not None and path == self.liveness_path:
            await self._probe(coord, scope, send, liveness(coord))
            return
        method = scope.get("method", "GET")
        key = (method, path)
        name = self._hold_names.get(key)
        if name is None:
            name = f"http {method} {path}"
            if len(self._hold_names) < _NAME_CACHE_SIZE:
                self._hold_names[key] = name
        if scope.get("http_version", "1.1") in _HTTP1:
            send = _ClosingSend(coord, send)
        self._http_count += 1
        try:
            async with coord.hold(name):
                await self.app(scope, receive, send)
        finally:
            self._http_count -= 1
            if not self._http_count and self._http_idle is not None:
                self._http_idle.set()
                self._http_idle = None

    async def _no_http_requests(self) -> None:
        """Return once no HTTP request is in flight through this middleware."""
        while self._http_count:
            if self._http_idle is None:
                self._http_idle = anyio.Event()
            await self._http_idle.wait()

    async def _probe(
        self, coord: ShutdownCoordinator, scope: Scope, send: Send, answer: ProbeAnswer
    ) -> None:
        method = scope.get("method", "GET")
        headers = answer.headers
        if method not in ("GET", "HEAD"):
            answer = method_not_allowed()
            headers = [*answer.headers, (b"allow", b"GET, HEAD")]
        start = {"type": "http.response.start", "status": answer.status, "headers": headers}
        await _close_connection_after_trigger(coord, scope, send, start)
        body = b"" if method == "HEAD" else answer.body
        await send({"type": "http.response.body", "body": body, "more_body": False})

    # ------------------------------------------------------------------ websocket

    async def _websocket(
        self, coord: ShutdownCoordinator, scope: Scope, receive: Receive, send: Send
    ) -> None:
        session = _Session(send)
        if coord.state.rank > State.WRAPPING_UP.rank:
            session.request_close(GOING_AWAY)
        elif coord not in self._watched and coord._tg is not None:
            self._watched.add(coord)
            coord._tg.start_soon(self._close_after_wrap_up, coord, name=_WATCHER)
        self._sessions.add(session)
        try:
            async with coord.hold(f"websocket {scope.get('path')}"):
                await session.run(self.app, scope, receive)
        finally:
            self._sessions.discard(session)

    async def _close_after_wrap_up(self, coord: ShutdownCoordinator) -> None:
        await coord.wait_for(State.SHUTTING_DOWN)
        await self.close_websockets()


class _ClosingSend:
    """An HTTP/1.x request's ``send``: a response start after the trigger gets
    ``Connection: close``."""

    __slots__ = ("_coord", "_send")

    def __init__(self, coord: ShutdownCoordinator, send: Send) -> None:
        self._coord = coord
        self._send = send

    async def __call__(self, message: Message) -> None:
        await _close_connection_after_trigger(self._coord, {}, self._send, message)


async def _close_connection_after_trigger(
    coord: ShutdownCoordinator, scope: Scope, send: Send, message: Message
) -> None:
    """Send ``message``; a response start after the trigger gets ``Connection: close``."""
    if (
        message.get("type") == "http.response.start"
        and coord.trigger is not None
        and scope.get("http_version", "1.1") in _HTTP1
    ):
        headers = [
            (name, value)
            for name, value in message.get("headers", ())
            if bytes(name).lower() != b"connection"
        ]
        headers.append((b"connection", b"close"))
        message = {**message, "headers": headers}
    await send(message)


class _Session:
    """One websocket session: closed with a code when the wrap-up window is over."""

    def __init__(self, send: Send) -> None:
        self._send_to_server = send
        # A close (or an HTTP denial) was sent, or the client has gone.
        self.closed = False
        self.close_code: int | None = None
        self.done = anyio.Event()
        self._app_scope: anyio.CancelScope | None = None

    def request_close(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
        if self._app_scope is not None:
            self._app_scope.cancel()

    async def send(self, message: Message) -> None:
        if message.get("type") in ("websocket.close", "websocket.http.response.start"):
            self.closed = True
        await self._send_to_server(message)

    def receiver(self, receive: Receive) -> Receive:
        async def receive_and_watch() -> Message:
            message = await receive()
            if message.get("type") == "websocket.disconnect":
                self.closed = True
            return message

        return receive_and_watch

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive) -> None:
        try:
            with anyio.CancelScope() as app_scope:
                self._app_scope = app_scope
                if self.close_code is not None:
                    app_scope.cancel()
                await app(scope, self.receiver(receive), self.send)
            if self.close_code is not None and not self.closed:
                self.closed = True
                close = {"type": "websocket.close", "code": self.close_code, "reason": "going away"}
                try:
                    await self._send_to_server(close)
                except Exception as exc:
                    # The client left while the handler was being stopped: each
                    # server says so with an exception of its own.
                    logger.debug("websocket %s gone before its close: %r", scope.get("path"), exc)
        finally:
            self.done.set()


# ---------------------------------------------------------------------- lifespan


def graceful(
    app: ASGIApp,
    *,
    hooks: Hooks | Iterable[Hooks] | None = None,
    config: ShutdownConfig | None = None,
    observers: Iterable[Observer] | None = None,
    readiness_path: str | None = "/readyz",
    liveness_path: str | None = "/livez",
    **overrides: Unpack[ConfigOverrides],
) -> GracefulApp:
    """Wrap an ASGI app so that its server's own command line shuts it down gracefully.

    For apps started by ``uvicorn module:app`` or ``fastapi run``, where the server
    owns the signals. The returned app is ``app`` inside a `ShutdownMiddleware`
    whose ``lifespan`` runs a [`ShutdownCoordinator`][gracestop.ShutdownCoordinator] for the app's
    lifetime (forwarding ``lifespan`` to ``app`` when it has a lifespan of its own).

    On SIGTERM or SIGINT readiness turns to 503 at once and the server keeps
    serving for ``drain_delay``; then the signal is passed on to the server, which
    stops listening and drains its connections while the wrap-up hooks run.
    Websockets are closed with 1001 once no HTTP request is left; shortly before
    the wrap-up window ends (a quarter of it, at most 0.5 s) the requests still
    running, streams included, are cut, so the server's drain ends and its
    ``lifespan.shutdown`` comes: the app's lifespan shutdown runs, then the
    shutdown hooks, after the last request. A second signal is passed on at once
    and forces the quit. See `GracefulApp`.

    uvicorn's ``--timeout-graceful-shutdown`` is not needed; a value longer than
    ``wrap_up_time`` changes nothing, a shorter one makes uvicorn cancel the
    requests itself, earlier.

    Example (``main.py``, run with ``uvicorn main:app``):

        hooks = gracestop.Hooks()

        @hooks.on_shutdown
        async def close_db() -> None: ...

        app = gracestop.asgi.graceful(
            FastAPI(), hooks=hooks, drain_delay=5, wrap_up_time=15, wait_time=25
        )

    Args:
        app: the ASGI app.
        hooks: registries, as for [`ShutdownCoordinator`][gracestop.ShutdownCoordinator].
        config: a [`ShutdownConfig`][gracestop.ShutdownConfig], as for the coordinator.
        observers: observers of shutdown events, as for the coordinator.
        readiness_path: as for `ShutdownMiddleware`.
        liveness_path: as for `ShutdownMiddleware`.
        **overrides: `ShutdownConfig` fields, as for the coordinator. ``signals``
            names the signals taken over from the server (default SIGTERM and
            SIGINT).
    """
    return GracefulApp(
        app,
        hooks=hooks,
        config=config,
        observers=observers,
        readiness_path=readiness_path,
        liveness_path=liveness_path,
        **overrides,
    )


class GracefulApp:
    """An ASGI app whose lifespan runs a coordinator; made by `graceful`.

    Attributes:
        app: the wrapped app.
        middleware: the `ShutdownMiddleware` serving HTTP and websockets.
        coordinator: the running coordinator, from ``lifespan.startup`` on (``None``
            before). Also in the lifespan state as ``state["gracestop"]``, so a
            Starlette/FastAPI handler finds it as ``request.state.gracestop``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hooks: Hooks | Iterable[Hooks] | None = None,
        config: ShutdownConfig | None = None,
        observers: Iterable[Observer] | None = None,
        readiness_path: str | None = "/readyz",
        liveness_path: str | None = "/livez",
        **overrides: Unpack[ConfigOverrides],
    ) -> None:
        from ._serving import InFlight  # _serving imports this module

        self.middleware = ShutdownMiddleware(
            app, readiness_path=readiness_path, liveness_path=liveness_path
        )
        self._in_flight = InFlight(self.middleware)
        self.app = app
        if config is None:
            config = ShutdownConfig()
        elif not isinstance(config, ShutdownConfig):
            raise TypeError(f"config must be a ShutdownConfig or None; got {_describe(config)}")
        config = config.replace(**overrides) if overrides else config
        self._signals: tuple[signal.Signals, ...] = (
            config.signals if config.signals is not None else (signal.SIGTERM, signal.SIGINT)
        )
        # The server owns the signals: the coordinator hears them through the
        # handlers taken over here, never through a listener of its own.
        self._config = config.replace(signals=())
        # Validated now rather than at startup, where an error is harder to read.
        self._observers = None if observers is None else tuple(observers)
        ShutdownCoordinator(self._config, hooks=hooks, observers=self._observers)
        self._hooks = hooks
        self.coordinator: ShutdownCoordinator | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection: ``lifespan`` here, the rest in the middleware."""
        if scope.get("type") == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self._in_flight(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message.get("type") != "lifespan.startup":
            raise ShutdownError(f"lifespan must begin with lifespan.startup; got {message!r}")
        coord = ShutdownCoordinator(self._config, hooks=self._hooks, observers=self._observers)
        state = scope.get("state")
        if isinstance(state, MutableMapping):
            state["gracestop"] = coord
        inner = _InnerLifespan(self.app, scope)
        takeover = _SignalTakeover(coord, self._signals)
        shutdown_received = False
        kind = "lifespan.startup"
        failure: str | None = None
        try:
            async with anyio.create_task_group() as tg:
                async with coord:
                    self.coordinator = coord
                    self.middleware._bound = coord
                    failure = await inner.startup(tg)
                    if failure is None:
                        kind = "lifespan.shutdown"
                        takeover.install()
                        tg.start_soon(takeover.forward_after_drain, name="gracestop forward")
                        tg.start_soon(self._end_drain, coord, name="gracestop end of drain")
                        # The shutdown phase waits for the server's own drain
                        # (lifespan.shutdown comes once its connections are closed)
                        # and for the app's lifespan shutdown, which may still use
                        # what the shutdown hooks close.
                        async with coord.hold("server drain"):
                            await send({"type": "lifespan.startup.complete"})
                            await _expect(receive, "lifespan.shutdown")
                            shutdown_received = True
                            with anyio.CancelScope(shield=True):
                                failure = await inner.shutdown()
                if kind == "lifespan.shutdown" and not shutdown_received:
                    # The coordinator stopped first (wrap_up_time ran out).
                    await _expect(receive, "lifespan.shutdown")
                    failure = await inner.shutdown()
                tg.cancel_scope.cancel()
        finally:
            takeover.restore()
            inner.close()
        if failure is not None:
            await send({"type": f"{kind}.failed", "message": failure})
        else:
            await send({"type": f"{kind}.complete"})

    async def _end_drain(self, coord: ShutdownCoordinator) -> None:
        """End the server's drain before the wrap-up window does.

        Websockets are closed (1001) once no HTTP request is left; the requests
        still running shortly before the window ends (streams, slow requests) are
        cut. The server then finishes its drain and sends ``lifespan.shutdown``,
        so the app's lifespan shutdown and then the shutdown hooks run after the
        last request, whatever ``--timeout-graceful-shutdown`` says.
        """
        await coord.wait_for(State.WRAPPING_UP)
        window_end = coord.wrap_up_deadline
        if window_end is None:
            # Forced to stop before the wrap-up phase: nothing left to wait for.
            window_end = anyio.current_time()
        left = max(0.0, window_end - anyio.current_time())
        cut_at = window_end - min(_SERVER_RESERVE, left / 4)
        with anyio.move_on_at(cut_at):
            await self.middleware._no_http_requests()
        await self.middleware.close_websockets()
        await anyio.sleep_until(cut_at)
        if self.middleware._http_count:
            logger.warning(
                "cutting %d request(s) still running at the end of the wrap-up window",
                self.middleware._http_count,
            )
        self._in_flight.cut()


async def _expect(receive: Receive, kind: str) -> None:
    message = await receive()
    if message.get("type") != kind:
        raise ShutdownError(f"expected {kind} from the server; got {message!r}")


class _InnerLifespan:
    """The wrapped app's own lifespan, driven through memory streams."""

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self._app = app
        self._scope = scope
        self._to_app, self._app_in = anyio.create_memory_object_stream[Message](2)
        self._app_out, self._from_app = anyio.create_memory_object_stream[Message](2)
        self._replied = False

    async def _run(self) -> None:
        try:
            await self._app(self._scope, self._app_in.receive, self._app_out.send)
        except Exception as exc:
            if self._replied:
                logger.error("the app's lifespan raised", exc_info=exc)
            else:
                # As uvicorn does: an app that raises on a lifespan scope has none.
                logger.debug("the app does not support lifespan: %r", exc)
        finally:
            self._app_out.close()

    async def startup(self, tg: TaskGroup) -> str | None:
        """Start the app's lifespan; return the failure message, if it failed."""
        tg.start_soon(self._run, name="app lifespan")
        return await self._exchange("lifespan.startup")

    async def shutdown(self) -> str | None:
        """Stop the app's lifespan; return the failure message, if it failed."""
        if not self._replied:
            return None
        return await self._exchange("lifespan.shutdown")

    async def _exchange(self, kind: str) -> str | None:
        try:
            await self._to_app.send({"type": kind})
            reply = await self._from_app.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            # The app's lifespan has ended: it has none, or it has nothing to say.
            return None
        self._replied = True
        if reply.get("type") == f"{kind}.complete":
            return None
        if reply.get("type") == f"{kind}.failed":
            return str(reply.get("message") or f"{kind} failed")
        return f"the app answered {kind} with {reply.get('type')!r}"

    def close(self) -> None:
        for stream in (self._to_app, self._app_in, self._app_out, self._from_app):
            stream.close()


class _SignalTakeover:
    """Stand in for the server's signal handlers while the app runs.

    The first signal goes to the coordinator (readiness off, drain delay) and
    reaches the server once the drain delay is over; a second one reaches both
    at once. Only handlers installed with ``signal.signal`` (uvicorn's) can be
    taken over: a server that listens through its event loop (hypercorn,
    anything on ``loop.add_signal_handler`` or trio's signal receiver) hears the
    signal whatever handler is installed.
    """

    def __init__(self, coord: ShutdownCoordinator, signals: tuple[signal.Signals, ...]) -> None:
        self._coord = coord
        self._signals = signals
        self._previous: dict[signal.Signals, Any] = {}
        self._received: list[tuple[signal.Signals, FrameType | None]] = []
        self._forwarded = False
        self._call: Callable[[Callable[[], object]], None] | None = None
        self._watchdog: Watchdog | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            logger.warning(
                "the app's lifespan runs outside the main thread: the server's signal "
                "handlers stay in place, so readiness turns off only at lifespan.shutdown"
            )
            return
        self._call = loop_caller()
        for sig in self._signals:
            handler = signal.getsignal(sig)
            if not _can_take_over(handler):
                logger.warning(
                    "the server handles %s through its event loop (%r); gracestop.asgi.graceful "
                    "cannot delay it, so readiness turns off only at lifespan.shutdown",
                    sig.name,
                    handler,
                )
                continue
            self._previous[sig] = signal.signal(sig, self._handle)
        config = self._coord.config
        if self._previous and config.hard_exit is not False:
            # The coordinator's watchdog stops with the coordinator; this one covers
            # the server's drain too, up to lifespan.shutdown.complete.
            self._watchdog = Watchdog(
                exit_code=config.force_exit_code,
                describe_pending=self._coord._describe_pending,
                name="gracestop-asgi-watchdog",
            )
            self._watchdog.start()

    def restore(self) -> None:
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, handler)
        if self._watchdog is not None:
            self._watchdog.stop()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        self._received.append((sig, frame))
        if self._call is not None:
            self._call(functools.partial(self._coord._on_signal, sig))
        if len(self._received) > 1:
            self._forward()

    def _forward(self) -> None:
        """Pass every signal not passed on yet to the server's own handler."""
        if self._forwarded:
            pending = self._received[-1:]
        else:
            pending = list(self._received)
            self._forwarded = True
        for sig, frame in pending:
            _call_handler(self._previous.get(sig, signal.SIG_IGN), sig, frame)

    async def forward_after_drain(self) -> None:
        """Once triggered, wait out the drain delay, then tell the server."""
        trigger = await self._coord.triggered()
        config = self._coord.config
        if self._watchdog is not None and (trigger.kind == "signal" or config.hard_exit):
            self._watchdog.arm(self._coord._trigger_mono + config.wait_time + config.watchdog_grace)
        if trigger.kind not in ("signal", "manual") or not self._previous:
            return
        if not self._received:
            # Triggered by the app itself: the server is told as if sent SIGTERM.
            sig = signal.SIGTERM if signal.SIGTERM in self._previous else next(iter(self._previous))
            self._received.append((sig, None))
        elapsed = time.monotonic() - self._coord._trigger_mono
        await anyio.sleep(max(0.0, config.drain_delay - elapsed))
        if not self._forwarded:
            self._forward()


def _can_take_over(handler: Any) -> bool:
    """Whether calling ``handler`` ourselves is how the server would hear the signal."""
    if not callable(handler):
        return bool(handler == signal.SIG_DFL)
    if handler is signal.default_int_handler:
        # It raises KeyboardInterrupt wherever it is called: not from a task.
        return False
    module = str(getattr(handler, "__module__", "") or "")
    return module.split(".", maxsplit=1)[0] not in ("asyncio", "trio", "uvloop")


def _call_handler(handler: Any, sig: signal.Signals, frame: FrameType | None) -> None:
    if callable(handler):
        handler(sig, frame)
    elif handler == signal.SIG_DFL:
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
