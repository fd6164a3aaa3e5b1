"""``gracestop.hypercorn.serve`` in process, on asyncio and trio: a real hypercorn
server and a real httpx client on loopback.

The drain it shares with the other ASGI server is in ``test_asgi_servers.py``; the
rollout under load with real signals is in ``tests/process/test_hypercorn_process.py``.
"""

from __future__ import annotations

import functools

import anyio
import anyio.abc
import httpx
import pytest
from hypercorn.config import Config

from _asgi_app import App
from gracestop import Hooks, ShutdownCoordinator, ShutdownError
from gracestop.asgi import Receive, Scope, Send, ShutdownMiddleware
from gracestop.hypercorn import serve

pytestmark = pytest.mark.anyio

BIND = {"bind": "127.0.0.1:0"}


def coordinator(**overrides: object) -> ShutdownCoordinator:
    return ShutdownCoordinator(hooks=Hooks(), signals=(), **overrides)  # type: ignore[arg-type]


async def wait_for(event: anyio.Event, what: str, seconds: float = 10) -> None:
    with anyio.move_on_after(seconds):
        await event.wait()
    if not event.is_set():
        pytest.fail(f"timed out after {seconds}s waiting for {what}")


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
