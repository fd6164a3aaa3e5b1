"""What the server integrations (uvicorn, hypercorn) share; imports no server."""

from __future__ import annotations

import asyncio
import socket

import anyio

from ._coordinator import ShutdownCoordinator
from ._hooks import HookContext
from ._report import ShutdownError

__all__ = [
    "HOOK_ORDER",
    "ServerStartupError",
    "bound_addresses",
    "check_running",
    "running_on_asyncio",
    "wrap_up_left",
]

#: ``order`` of the wrap-up hook ``serve()`` registers (named "uvicorn" or
#: "hypercorn"). Lower orders run first, so the server stops and drains before the
#: application's own wrap-up hooks (order 0) start: they see no request in flight
#: (flush what the requests produced). A hook with a lower order runs before the
#: server stops accepting.
HOOK_ORDER = -1000
# Part of the wrap-up window kept for the app's lifespan shutdown, at most.
_LIFESPAN_RESERVE = 0.5


class ServerStartupError(RuntimeError):
    """The server could not start (address in use, lifespan startup failed, ...)."""


def bound_addresses(sockets: list[socket.socket]) -> list[tuple[str, int]]:
    """``(host, port)`` of each TCP socket (unix sockets are left out)."""
    found = []
    for sock in sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            name = sock.getsockname()
            found.append((str(name[0]), int(name[1])))
    return found


def wrap_up_left(coord: ShutdownCoordinator, ctx: HookContext, started: float) -> float:
    """Seconds a server may spend draining, for a wrap-up hook started at ``started``
    (anyio's clock): the wrap-up window left, minus a tenth of it (at most 0.5 s)
    for the app's lifespan shutdown, so that the server is done before the
    shutdown phase closes what requests use."""
    end = min(started + coord.config.wrap_up_time, ctx.deadline)
    left = max(0.0, end - anyio.current_time())
    return max(0.0, left - min(_LIFESPAN_RESERVE, left / 10))


def running_on_asyncio() -> bool:
    """True on an asyncio event loop (anyio's asyncio backend), False on trio."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def check_running(coord: object) -> ShutdownCoordinator:
    """``coord`` if it is a coordinator that is running and not yet triggered."""
    if not isinstance(coord, ShutdownCoordinator):
        raise TypeError(
            f"coord must be a ShutdownCoordinator; got {type(coord).__name__} {coord!r}"
        )
    if coord.trigger is not None or not coord.accepting:
        raise ShutdownError(
            "serve() needs a running coordinator (call it inside `async with coord:`, "
            f"before the shutdown); it is {coord.state.value}"
        )
    return coord
