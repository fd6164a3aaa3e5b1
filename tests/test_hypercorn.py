"""``gracestop.hypercorn.serve`` in process, on asyncio and trio: a real hypercorn
server and a real httpx client on loopback.

The rollout under load with real signals is in ``tests/process/test_hypercorn_process.py``.
"""

from __future__ import annotations

import functools
import socket

import anyio
import anyio.abc
import httpx
import pytest
from hypercorn.config import Config

import gracestop.hypercorn
from _asgi_app import App
from gracestop import Hooks, ShutdownCoordinator, ShutdownError
from gracestop.asgi import Receive, Scope, Send, ShutdownMiddleware
from gracestop.hypercorn import ServerStartupError, serve

pytestmark = pytest.mark.anyio

BIND = {"bind": "127.0.0.1:0"}


def coordinator(**overrides: object) -> ShutdownCoordinator:
    return ShutdownCoordinator(hooks=Hooks(), signals=(), **overrides)  # type: ignore[arg-type]


async def wait_for(event: anyio.Event, what: str, seconds: float = 10) -> None:
    with anyio.move_on_after(seconds):
        await event.wait()
    if not event.is_set():
        pytest.fail(f"timed out after {seconds}s waiting for {what}")


async def read_all(response: httpx.Response, chunks: list[bytes]) -> None:
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)


async def test_slow_request_finishes_before_the_shutdown_hooks() -> None:
    app = App()
    wrap_up = anyio.Event()
    slow_done = anyio.Event()
    responses: list[httpx.Response] = []
    async with coordinator(drain_delay=0.3, wrap_up_time=5, wait_time=8) as coord:

        @coord.on_wrap_up(order=gracestop.hypercorn.HOOK_ORDER - 1)
        async def wrap_up_started() -> None:
            wrap_up.set()

        @coord.on_shutdown
        def close_db() -> None:
            app.events.append(f"close-db in_flight={app.in_flight}")

        async with anyio.create_task_group() as tg:
            (host, port), *_ = await tg.start(functools.partial(serve, app, coord, **BIND))
            assert host == "127.0.0.1"
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client:

                async def fetch_slow() -> None:
                    try:
                        responses.append(await client.get("/slow"))
                    finally:
                        slow_done.set()

                assert (await client.get("/readyz")).status_code == 200
                tg.start_soon(fetch_slow)
                await wait_for(app.slow_started, "the slow request to start")
                coord.shutdown()
                ready = await client.get("/readyz")
                during = await client.get("/")
                await wait_for(wrap_up, "the wrap-up phase")
                app.release.set()
                await wait_for(slow_done, "the slow response")
    assert ready.status_code == 503
    assert during.status_code == 200
    assert during.headers["connection"] == "close"
    assert [r.status_code for r in responses] == [200]
    assert app.events == ["lifespan.startup", "lifespan.shutdown", "close-db in_flight=0"]
    assert coord.report is not None and coord.report.ok, coord.report


async def test_an_endless_stream_is_cut_within_the_wrap_up_time() -> None:
    app = App()
    chunks: list[bytes] = []
    async with coordinator(wrap_up_time=1, wait_time=5) as coord:
        async with anyio.create_task_group() as tg:
            (host, port), *_ = await tg.start(functools.partial(serve, app, coord, **BIND))
            async with (
                httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client,
                client.stream("GET", "/stream") as response,
            ):
                coord.shutdown()
                with pytest.raises(httpx.RemoteProtocolError):
                    await read_all(response, chunks)
    report = coord.report
    assert report is not None and report.ok and not report.forced, report
    assert chunks
    assert report.duration < 5


async def test_a_config_object_is_copied_and_an_already_wrapped_app_served_as_it_is() -> None:
    app = App()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.graceful_timeout = 123.0
    async with coordinator(wrap_up_time=2) as coord:
        wrapped = ShutdownMiddleware(app, coord, readiness_path="/ready")
        async with anyio.create_task_group() as tg:
            (host, port), *_ = await tg.start(functools.partial(serve, wrapped, coord, config))
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
                assert (await client.get("/ready")).status_code == 200
                assert (await client.get("/readyz")).text == "/readyz"
            coord.shutdown()
    assert coord.report is not None and coord.report.ok
    assert config.graceful_timeout == 123.0


async def test_an_address_in_use_raises_a_startup_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with coordinator() as coord:
            with pytest.raises(ServerStartupError, match=f"127.0.0.1:{port}.*in use"):
                await serve(App(), coord, bind=f"127.0.0.1:{port}")
    assert coord.report is not None and coord.report.ok


async def test_serve_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="coord must be a ShutdownCoordinator; got str 'x'"):
        await serve(App(), "x", **BIND)  # type: ignore[arg-type]
    with pytest.raises(ShutdownError, match=r"running coordinator.*idle"):
        await serve(App(), coordinator(), **BIND)
    async with coordinator() as coord:
        with pytest.raises(TypeError, match=r"config must be a hypercorn\.config\.Config"):
            await serve(App(), coord, {"bind": "x"})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="graceful_timeout=3"):
            await serve(App(), coord, graceful_timeout=3)
        with pytest.raises(TypeError, match="unknown hypercorn option no_such_option=1"):
            await serve(App(), coord, no_such_option=1)
        other = ShutdownMiddleware(App(), ShutdownCoordinator(signals=()))
        with pytest.raises(ValueError, match=r"bound to <ShutdownCoordinator #\d+ idle>, not to"):
            await serve(other, coord, **BIND)
        coord.shutdown()
        with pytest.raises(ShutdownError, match="running coordinator"):
            await serve(App(), coord, **BIND)


async def test_cancelling_serve_cuts_the_requests_in_flight_and_ends_at_once() -> None:
    app = App()
    outcomes: list[object] = []
    async with coordinator(wait_time=20) as coord:
        async with httpx.AsyncClient(timeout=10) as client:
            with anyio.fail_after(5):  # far below the 20 s a drain could take
                async with anyio.create_task_group() as client_tg:
                    async with anyio.create_task_group() as server_tg:
                        start = functools.partial(serve, app, coord, **BIND)
                        (host, port), *_ = await server_tg.start(start)

                        async def fetch_slow() -> None:
                            try:
                                response = await client.get(f"http://{host}:{port}/slow")
                            except httpx.HTTPError as exc:
                                outcomes.append(type(exc))
                            else:
                                outcomes.append(response.status_code)

                        client_tg.start_soon(fetch_slow)
                        await wait_for(app.slow_started, "the slow request to start")
                        server_tg.cancel_scope.cancel()
                    assert app.in_flight == 0
    # Cut before its response began: the server answers 500 and closes.
    assert outcomes == [500]
    assert coord.report is not None and coord.report.ok


async def test_the_drain_keeps_to_the_wrap_up_window_after_earlier_wrap_up_hooks() -> None:
    app = App()
    chunks: list[bytes] = []
    async with coordinator(wrap_up_time=5, wait_time=10) as coord:

        @coord.on_wrap_up(order=gracestop.hypercorn.HOOK_ORDER - 1)
        async def deregister() -> None:
            await anyio.sleep(1)  # a second of the window is gone when the server stops

        async with anyio.create_task_group() as tg:
            start = functools.partial(serve, app, coord, **BIND)
            (host, port), *_ = await tg.start(start)
            async with (
                httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client,
                client.stream("GET", "/stream") as response,
            ):
                coord.shutdown()
                with pytest.raises(httpx.RemoteProtocolError):
                    await read_all(response, chunks)
    report = coord.report
    assert report is not None and report.ok, report
    # The stream was cut before the window closed: no hold was left open for
    # the shutdown phase to start under.
    assert report.open_holds == ()


class WebSocketApp(App):
    """``App``, plus a websocket at any path that is accepted and left open."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await anyio.sleep_forever()


async def open_websocket(host: str, port: int) -> anyio.abc.SocketStream:
    """A raw websocket handshake on a real socket (the client works on both backends)."""
    stream = await anyio.connect_tcp(host, port)
    await stream.send(
        b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive()
    assert head.startswith(b"HTTP/1.1 101"), head
    assert head.endswith(b"\r\n\r\n"), head  # nothing sent after the handshake yet
    return stream


async def close_code(stream: anyio.abc.SocketStream) -> int:
    """The code of the close frame the server sends next."""
    frame = b""
    while len(frame) < 4:
        frame += await stream.receive()
    assert frame[0] == 0x88, frame  # FIN + close
    return int.from_bytes(frame[2:4], "big")


async def test_websockets_close_with_1001_at_the_end_of_the_drain() -> None:
    """Not when the drain begins: while an HTTP request is in flight the websocket
    stays open; once it has ended the websocket is closed with 1001."""
    app = WebSocketApp()
    middleware = ShutdownMiddleware(app)
    slow_done = anyio.Event()
    async with coordinator(wrap_up_time=5, wait_time=8) as coord:
        async with anyio.create_task_group() as tg:
            (host, port), *_ = await tg.start(functools.partial(serve, middleware, coord, **BIND))
            ws = await open_websocket(host, port)
            async with ws, httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:

                async def fetch_slow() -> None:
                    try:
                        assert (await client.get("/slow", timeout=10)).status_code == 200
                    finally:
                        slow_done.set()

                tg.start_soon(fetch_slow)
                await wait_for(app.slow_started, "the slow request to start")
                coord.shutdown()
                # The drain has begun once the listener is closed.
                with anyio.fail_after(10):
                    while True:
                        try:
                            probe = await anyio.connect_tcp(host, port)
                        except OSError:
                            break
                        await probe.aclose()
                        await anyio.sleep(0.02)
                assert middleware.open_websockets == 1
                app.release.set()
                await wait_for(slow_done, "the slow response")
                with anyio.fail_after(10):
                    assert await close_code(ws) == 1001
    assert coord.report is not None and coord.report.ok, coord.report
