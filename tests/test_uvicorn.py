"""``gracestop.uvicorn.serve`` in process: a real uvicorn server and a real httpx
client on loopback. uvicorn runs on asyncio only; on trio ``serve`` refuses.

The drain it shares with the other ASGI server is in ``test_asgi_servers.py``; the
rollout under load with real signals is in ``tests/process/test_uvicorn_process.py``.
"""

from __future__ import annotations

import functools

import anyio
import httpx
import pytest

from _asgi_app import App
from gracestop import Hooks, ShutdownCoordinator, ShutdownError, State
from gracestop.asgi import ShutdownMiddleware
from gracestop.uvicorn import serve

pytestmark = pytest.mark.anyio

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])
# log_config=None: leave the test run's logging alone.
OPTIONS = {"host": "127.0.0.1", "port": 0, "log_config": None, "log_level": "warning"}


def coordinator(**overrides: object) -> ShutdownCoordinator:
    return ShutdownCoordinator(hooks=Hooks(), signals=(), **overrides)  # type: ignore[arg-type]


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
