"""gracestop.aiohttp in process: a real server on port 0, real httpx and websocket clients.

aiohttp runs only on asyncio, so these tests run on asyncio; the refusal on trio
is tested too.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
import websockets.asyncio.client
from aiohttp import WSMsgType, web
from websockets.exceptions import ConnectionClosed

import gracestop
import gracestop.aiohttp
from gracestop import Hooks, HookStatus, ShutdownCoordinator, ShutdownError, State
from gracestop.aiohttp import ServerStartupError

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0  # bound on every wait; generous for a shared machine


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def coordinator(**overrides: object) -> ShutdownCoordinator:
    return ShutdownCoordinator(hooks=Hooks(), signals=(), **overrides)  # type: ignore[arg-type]


class App:
    """A small application recording what happened, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.slow_started = anyio.Event()
        self.release = anyio.Event()
        self.stream_started = anyio.Event()
        self.ws_open = anyio.Event()
        self.stream_cancelled = False
        self.app = web.Application()
        self.app.router.add_get("/", self.hello)
        self.app.router.add_get("/slow", self.slow)
        self.app.router.add_get("/stream", self.stream)
        self.app.router.add_get("/ws", self.ws)
        self.app.router.add_get("/push", self.push)
        self.app.on_shutdown.append(self.on_shutdown)
        self.app.on_cleanup.append(self.on_cleanup)

    async def hello(self, request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def slow(self, request: web.Request) -> web.Response:
        self.slow_started.set()
        with anyio.fail_after(TIMEOUT):
            await self.release.wait()
        self.events.append("slow done")
        return web.Response(text="slow")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b"data: tick\n\n")
                self.stream_started.set()
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            self.stream_cancelled = True
            raise

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws_open.set()
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
        self.events.append("ws handler done")
        return ws

    async def push(self, request: web.Request) -> web.WebSocketResponse:
        """A websocket the server only writes to: no task is receiving on it."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws_open.set()
        while not ws.closed:
            await ws.send_str("tick")
            await asyncio.sleep(0.05)
        self.events.append("push handler done")
        return ws

    async def on_shutdown(self, app: web.Application) -> None:
        self.events.append("app on_shutdown")

    async def on_cleanup(self, app: web.Application) -> None:
        self.events.append("app on_cleanup")


def add_close_db(coord: ShutdownCoordinator, events: list[str]) -> None:
    @coord.on_shutdown(name="close-db")
    async def close_db() -> None:
        events.append("db closed")


async def start(
    tg: anyio.abc.TaskGroup, app: web.Application, coord: ShutdownCoordinator, **options: object
) -> str:
    addresses = await tg.start(lambda task_status: _serve(app, coord, task_status, options))
    assert len(addresses) == 1 and addresses[0][0] == "127.0.0.1", addresses
    return f"http://127.0.0.1:{addresses[0][1]}"


async def _serve(
    app: web.Application,
    coord: ShutdownCoordinator,
    task_status: anyio.abc.TaskStatus[list[tuple[str, int]]],
    options: dict[str, object],
) -> None:
    await gracestop.aiohttp.serve(
        app,
        coord,
        port=0,
        task_status=task_status,
        **options,  # type: ignore[arg-type]
    )


async def refused_soon(url: str) -> bool:
    """Whether new connections to ``url`` are refused within TIMEOUT."""
    with anyio.move_on_after(TIMEOUT):
        async with httpx.AsyncClient() as fresh:
            while True:
                try:
                    await fresh.get(url + "/readyz")
                except httpx.ConnectError:
                    return True
                await anyio.sleep(0.01)
    return False


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as c:
        yield c


# ----------------------------------------------------------------- probes and headers


async def test_probes_flip_at_the_trigger_and_connection_close_follows(
    client: httpx.AsyncClient,
) -> None:
    app = App()
    async with coordinator(drain_delay=0.5, wrap_up_time=1, wait_time=5) as coord:
        async with anyio.create_task_group() as tg:
            url = await start(tg, app.app, coord)
            ready = await client.get(url + "/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ready", "state": "running"}
            assert ready.headers["content-type"].startswith("application/json")
            assert ready.headers["cache-control"] == "no-store"
            live = await client.get(url + "/livez")
            assert (live.status_code, live.json()) == (200, {"status": "alive", "state": "running"})
            hello = await client.get(url + "/")
            assert hello.text == "hello"
            assert hello.headers.get("connection", "keep-alive").lower() != "close"

            coord.shutdown("test")
            # During drain_delay: still served, but not ready and closing connections.
            ready = await client.get(url + "/readyz")
            assert ready.status_code == 503
            assert ready.json() == {"status": "not ready", "state": "draining"}
            live = await client.get(url + "/livez")
            assert (live.status_code, live.json()) == (
                200,
                {"status": "alive", "state": "draining"},
            )
            hello = await client.get(url + "/")
            assert hello.status_code == 200
            assert hello.headers["connection"].lower() == "close"
            assert coord.accepting
    assert coord.report is not None and coord.report.ok, coord.report


async def test_probe_paths_are_configurable_or_off(client: httpx.AsyncClient) -> None:
    app = web.Application()

    async def catch_all(request: web.Request) -> web.Response:
        return web.Response(text=f"app {request.path}")

    app.router.add_get("/{tail:.*}", catch_all)
    async with coordinator() as coord:
        async with anyio.create_task_group() as tg:
            url = await start(tg, app, coord, readiness_path="/health/ready", liveness_path=None)
            ready = await client.get(url + "/health/ready")
            assert ready.json()["status"] == "ready"
            # Turned off or moved: the application answers.
            assert (await client.get(url + "/livez")).text == "app /livez"
            assert (await client.get(url + "/readyz")).text == "app /readyz"
            head = await client.head(url + "/health/ready")
            assert (head.status_code, head.content) == (200, b"")
            posted = await client.post(url + "/health/ready")
            assert posted.status_code == 405
            assert posted.json() == {"status": "method not allowed"}
            coord.shutdown("test")


# ----------------------------------------------------------------- holds and drain


async def test_a_request_in_flight_is_a_hold_and_finishes_before_the_shutdown_hooks(
    client: httpx.AsyncClient,
) -> None:
    app = App()
    async with coordinator(wrap_up_time=3, wait_time=6) as coord:
        add_close_db(coord, app.events)
        async with anyio.create_task_group() as tg:
            url = await start(tg, app.app, coord)
            responses: list[httpx.Response] = []

            async def slow() -> None:
                responses.append(await client.get(url + "/slow"))

            tg.start_soon(slow)
            with anyio.fail_after(TIMEOUT):
                await app.slow_started.wait()
            assert coord.open_holds == ("http GET /slow",)
            coord.shutdown("test")
            with anyio.fail_after(TIMEOUT):
                while coord.state is not State.WRAPPING_UP:
                    await anyio.sleep(0.01)
            # The server's hook closes the listening socket as it starts: from then
            # on no new connection gets in, while the slow request is still running.
            assert await refused_soon(url)
            assert not app.release.is_set() and coord.open_holds == ("http GET /slow",)
            app.release.set()
    assert [r.status_code for r in responses] == [200]
    assert responses[0].headers["connection"].lower() == "close"
    assert app.events == ["slow done", "app on_shutdown", "app on_cleanup", "db closed"]
    report = coord.report
    assert report is not None and report.ok, report.render()
    assert report.open_holds == ()
    names = {r.name: r.status for r in report.results}
    assert names[f"aiohttp 127.0.0.1:{url.rsplit(':', 1)[1]}"] is HookStatus.OK


async def test_an_endless_stream_is_cut_after_shutdown_timeout(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gracestop")
    app = App()
    async with coordinator(wrap_up_time=4, wait_time=8) as coord:
        add_close_db(coord, app.events)
        async with anyio.create_task_group() as tg:
            url = await start(tg, app.app, coord, shutdown_timeout="300ms")
            chunks: list[str] = []
            errors: list[Exception] = []

            async def read_stream() -> None:
                try:
                    async with client.stream("GET", url + "/stream") as response:
                        async for line in response.aiter_lines():
                            chunks.append(line)
                except httpx.RemoteProtocolError as exc:
                    errors.append(exc)

            tg.start_soon(read_stream)
            with anyio.fail_after(TIMEOUT):
                await app.stream_started.wait()
            coord.shutdown("test")
    report = coord.report
    assert report is not None and report.ok, report.render()
    assert app.stream_cancelled
    assert len(errors) == 1, "the client saw the stream cut"
    assert "data: tick" in chunks
    assert app.events == ["app on_shutdown", "app on_cleanup", "db closed"]
    # The stream did not hold the wrap-up window (4 s) open.
    assert report.duration < 3.5, report.render()
    assert "cancelling 1 request(s) still running after the drain: http GET /stream" in (
        caplog.text
    )


async def test_websockets_are_closed_with_1001_at_the_wrap_up() -> None:
    app = App()
    async with coordinator(wrap_up_time=3, wait_time=6) as coord:
        add_close_db(coord, app.events)
        async with anyio.create_task_group() as tg:
            url = await start(tg, app.app, coord)
            ws_url = url.replace("http://", "ws://") + "/ws"
            async with websockets.asyncio.client.connect(ws_url) as ws:
                await ws.send("ping")
                assert await ws.recv() == "ping"
                assert len(coord.open_holds) == 1
                coord.shutdown("test")
                with pytest.raises(ConnectionClosed) as closed:
                    with anyio.fail_after(TIMEOUT):
                        await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
            assert closed.value.rcvd.reason == "server shutting down"
    assert app.events == ["ws handler done", "app on_shutdown", "app on_cleanup", "db closed"]
    assert coord.report is not None and coord.report.ok, coord.report.render()


async def test_a_websocket_peer_that_never_answers_the_close_does_not_hold_the_drain() -> None:
    app = App()
    async with coordinator(wrap_up_time=5, wait_time=8) as coord:
        async with anyio.create_task_group() as tg:
            url = await start(tg, app.app, coord)
            port = int(url.rsplit(":", 1)[1])
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(
                    b"GET /push HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\n\r\n"
                )
                received = b""
                with anyio.fail_after(TIMEOUT):
                    while b"\r\n\r\n" not in received:
                        received += await stream.receive()
                    await app.ws_open.wait()
                assert received.startswith(b"HTTP/1.1 101")
                received = received.split(b"\r\n\r\n", 1)[1]
                coord.shutdown("test")
                # Read up to the server's close frame, never answer it, keep the
                # socket open.
                with anyio.fail_after(TIMEOUT):
                    while b"\x88" not in received:
                        received += await stream.receive()
                    await coord.finished()
    close = received[received.index(b"\x88") :]  # FIN + close opcode
    assert int.from_bytes(close[2:4], "big") == 1001, received
    report = coord.report
    assert report is not None and report.ok, report.render()
    # Well before the drain time (about 4.5 s) or aiohttp's 10 s close timeout.
    assert report.duration < 3, report.render()
    assert "push handler done" in app.events


async def test_setup_alone_refuses_websocket_upgrades_once_wrapping_up(
    client: httpx.AsyncClient,
) -> None:
    app = App()
    async with coordinator(wrap_up_time=3, wait_time=6) as coord:
        gracestop.aiohttp.setup(app.app, coord)
        gracestop.aiohttp.setup(app.app, coord)  # the same again: a no-op
        assert len(app.app.middlewares) == 1
        gate = anyio.Event()

        @coord.on_wrap_up
        async def keep_wrap_up_open() -> None:
            with anyio.fail_after(TIMEOUT):
                await gate.wait()

        runner = web.AppRunner(app.app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            headers = {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
            }
            coord.shutdown("test")
            with anyio.fail_after(TIMEOUT):
                while coord.state is not State.WRAPPING_UP:
                    await anyio.sleep(0.01)
            refused = await client.get(url + "/ws", headers=headers)
            assert refused.status_code == 503
            assert refused.json() == {"status": "shutting down", "state": "wrapping_up"}
            assert refused.headers["connection"].lower() == "close"
            # Plain requests on a connection already open are still served.
            assert (await client.get(url + "/")).text == "hello"
            gate.set()
        finally:
            await runner.cleanup()
    assert not app.ws_open.is_set()


# ----------------------------------------------------------------- startup and misuse


async def test_port_in_use_raises_at_once() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with coordinator() as coord:
            with anyio.fail_after(TIMEOUT):
                with pytest.raises(ServerStartupError, match="address already in use") as info:
                    await gracestop.aiohttp.serve(web.Application(), coord, port=port)
            assert isinstance(info.value.__cause__, OSError)
        assert coord.report is not None and coord.report.ok


async def test_serve_cancelled_from_outside_cleans_up(client: httpx.AsyncClient) -> None:
    app = App()
    async with coordinator() as coord:
        async with anyio.create_task_group() as tg:
            url = await start(tg, app.app, coord)
            assert (await client.get(url + "/")).status_code == 200
            tg.cancel_scope.cancel()
        assert app.events == ["app on_shutdown", "app on_cleanup"]
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as fresh:
                await fresh.get(url + "/")
    # The wrap-up hook found the server cleaned up already and ended at once.
    assert app.events == ["app on_shutdown", "app on_cleanup"]
    assert coord.report is not None and coord.report.ok


async def test_serve_cancelled_cuts_the_requests_in_flight_at_once(
    client: httpx.AsyncClient,
) -> None:
    app = App()
    errors: list[Exception] = []

    async def read_stream(url: str) -> None:
        try:
            async with client.stream("GET", url + "/stream") as response:
                async for _ in response.aiter_lines():
                    pass
        except httpx.RemoteProtocolError as exc:
            errors.append(exc)

    # A long wrap-up time gives aiohttp's own shutdown a long wait per request:
    # longer than serve() allows itself when cancelled.
    async with coordinator(wrap_up_time=10, wait_time=20) as coord:
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as outer:
                async with anyio.create_task_group() as tg:
                    url = await start(tg, app.app, coord)
                    outer.start_soon(read_stream, url)
                    await app.stream_started.wait()
                    tg.cancel_scope.cancel()
                assert app.stream_cancelled
                # The cleanup ran to its end: the stream did not make it wait.
                assert app.events == ["app on_shutdown", "app on_cleanup"]
    assert len(errors) == 1, "the client saw the stream cut"
    assert coord.report is not None and coord.report.ok


async def test_serve_needs_a_running_coordinator() -> None:
    coord = coordinator()
    with pytest.raises(ShutdownError, match="needs a running coordinator"):
        await gracestop.aiohttp.serve(web.Application(), coord, port=0)
    async with coordinator() as coord:
        coord.shutdown("test")
        with pytest.raises(ShutdownError, match="before the shutdown"):
            await gracestop.aiohttp.serve(web.Application(), coord, port=0)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"host": 1}, TypeError, "host must be a str; got int 1"),
        ({"host": ""}, ValueError, "host must not be empty"),
        ({"port": "80"}, TypeError, "port must be an int; got str '80'"),
        ({"port": True}, TypeError, "port must be an int; got bool True"),
        ({"port": 70000}, ValueError, "port must be between 0 and 65535; got 70000"),
        ({"port": -1}, ValueError, "port must be between 0 and 65535; got -1"),
        ({"readiness_path": "readyz"}, ValueError, "readiness_path must start with"),
        ({"liveness_path": 5}, TypeError, "liveness_path must be a str or None; got int 5"),
        (
            {"readiness_path": "/z", "liveness_path": "/z"},
            ValueError,
            "readiness_path and liveness_path must differ",
        ),
        ({"shutdown_timeout": -1}, ValueError, "shutdown_timeout must be None or a positive"),
        ({"shutdown_timeout": [1]}, TypeError, "shutdown_timeout must be a duration"),
        ({"order": 1.5}, TypeError, "order must be an int; got float 1.5"),
        ({"handle_signals": True}, TypeError, "handle_signals cannot be passed"),
    ],
)
async def test_bad_arguments_are_named(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    app = web.Application()
    async with coordinator() as coord:
        with pytest.raises(error, match=re.escape(message)):
            await gracestop.aiohttp.serve(app, coord, **options)  # type: ignore[arg-type]
    # Refused before anything was installed on the application.
    assert len(app.middlewares) == 0
    assert not app.on_response_prepare


async def test_setup_and_serve_refuse_bad_apps_and_a_second_coordinator() -> None:
    async with coordinator() as coord:
        with pytest.raises(TypeError, match=r"app must be an aiohttp\.web\.Application; got dict"):
            gracestop.aiohttp.setup({}, coord)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="coord must be a ShutdownCoordinator; got str"):
            gracestop.aiohttp.setup(web.Application(), "coord")  # type: ignore[arg-type]
        app = web.Application()
        gracestop.aiohttp.setup(app, coord)
        with pytest.raises(ShutdownError, match="set up already"):
            gracestop.aiohttp.setup(app, coordinator())
        with pytest.raises(ShutdownError, match="set up already"):
            gracestop.aiohttp.setup(app, coord, readiness_path="/ready")
        frozen = web.Application()
        frozen.freeze()
        with pytest.raises(ShutdownError, match="started already"):
            gracestop.aiohttp.setup(frozen, coord)
        with pytest.raises(ShutdownError, match="started already"):
            await gracestop.aiohttp.serve(frozen, coord, port=0)
        # Set up, then started some other way: serve() cannot run it from the start.
        app.freeze()
        with pytest.raises(ShutdownError, match="started already"):
            await gracestop.aiohttp.serve(app, coord, port=0)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_serve_refuses_trio() -> None:
    async with coordinator() as coord:
        with pytest.raises(ShutdownError, match="needs asyncio: aiohttp does not run on trio"):
            await gracestop.aiohttp.serve(web.Application(), coord, port=0)
