"""ShutdownMiddleware and graceful(), driven in-process through ASGI calls (no server)."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

import gracestop
from gracestop import ShutdownCoordinator, ShutdownError, State
from gracestop.asgi import (
    GOING_AWAY,
    ASGIApp,
    GracefulApp,
    Message,
    Receive,
    Scope,
    Send,
    ShutdownMiddleware,
    graceful,
)

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0


def http_scope(path: str, method: str = "GET", http_version: str = "1.1") -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": http_version,
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"test")],
    }


class Response:
    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        start = messages[0]
        assert start["type"] == "http.response.start", messages
        self.status: int = start["status"]
        self.headers = [(bytes(k).lower(), bytes(v)) for k, v in start.get("headers", [])]
        self.body = b"".join(m.get("body", b"") for m in messages[1:])

    def header(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name]

    def json(self) -> Any:
        return json.loads(self.body)


async def call_http(app: ASGIApp, scope: Scope) -> Response:
    """One HTTP request: the request body is empty, the client stays connected."""
    sent: list[Message] = []
    events = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        if events:
            return events.pop(0)
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)

    with anyio.fail_after(TIMEOUT):
        await app(scope, receive, send)
    return Response(sent)


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"Connection", b"keep-alive")],
        }
    )
    await send({"type": "http.response.body", "body": b"app"})


class WebSocketClient:
    """A websocket session driven through memory streams."""

    def __init__(self, app: ASGIApp, path: str = "/ws") -> None:
        self.app = app
        self.scope: Scope = {"type": "websocket", "path": path, "headers": [], "subprotocols": []}
        self._to_app, self._app_in = anyio.create_memory_object_stream[Message](10)
        self._app_out, self.from_app = anyio.create_memory_object_stream[Message](10)
        self.ended = anyio.Event()
        self.error: BaseException | None = None

    async def run(self) -> None:
        try:
            await self.app(self.scope, self._app_in.receive, self._app_out.send)
        except Exception as exc:
            self.error = exc
        finally:
            self.ended.set()

    async def send(self, message: Message) -> None:
        await self._to_app.send(message)

    async def next(self) -> Message:
        with anyio.fail_after(TIMEOUT):
            return await self.from_app.receive()

    def close(self) -> None:
        for stream in (self._to_app, self._app_in, self._app_out, self.from_app):
            stream.close()


def echo_ws_app(log: list[str]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                await send({"type": "websocket.send", "text": message["text"]})
        except anyio.get_cancelled_exc_class():
            log.append("handler cancelled")
            raise

    return app


async def wait_for(predicate: Callable[[], bool]) -> None:
    """Poll a condition that no event reports, bounded by TIMEOUT."""
    with anyio.fail_after(TIMEOUT):
        while not predicate():
            await anyio.sleep(0.005)


# ---------------------------------------------------------------------- probes


async def test_readiness_turns_503_at_the_trigger() -> None:
    async with ShutdownCoordinator(signals=(), drain_delay=0.5, wait_time=5) as coord:
        app = ShutdownMiddleware(ok_app, coord)
        before = await call_http(app, http_scope("/readyz"))
        assert before.status == 200
        assert before.json() == {"status": "ready", "state": "running"}
        assert before.header(b"content-type") == [b"application/json"]
        coord.shutdown()
        after = await call_http(app, http_scope("/readyz"))
        assert after.status == 503
        assert after.json() == {"status": "not ready", "state": "draining"}
        assert after.header(b"content-length") == [str(len(after.body)).encode()]


async def test_liveness_is_200_until_the_coordinator_stops() -> None:
    coord = ShutdownCoordinator(signals=(), drain_delay=0.5, wait_time=5)
    app = ShutdownMiddleware(ok_app, coord)
    async with coord:
        assert (await call_http(app, http_scope("/livez"))).status == 200
        coord.shutdown()
        during = await call_http(app, http_scope("/livez"))
        assert during.status == 200
        assert during.json() == {"status": "alive", "state": "draining"}
    after = await call_http(app, http_scope("/livez"))
    assert after.status == 503
    assert after.json() == {"status": "stopped", "state": "stopped"}


async def test_probe_head_and_other_methods() -> None:
    async with ShutdownCoordinator(signals=()) as coord:
        app = ShutdownMiddleware(ok_app, coord)
        head = await call_http(app, http_scope("/readyz", method="HEAD"))
        assert head.status == 200
        assert head.body == b""
        assert int(head.header(b"content-length")[0]) > 0
        post = await call_http(app, http_scope("/livez", method="POST"))
        assert post.status == 405
        assert post.header(b"allow") == [b"GET, HEAD"]
        assert post.json() == {"status": "method not allowed"}


async def test_probes_never_reach_the_app_nor_hold() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
        seen.append(scope["path"])
        await ok_app(scope, receive, send)

    async with ShutdownCoordinator(signals=()) as coord:
        mw = ShutdownMiddleware(app, coord, readiness_path="/ready", liveness_path="/alive")
        assert (await call_http(mw, http_scope("/ready"))).status == 200
        assert (await call_http(mw, http_scope("/alive"))).status == 200
        assert coord.open_holds == ()
    assert seen == []


async def test_probe_paths_can_be_switched_off() -> None:
    async with ShutdownCoordinator(signals=()) as coord:
        app = ShutdownMiddleware(ok_app, coord, readiness_path=None, liveness_path=None)
        response = await call_http(app, http_scope("/readyz"))
        assert (response.status, response.body) == (200, b"app")


# ---------------------------------------------------------------------- Connection: close


async def test_connection_close_after_the_trigger_only() -> None:
    async with ShutdownCoordinator(signals=(), drain_delay=0.5, wait_time=5) as coord:
        app = ShutdownMiddleware(ok_app, coord)
        before = await call_http(app, http_scope("/x"))
        assert before.header(b"connection") == [b"keep-alive"]
        coord.shutdown()
        after = await call_http(app, http_scope("/x"))
        assert (after.status, after.body) == (200, b"app")
        assert after.header(b"connection") == [b"close"]
        assert after.header(b"content-type") == [b"text/plain"]
        http10 = await call_http(app, http_scope("/x", http_version="1.0"))
        assert http10.header(b"connection") == [b"close"]
        # HTTP/2 has no Connection header: the response is left as the app sent it.
        http2 = await call_http(app, http_scope("/x", http_version="2"))
        assert http2.header(b"connection") == [b"keep-alive"]
        probe = await call_http(app, http_scope("/readyz"))
        assert probe.header(b"connection") == [b"close"]


# ---------------------------------------------------------------------- holds


async def test_a_slow_request_keeps_the_wrap_up_phase_open() -> None:
    order: list[str] = []
    started = anyio.Event()
    release = anyio.Event()

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await release.wait()
        await ok_app(scope, receive, send)
        order.append("request done")

    hooks = gracestop.Hooks()

    @hooks.on_shutdown
    def close_db() -> None:
        order.append("shutdown hook")

    coord = ShutdownCoordinator(signals=(), hooks=hooks, wrap_up_time=10, wait_time=20)
    app = ShutdownMiddleware(slow_app, coord)
    responses: list[Response] = []

    async def client() -> None:
        responses.append(await call_http(app, http_scope("/slow", method="POST")))

    async with coord, anyio.create_task_group() as tg:
        tg.start_soon(client)
        with anyio.fail_after(TIMEOUT):
            await started.wait()
        assert coord.open_holds == ("http POST /slow",)
        coord.shutdown()
        await wait_for(lambda: coord.state is State.WRAPPING_UP)
        # Nothing ends the phase but the request.
        await anyio.wait_all_tasks_blocked()
        assert coord.state is State.WRAPPING_UP
        assert order == []
        release.set()
        report = await coord.finished()
    assert order == ["request done", "shutdown hook"]
    assert responses[0].status == 200
    assert responses[0].header(b"connection") == [b"close"]
    assert report.ok
    assert report.open_holds == ()
    assert coord.open_holds == ()


async def test_a_request_still_open_at_the_end_of_wrap_up_is_reported() -> None:
    started = anyio.Event()

    async def stuck_app(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await anyio.sleep_forever()

    coord = ShutdownCoordinator(signals=(), wrap_up_time=0.2, wait_time=5)
    app = ShutdownMiddleware(stuck_app, coord)
    async with coord:
        async with anyio.create_task_group() as tg:
            tg.start_soon(call_http, app, http_scope("/stream"))
            with anyio.fail_after(TIMEOUT):
                await started.wait()
            coord.shutdown()
            report = await coord.finished()
            tg.cancel_scope.cancel()
    assert report.open_holds == ("http GET /stream",)


async def test_the_app_exception_reaches_the_server_unchanged() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise KeyError("boom")

    async with ShutdownCoordinator(signals=()) as coord:
        app = ShutdownMiddleware(broken, coord)
        with pytest.raises(KeyError, match="boom"):
            await call_http(app, http_scope("/x"))
        assert coord.open_holds == ()


# ---------------------------------------------------------------------- websockets


async def test_websocket_is_a_hold_and_closed_with_1001_after_wrap_up() -> None:
    log: list[str] = []
    coord = ShutdownCoordinator(signals=(), wrap_up_time=0.3, wait_time=5)
    app = ShutdownMiddleware(echo_ws_app(log), coord)
    ws = WebSocketClient(app)
    try:
        async with coord, anyio.create_task_group() as tg:
            tg.start_soon(ws.run)
            await ws.send({"type": "websocket.connect"})
            assert (await ws.next())["type"] == "websocket.accept"
            await ws.send({"type": "websocket.receive", "text": "hi"})
            assert (await ws.next()) == {"type": "websocket.send", "text": "hi"}
            assert app.open_websockets == 1
            assert coord.open_holds == ("websocket /ws",)
            coord.shutdown()
            # Still served during the wrap-up window.
            await ws.send({"type": "websocket.receive", "text": "still there"})
            assert (await ws.next())["text"] == "still there"
            closing = await ws.next()
            assert closing["type"] == "websocket.close"
            assert closing["code"] == GOING_AWAY
            with anyio.fail_after(TIMEOUT):
                await ws.ended.wait()
    finally:
        ws.close()
    report = coord.report
    assert report is not None
    assert log == ["handler cancelled"]
    assert ws.error is None
    assert app.open_websockets == 0
    assert report.open_holds == ("websocket /ws",)


async def test_open_websockets_share_one_watcher_that_requests_never_wake() -> None:
    """Each session used to run a watcher of its own that every finished request
    woke: the tasks must not grow with the sessions, and a request wakes none."""
    log: list[str] = []
    sessions = 20

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await ok_app(scope, receive, send)
        else:
            await echo_ws_app(log)(scope, receive, send)

    coord = ShutdownCoordinator(signals=(), wrap_up_time=0.5, wait_time=5)
    middleware = ShutdownMiddleware(app, coord)
    clients = [WebSocketClient(middleware) for _ in range(sessions)]
    wakeups = 0
    try:
        async with coord, anyio.create_task_group() as tg:
            baseline = len(anyio.get_running_tasks())
            for ws in clients:
                tg.start_soon(ws.run)
                await ws.send({"type": "websocket.connect"})
                assert (await ws.next())["type"] == "websocket.accept"
            tasks = anyio.get_running_tasks()
            # One task per client session (the server's), one watcher in all.
            assert len(tasks) == baseline + sessions + 1
            assert [t.name for t in tasks].count("gracestop websocket closer") == 1
            # Finished requests set the coordinator's shared event; nobody waits on it.
            original = coord._set_changed

            def counting() -> None:
                nonlocal wakeups
                if coord._changed is not None:
                    wakeups += 1
                original()

            coord._set_changed = counting  # type: ignore[method-assign]
            for _ in range(10):
                assert (await call_http(middleware, http_scope("/"))).status == 200
            assert wakeups == 0
            coord.shutdown()
            for ws in clients:
                assert (await ws.next())["code"] == GOING_AWAY
    finally:
        for ws in clients:
            ws.close()
    assert log == ["handler cancelled"] * sessions


async def test_close_websockets_now_with_a_code() -> None:
    log: list[str] = []
    async with ShutdownCoordinator(signals=()) as coord:
        app = ShutdownMiddleware(echo_ws_app(log), coord)
        ws = WebSocketClient(app, "/chat")
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(ws.run)
                await ws.send({"type": "websocket.connect"})
                assert (await ws.next())["type"] == "websocket.accept"
                assert coord.open_holds == ("websocket /chat",)
                with anyio.fail_after(TIMEOUT):
                    await app.close_websockets(code=1012)
                assert ws.ended.is_set()
                assert (await ws.next()) == {
                    "type": "websocket.close",
                    "code": 1012,
                    "reason": "going away",
                }
        finally:
            ws.close()
        assert coord.open_holds == ()
        assert coord.state is State.RUNNING
    assert log == ["handler cancelled"]


async def test_a_session_closed_by_the_client_gets_no_close_from_us() -> None:
    log: list[str] = []
    async with ShutdownCoordinator(signals=()) as coord:
        app = ShutdownMiddleware(echo_ws_app(log), coord)
        ws = WebSocketClient(app)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(ws.run)
                await ws.send({"type": "websocket.connect"})
                assert (await ws.next())["type"] == "websocket.accept"
                await ws.send({"type": "websocket.disconnect", "code": 1000})
                with anyio.fail_after(TIMEOUT):
                    await ws.ended.wait()
                await app.close_websockets()
        finally:
            ws.close()
        # Nothing more was sent after the accept.
        with pytest.raises(anyio.ClosedResourceError):
            ws.from_app.receive_nowait()
    assert log == []


async def test_a_websocket_opened_after_wrap_up_is_closed_at_once() -> None:
    log: list[str] = []
    coord = ShutdownCoordinator(signals=(), wait_time=5)
    app = ShutdownMiddleware(echo_ws_app(log), coord)
    async with coord:
        pass
    ws = WebSocketClient(app)
    try:
        await ws.send({"type": "websocket.connect"})
        with anyio.fail_after(TIMEOUT):
            await ws.run()
        # Refused before the accept: the close is the handshake's answer.
        assert (await ws.next()) == {
            "type": "websocket.close",
            "code": 1001,
            "reason": "going away",
        }
    finally:
        ws.close()


async def test_a_websocket_handler_error_propagates_unwrapped() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("bad frame")

    async with ShutdownCoordinator(signals=()) as coord:
        app = ShutdownMiddleware(broken, coord)
        ws = WebSocketClient(app)
        try:
            await ws.run()
        finally:
            ws.close()
        assert isinstance(ws.error, ValueError)
        assert coord.open_holds == ()


@pytest.mark.parametrize(
    ("code", "error"), [("1001", TypeError), (True, TypeError), (999, ValueError)]
)
async def test_close_websockets_rejects_bad_codes(code: Any, error: type[Exception]) -> None:
    app = ShutdownMiddleware(ok_app, ShutdownCoordinator())
    with pytest.raises(error, match="code"):
        await app.close_websockets(code)


# ---------------------------------------------------------------------- pass-through


async def test_lifespan_and_unknown_scopes_pass_through_untouched() -> None:
    calls: list[tuple[Scope, Receive, Send]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((scope, receive, send))

    async def receive() -> Message:  # pragma: no cover - never called
        raise AssertionError

    async def send(message: Message) -> None:  # pragma: no cover - never called
        raise AssertionError

    # No coordinator anywhere: these scopes do not need one.
    app = ShutdownMiddleware(inner)
    lifespan: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    other: Scope = {"type": "custom.protocol"}
    await app(lifespan, receive, send)
    await app(other, receive, send)
    assert calls == [(lifespan, receive, send), (other, receive, send)]
    assert calls[0][0] is lifespan


# ---------------------------------------------------------------------- finding the coordinator


async def test_no_coordinator_is_a_clear_error() -> None:
    app = ShutdownMiddleware(ok_app)
    with pytest.raises(ShutdownError, match=r"found no coordinator.*graceful"):
        await call_http(app, http_scope("/x"))
    assert app.coordinator is None


async def test_the_innermost_coordinator_is_found_at_call_time() -> None:
    app = ShutdownMiddleware(ok_app)
    async with ShutdownCoordinator(signals=()) as coord:
        coord.shutdown()
        response = await call_http(app, http_scope("/readyz"))
        assert response.status == 503
        assert app.coordinator is None


# ---------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"app": "not an app"}, TypeError, "app must be an ASGI app"),
        ({"coordinator": "coord"}, TypeError, "coordinator must be a ShutdownCoordinator"),
        ({"readiness_path": "readyz"}, ValueError, "readiness_path must start with"),
        ({"liveness_path": b"/livez"}, TypeError, "liveness_path must be a str or None"),
        ({"liveness_path": "/live z"}, ValueError, "liveness_path must be a plain path"),
        ({"readiness_path": "/h", "liveness_path": "/h"}, ValueError, "must differ"),
    ],
)
def test_bad_parameters(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    args: dict[str, Any] = {"app": ok_app, **kwargs}
    with pytest.raises(error, match=match):
        ShutdownMiddleware(**args)


def test_graceful_bad_parameters() -> None:
    with pytest.raises(TypeError, match="config must be a ShutdownConfig"):
        graceful(ok_app, config={"wait_time": 3})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wait_time"):
        graceful(ok_app, wait_time=-1)
    with pytest.raises(TypeError, match="hooks"):
        graceful(ok_app, hooks=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="app must be an ASGI app"):
        graceful(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- graceful(): lifespan


class Lifespan:
    """Plays the server's side of the lifespan protocol."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self._to_app, self._app_in = anyio.create_memory_object_stream[Message](10)
        self._app_out, self._from_app = anyio.create_memory_object_stream[Message](10)
        self.ended = anyio.Event()

    async def run(self) -> None:
        try:
            await self.app(self.scope, self._app_in.receive, self._app_out.send)
        finally:
            self.ended.set()

    async def ask(self, kind: str) -> Message:
        await self._to_app.send({"type": kind})
        with anyio.fail_after(TIMEOUT):
            return await self._from_app.receive()

    def close(self) -> None:
        for stream in (self._to_app, self._app_in, self._app_out, self._from_app):
            stream.close()


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[Lifespan]:
    lifespan = Lifespan(app)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lifespan.run)
            yield lifespan
            with anyio.fail_after(TIMEOUT):
                await lifespan.ended.wait()
    finally:
        lifespan.close()


def recording_hooks(log: list[str]) -> gracestop.Hooks:
    hooks = gracestop.Hooks()

    @hooks.on_wrap_up
    async def flush() -> None:
        log.append("wrap-up hook")

    @hooks.on_shutdown
    async def close_db() -> None:
        log.append("shutdown hook")

    return hooks


def lifespan_app(log: list[str], *, fail: str | None = None) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await ok_app(scope, receive, send)
            return
        assert (await receive())["type"] == "lifespan.startup"
        log.append("app startup")
        if fail == "startup":
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return
        await send({"type": "lifespan.startup.complete"})
        assert (await receive())["type"] == "lifespan.shutdown"
        log.append("app shutdown")
        if fail == "shutdown":
            await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})
            return
        await send({"type": "lifespan.shutdown.complete"})

    return app


async def test_graceful_runs_a_coordinator_for_the_lifespan() -> None:
    log: list[str] = []
    app = graceful(lifespan_app(log), hooks=recording_hooks(log), signals=())
    assert isinstance(app, GracefulApp)
    assert graceful(ok_app).coordinator is None  # until the lifespan starts
    async with serving(app) as lifespan:
        assert await lifespan.ask("lifespan.startup") == {"type": "lifespan.startup.complete"}
        coord = app.coordinator
        assert coord is not None
        assert lifespan.state["gracestop"] is coord
        assert coord.state is State.RUNNING
        assert coord.open_holds == ("server drain",)
        assert (await call_http(app, http_scope("/readyz"))).status == 200
        assert (await call_http(app, http_scope("/x"))).body == b"app"
        assert log == ["app startup"]
        assert await lifespan.ask("lifespan.shutdown") == {"type": "lifespan.shutdown.complete"}
    assert log == ["app startup", "app shutdown", "wrap-up hook", "shutdown hook"]
    assert coord.report is not None
    assert coord.report.trigger.kind == "exit"
    assert (await call_http(app, http_scope("/livez"))).status == 503


async def test_graceful_app_without_lifespan() -> None:
    async def http_only(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http", "this app has no lifespan"
        await ok_app(scope, receive, send)  # pragma: no cover

    log: list[str] = []
    app = graceful(http_only, hooks=recording_hooks(log), signals=())
    async with serving(app) as lifespan:
        assert await lifespan.ask("lifespan.startup") == {"type": "lifespan.startup.complete"}
        assert await lifespan.ask("lifespan.shutdown") == {"type": "lifespan.shutdown.complete"}
    assert log == ["wrap-up hook", "shutdown hook"]


async def test_graceful_app_answering_lifespan_wrongly_fails_the_startup() -> None:
    app = graceful(ok_app, signals=())
    async with serving(app) as lifespan:
        assert await lifespan.ask("lifespan.startup") == {
            "type": "lifespan.startup.failed",
            "message": "the app answered lifespan.startup with 'http.response.start'",
        }


async def test_graceful_startup_failure_is_reported_and_hooks_still_run() -> None:
    log: list[str] = []
    app = graceful(lifespan_app(log, fail="startup"), hooks=recording_hooks(log), signals=())
    async with serving(app) as lifespan:
        assert await lifespan.ask("lifespan.startup") == {
            "type": "lifespan.startup.failed",
            "message": "no database",
        }
    assert log == ["app startup", "wrap-up hook", "shutdown hook"]


async def test_graceful_shutdown_failure_is_reported() -> None:
    log: list[str] = []
    app = graceful(lifespan_app(log, fail="shutdown"), hooks=recording_hooks(log), signals=())
    async with serving(app) as lifespan:
        assert (await lifespan.ask("lifespan.startup"))["type"] == "lifespan.startup.complete"
        assert await lifespan.ask("lifespan.shutdown") == {
            "type": "lifespan.shutdown.failed",
            "message": "flush failed",
        }
    assert log == ["app startup", "app shutdown", "wrap-up hook", "shutdown hook"]


async def test_graceful_coordinator_stopping_first_still_answers_the_shutdown() -> None:
    log: list[str] = []
    app = graceful(
        lifespan_app(log), hooks=recording_hooks(log), signals=(), wrap_up_time=0.1, wait_time=5
    )
    async with serving(app) as lifespan:
        assert (await lifespan.ask("lifespan.startup"))["type"] == "lifespan.startup.complete"
        coord = app.coordinator
        assert coord is not None
        coord.shutdown("from a handler")
        report = await coord.finished()
        assert log == ["app startup", "wrap-up hook", "shutdown hook"]
        assert report.open_holds == ("server drain",)
        assert await lifespan.ask("lifespan.shutdown") == {"type": "lifespan.shutdown.complete"}
    assert log[-1] == "app shutdown"


async def test_graceful_refuses_a_lifespan_that_does_not_start_with_startup() -> None:
    app = graceful(ok_app, signals=())
    lifespan = Lifespan(app)
    try:
        await lifespan._to_app.send({"type": "lifespan.shutdown"})
        with pytest.raises(ShutdownError, match=r"lifespan\.startup"):
            await lifespan.run()
    finally:
        lifespan.close()


# ---------------------------------------------------------------------- graceful(): signals


@pytest.fixture
def server_handler() -> Any:
    """A Python-level SIGUSR1 handler standing for the server's (uvicorn's handle_exit)."""
    received: list[int] = []
    received_at: list[float] = []

    def handle_exit(signum: int, frame: object) -> None:
        received.append(signum)
        received_at.append(time.monotonic())

    previous = signal.signal(signal.SIGUSR1, handle_exit)
    try:
        yield handle_exit, received, received_at
    finally:
        signal.signal(signal.SIGUSR1, previous)


async def test_graceful_takes_over_the_server_handler(server_handler: Any) -> None:
    handle_exit, received, received_at = server_handler
    log: list[str] = []
    app = graceful(
        lifespan_app(log),
        hooks=recording_hooks(log),
        signals=["SIGUSR1"],
        drain_delay=0.3,
        wait_time=10,
    )
    async with serving(app) as lifespan:
        assert (await lifespan.ask("lifespan.startup"))["type"] == "lifespan.startup.complete"
        coord = app.coordinator
        assert coord is not None
        assert signal.getsignal(signal.SIGUSR1) != handle_exit
        sent_at = time.monotonic()
        os.kill(os.getpid(), signal.SIGUSR1)
        with anyio.fail_after(TIMEOUT):
            trigger = await coord.triggered()
        assert trigger.kind == "signal"
        assert trigger.signal == signal.SIGUSR1
        # Readiness is off at once; the server hears of it only after the drain delay.
        assert (await call_http(app, http_scope("/readyz"))).status == 503
        assert received == []
        await wait_for(lambda: received == [signal.SIGUSR1])
        assert received_at[0] - sent_at >= 0.3 - 0.02
        # The wrap-up phase runs while the server drains its connections.
        await wait_for(lambda: "wrap-up hook" in log)
        assert await lifespan.ask("lifespan.shutdown") == {"type": "lifespan.shutdown.complete"}
    assert signal.getsignal(signal.SIGUSR1) == handle_exit
    assert log == ["app startup", "wrap-up hook", "app shutdown", "shutdown hook"]
    assert coord.report is not None and coord.report.ok


async def test_graceful_second_signal_reaches_the_server_at_once(server_handler: Any) -> None:
    handle_exit, received, _received_at = server_handler
    log: list[str] = []
    app = graceful(
        lifespan_app(log),
        hooks=recording_hooks(log),
        signals=["SIGUSR1"],
        drain_delay=8,
        wait_time=15,
    )
    async with serving(app) as lifespan:
        assert (await lifespan.ask("lifespan.startup"))["type"] == "lifespan.startup.complete"
        coord = app.coordinator
        assert coord is not None
        os.kill(os.getpid(), signal.SIGUSR1)
        with anyio.fail_after(TIMEOUT):
            await coord.triggered()
        assert received == []
        os.kill(os.getpid(), signal.SIGUSR1)
        await wait_for(lambda: len(received) == 2)
        with anyio.fail_after(TIMEOUT):
            report = await coord.finished()
        assert report.forced
        assert await lifespan.ask("lifespan.shutdown") == {"type": "lifespan.shutdown.complete"}
    assert signal.getsignal(signal.SIGUSR1) == handle_exit


async def test_graceful_manual_trigger_tells_the_server(server_handler: Any) -> None:
    handle_exit, received, _received_at = server_handler
    app = graceful(lifespan_app([]), signals=["SIGUSR1"], drain_delay=0.1)
    async with serving(app) as lifespan:
        assert (await lifespan.ask("lifespan.startup"))["type"] == "lifespan.startup.complete"
        assert app.coordinator is not None
        app.coordinator.shutdown("maintenance")
        await wait_for(lambda: received == [signal.SIGUSR1])
        assert await lifespan.ask("lifespan.shutdown") == {"type": "lifespan.shutdown.complete"}
    assert signal.getsignal(signal.SIGUSR1) == handle_exit


async def test_graceful_leaves_event_loop_handlers_alone(caplog: pytest.LogCaptureFixture) -> None:
    # A server listening through its event loop (hypercorn does) hears the signal
    # whatever Python-level handler is installed: nothing to take over.
    with anyio.open_signal_receiver(signal.SIGUSR2):
        before = signal.getsignal(signal.SIGUSR2)
        app = graceful(lifespan_app([]), signals=["SIGUSR2"])
        with caplog.at_level(logging.WARNING, logger="gracestop"):
            async with serving(app) as lifespan:
                started = await lifespan.ask("lifespan.startup")
                assert started["type"] == "lifespan.startup.complete"
                assert signal.getsignal(signal.SIGUSR2) == before
                await lifespan.ask("lifespan.shutdown")
        assert "through its event loop" in caplog.text


async def test_an_app_lifespan_that_raises_later_is_logged_and_the_shutdown_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def crashing(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("pool already gone")

    log: list[str] = []
    app = graceful(crashing, hooks=recording_hooks(log), signals=())
    with caplog.at_level(logging.ERROR, logger="gracestop"):
        async with serving(app) as lifespan:
            assert (await lifespan.ask("lifespan.startup"))["type"] == "lifespan.startup.complete"
            assert await lifespan.ask("lifespan.shutdown") == {"type": "lifespan.shutdown.complete"}
    assert log == ["wrap-up hook", "shutdown hook"]
    assert "the app's lifespan raised" in caplog.text
    assert "pool already gone" in caplog.text


def test_which_server_handlers_are_taken_over() -> None:
    from gracestop.asgi import _can_take_over

    def handle_exit(signum: int, frame: object) -> None:  # pragma: no cover - never called
        pass

    assert _can_take_over(handle_exit)
    assert _can_take_over(signal.SIG_DFL)
    assert not _can_take_over(signal.SIG_IGN)
    assert not _can_take_over(None)
    # Raises KeyboardInterrupt wherever it is called: left to the interpreter.
    assert not _can_take_over(signal.default_int_handler)


async def test_closing_a_websocket_whose_client_is_gone_raises_nothing() -> None:
    log: list[str] = []
    async with ShutdownCoordinator(signals=()) as coord:
        app = ShutdownMiddleware(echo_ws_app(log), coord)
        ws = WebSocketClient(app)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(ws.run)
                await ws.send({"type": "websocket.connect"})
                assert (await ws.next())["type"] == "websocket.accept"
                # The server can no longer send: its send raises.
                ws.from_app.close()
                with anyio.fail_after(TIMEOUT):
                    await app.close_websockets()
        finally:
            ws.close()
        assert ws.error is None
        assert log == ["handler cancelled"]
        assert coord.open_holds == ()


async def test_graceful_cuts_what_still_runs_before_the_window_ends() -> None:
    """Under a server's command line nobody else ends an endless request: the
    wrapper closes websockets (1001), then cuts the request before the wrap-up
    window ends, so the server drains, the app's lifespan shutdown runs and only
    then the shutdown hooks."""
    log: list[str] = []
    lifespan_part = lifespan_app(log)
    request_started = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan_part(scope, receive, send)
        elif scope["type"] == "websocket":
            await echo_ws_app([])(scope, receive, send)
        else:
            request_started.set()
            try:
                await anyio.sleep_forever()
            finally:
                log.append("request cut")

    app_ = graceful(app, hooks=recording_hooks(log), signals=(), wrap_up_time=2, wait_time=5)
    ws = WebSocketClient(app_)
    request_done = anyio.Event()

    async def request() -> None:
        async def receive() -> Message:
            await anyio.sleep_forever()
            raise AssertionError  # pragma: no cover

        async def send(message: Message) -> None:
            raise AssertionError(message)  # pragma: no cover

        try:
            await app_(http_scope("/endless"), receive, send)
        finally:
            request_done.set()

    try:
        async with serving(app_) as lifespan:
            assert (await lifespan.ask("lifespan.startup"))["type"] == "lifespan.startup.complete"
            coord = app_.coordinator
            assert coord is not None
            async with anyio.create_task_group() as tg:
                tg.start_soon(ws.run)
                await ws.send({"type": "websocket.connect"})
                assert (await ws.next())["type"] == "websocket.accept"
                tg.start_soon(request)
                await request_started.wait()
                coord.shutdown("test")
                with anyio.fail_after(TIMEOUT):
                    # A server sends lifespan.shutdown once its connections are done.
                    closing = await ws.next()
                    assert "request cut" not in log  # websockets first
                    await request_done.wait()
                    await ws.ended.wait()
                assert closing["code"] == GOING_AWAY
                answer = await lifespan.ask("lifespan.shutdown")
                assert answer == {"type": "lifespan.shutdown.complete"}
    finally:
        ws.close()
    assert log == ["app startup", "wrap-up hook", "request cut", "app shutdown", "shutdown hook"]
    report = coord.report
    assert report is not None and report.ok and not report.forced
    assert report.open_holds == ()
