"""``gracestop.uvicorn.serve`` in process: a real uvicorn server and a real httpx
client on loopback. uvicorn runs on asyncio only; on trio ``serve`` refuses.

The rollout under load with real signals is in ``tests/process/test_uvicorn_process.py``.
"""

from __future__ import annotations

import functools
import socket

import anyio
import httpx
import pytest

import gracestop.uvicorn
from _asgi_app import App
from gracestop import Hooks, ShutdownCoordinator, ShutdownError, State
from gracestop.asgi import ShutdownMiddleware
from gracestop.uvicorn import ServerStartupError, serve

pytestmark = pytest.mark.anyio

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])
# log_config=None: leave the test run's logging alone.
OPTIONS = {"host": "127.0.0.1", "port": 0, "log_config": None, "log_level": "warning"}


async def wait_for(event: anyio.Event, what: str, seconds: float = 10) -> None:
    with anyio.move_on_after(seconds):
        await event.wait()
    if not event.is_set():
        pytest.fail(f"timed out after {seconds}s waiting for {what}")


async def read_all(response: httpx.Response, chunks: list[bytes]) -> None:
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)


def coordinator(**overrides: object) -> ShutdownCoordinator:
    return ShutdownCoordinator(hooks=Hooks(), signals=(), **overrides)  # type: ignore[arg-type]


@asyncio_only
async def test_slow_request_finishes_before_the_shutdown_hooks() -> None:
    app = App()
    wrap_up = anyio.Event()
    slow_done = anyio.Event()
    responses: list[httpx.Response] = []
    async with coordinator(drain_delay=0.3, wrap_up_time=5, wait_time=8) as coord:

        @coord.on_wrap_up(order=gracestop.uvicorn.HOOK_ORDER - 1)
        async def wrap_up_started() -> None:
            wrap_up.set()

        @coord.on_shutdown
        def close_db() -> None:
            app.events.append(f"close-db in_flight={app.in_flight}")

        async with anyio.create_task_group() as tg:
            (host, port), *_ = await tg.start(functools.partial(serve, app, coord, **OPTIONS))
            assert host == "127.0.0.1"
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client:

                async def fetch_slow() -> None:
                    try:
                        responses.append(await client.get("/slow"))
                    finally:
                        slow_done.set()

                assert (await client.get("/readyz")).status_code == 200
                assert (await client.get("/")).headers.get("connection") != "close"
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


@asyncio_only
async def test_an_endless_stream_is_cut_within_the_wrap_up_time() -> None:
    app = App()
    chunks: list[bytes] = []
    async with coordinator(wrap_up_time=1, wait_time=5) as coord:
        async with anyio.create_task_group() as tg:
            (host, port), *_ = await tg.start(functools.partial(serve, app, coord, **OPTIONS))
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
    # The server finished inside the wrap-up window, so the shutdown phase came
    # after it, well before the deadline.
    assert report.duration < 5


@asyncio_only
async def test_an_already_wrapped_app_is_served_as_it_is() -> None:
    app = App()
    async with coordinator() as coord:
        wrapped = ShutdownMiddleware(app, coord, readiness_path="/ready")
        async with anyio.create_task_group() as tg:
            (host, port), *_ = await tg.start(functools.partial(serve, wrapped, coord, **OPTIONS))
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
                assert (await client.get("/ready")).status_code == 200
                assert (await client.get("/readyz")).text == "/readyz"
            coord.shutdown()
    assert coord.report is not None and coord.report.ok


@asyncio_only
async def test_an_address_in_use_raises_a_startup_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with coordinator() as coord:
            options = {**OPTIONS, "port": port}
            with pytest.raises(ServerStartupError, match=f"127.0.0.1:{port}.*in use"):
                await serve(App(), coord, **options)
    assert coord.report is not None and coord.report.ok


@asyncio_only
async def test_serve_after_the_server_stopped_by_itself_lets_the_shutdown_through() -> None:
    app = App()
    async with coordinator() as coord:
        # limit_max_requests: uvicorn ends on its own after one request.
        async with anyio.create_task_group() as tg:
            options = {**OPTIONS, "limit_max_requests": 1}
            (host, port), *_ = await tg.start(functools.partial(serve, app, coord, **options))
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
                assert (await client.get("/")).status_code == 200
        assert coord.state is State.RUNNING
    assert coord.report is not None and coord.report.ok
    assert [r.name for r in coord.report.results] == ["uvicorn"]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_serve_refuses_trio() -> None:
    async with coordinator() as coord:
        with pytest.raises(ShutdownError, match=r"asyncio.*gracestop\.hypercorn"):
            await serve(App(), coord, **OPTIONS)


async def test_serve_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="coord must be a ShutdownCoordinator; got str 'x'"):
        await serve(App(), "x", **OPTIONS)  # type: ignore[arg-type]
    with pytest.raises(ShutdownError, match=r"running coordinator.*idle"):
        await serve(App(), coordinator(), **OPTIONS)
    async with coordinator() as coord:
        with pytest.raises(TypeError, match="timeout_graceful_shutdown=3"):
            await serve(App(), coord, timeout_graceful_shutdown=3)
        other = ShutdownMiddleware(App(), ShutdownCoordinator(signals=()))
        with pytest.raises(ValueError, match=r"bound to <ShutdownCoordinator #\d+ idle>, not to"):
            await serve(other, coord, **OPTIONS)
        coord.shutdown()
        with pytest.raises(ShutdownError, match="running coordinator"):
            await serve(App(), coord, **OPTIONS)


@asyncio_only
async def test_cancelling_serve_cuts_the_requests_in_flight_and_ends_at_once() -> None:
    app = App()
    outcomes: list[object] = []
    async with coordinator(wait_time=20) as coord:
        async with httpx.AsyncClient(timeout=10) as client:
            with anyio.fail_after(5):  # far below the 20 s a drain could take
                async with anyio.create_task_group() as client_tg:
                    async with anyio.create_task_group() as server_tg:
                        start = functools.partial(serve, app, coord, **OPTIONS)
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


@asyncio_only
async def test_the_drain_keeps_to_the_wrap_up_window_after_earlier_wrap_up_hooks() -> None:
    app = App()
    chunks: list[bytes] = []
    async with coordinator(wrap_up_time=5, wait_time=10) as coord:

        @coord.on_wrap_up(order=gracestop.uvicorn.HOOK_ORDER - 1)
        async def deregister() -> None:
            await anyio.sleep(1)  # a second of the window is gone when the server stops

        async with anyio.create_task_group() as tg:
            start = functools.partial(serve, app, coord, **OPTIONS)
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
