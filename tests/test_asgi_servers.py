"""The drain that ``gracestop.uvicorn.serve`` and ``gracestop.hypercorn.serve`` share,
in process: a real server and a real httpx client on loopback, for each server.
uvicorn runs on asyncio only; hypercorn on asyncio and trio.

What is particular to one server is in ``test_uvicorn.py`` and ``test_hypercorn.py``;
the rollout under load with real signals is in ``tests/process/``.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

import gracestop.hypercorn
import gracestop.uvicorn
from _asgi_app import App
from gracestop import Hooks, ShutdownCoordinator
from gracestop.hypercorn import ServerStartupError

# uvicorn runs on asyncio only (its serve() refuses trio: test_uvicorn.py).
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize(
        ("server", "anyio_backend"),
        [("uvicorn", "asyncio"), ("hypercorn", "asyncio"), ("hypercorn", "trio")],
        indirect=["server"],
    ),
]


@dataclass(frozen=True)
class Server:
    """One server integration: its ``serve``, its drain hook's order, its options."""

    name: str
    serve: Callable[..., Coroutine[Any, Any, None]]
    hook_order: int

    def options(self, port: int = 0) -> dict[str, object]:
        if self.name == "uvicorn":
            # log_config=None: leave the test run's logging alone.
            return {"host": "127.0.0.1", "port": port, "log_config": None, "log_level": "warning"}
        return {"bind": f"127.0.0.1:{port}"}


SERVERS = {
    "uvicorn": Server("uvicorn", gracestop.uvicorn.serve, gracestop.uvicorn.HOOK_ORDER),
    "hypercorn": Server("hypercorn", gracestop.hypercorn.serve, gracestop.hypercorn.HOOK_ORDER),
}


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Server:
    return SERVERS[str(request.param)]


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


async def test_slow_request_finishes_before_the_shutdown_hooks(server: Server) -> None:
    app = App()
    wrap_up = anyio.Event()
    slow_done = anyio.Event()
    responses: list[httpx.Response] = []
    async with coordinator(drain_delay=0.3, wrap_up_time=5, wait_time=8) as coord:

        @coord.on_wrap_up(order=server.hook_order - 1)
        async def wrap_up_started() -> None:
            wrap_up.set()

        @coord.on_shutdown
        def close_db() -> None:
            app.events.append(f"close-db in_flight={app.in_flight}")

        async with anyio.create_task_group() as tg:
            (host, port), *_ = await tg.start(
                functools.partial(server.serve, app, coord, **server.options())
            )
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


async def test_an_endless_stream_is_cut_within_the_wrap_up_time(server: Server) -> None:
    app = App()
    chunks: list[bytes] = []
    async with coordinator(wrap_up_time=1, wait_time=5) as coord:
        async with anyio.create_task_group() as tg:
            (host, port), *_ = await tg.start(
                functools.partial(server.serve, app, coord, **server.options())
            )
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


async def test_an_address_in_use_raises_a_startup_error(server: Server) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with coordinator() as coord:
            with pytest.raises(ServerStartupError, match=f"127.0.0.1:{port}.*in use"):
                await server.serve(App(), coord, **server.options(port))
    assert coord.report is not None and coord.report.ok


async def test_cancelling_serve_cuts_the_requests_in_flight_and_ends_at_once(
    server: Server,
) -> None:
    app = App()
    outcomes: list[object] = []
    async with coordinator(wait_time=20) as coord:
        async with httpx.AsyncClient(timeout=10) as client:
            with anyio.fail_after(5):  # far below the 20 s a drain could take
                async with anyio.create_task_group() as client_tg:
                    async with anyio.create_task_group() as server_tg:
                        start = functools.partial(server.serve, app, coord, **server.options())
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


async def test_the_drain_keeps_to_the_wrap_up_window_after_earlier_wrap_up_hooks(
    server: Server,
) -> None:
    app = App()
    chunks: list[bytes] = []
    async with coordinator(wrap_up_time=5, wait_time=10) as coord:

        @coord.on_wrap_up(order=server.hook_order - 1)
        async def deregister() -> None:
            await anyio.sleep(1)  # a second of the window is gone when the server stops

        async with anyio.create_task_group() as tg:
            start = functools.partial(server.serve, app, coord, **server.options())
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
