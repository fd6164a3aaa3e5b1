"""The HTTP part of ``gracestop demo``: an endpoint served under the coordinator.

Kept apart from the job worker so the demo runs from the base install: the
service imports this module only when the serving extra is there. On asyncio the
endpoint is served by ``gracestop.uvicorn.serve``, on trio (where uvicorn cannot
run) by ``gracestop.hypercorn.serve``.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from ._coordinator import ShutdownCoordinator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SERVERS = {"asyncio": "uvicorn", "trio": "hypercorn"}
"""The server the demo uses on each backend."""


def http_unavailable(backend: str) -> str | None:
    """Why the HTTP part cannot run on *backend* here, or None when it can."""
    server = SERVERS[backend]
    if importlib.util.find_spec(server) is None:
        return f"{server} is not installed (pip install 'gracestop[{server}]')"
    if importlib.util.find_spec(f"gracestop.{server}") is None:  # pragma: no cover
        return f"this gracestop has no gracestop.{server} integration"
    return None


def work_app(request_time: float) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A plain ASGI app: every request works for *request_time* seconds, then answers 200."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":  # pragma: no cover - the demo client speaks HTTP only
            return
        await anyio.sleep(request_time)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"done\n"})

    return app


async def start_http(
    tg: anyio.abc.TaskGroup, coord: ShutdownCoordinator, backend: str, request_time: float
) -> int:
    """Serve `work_app` on a free loopback port in *tg*; return the port."""
    app = work_app(request_time)
    if SERVERS[backend] == "uvicorn":
        from . import uvicorn as gs_uvicorn

        serve = functools.partial(
            gs_uvicorn.serve, app, coord, host="127.0.0.1", port=0, log_level="warning"
        )
    else:
        from . import hypercorn as gs_hypercorn

        serve = functools.partial(
            gs_hypercorn.serve, app, coord, bind="127.0.0.1:0", loglevel="WARNING"
        )
    addresses: list[tuple[str, int]] = await tg.start(serve)
    return addresses[0][1]
