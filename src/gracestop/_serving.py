"""What the server integrations (uvicorn, hypercorn) share; imports no server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ._config import _describe
from ._coordinator import ShutdownCoordinator
from ._hooks import HookContext
from ._report import ShutdownError
from .asgi import ShutdownMiddleware

__all__ = [
    "FORCE_GRACE",
    "HOOK_ORDER",
    "InFlight",
    "ServerStartupError",
    "bound_addresses",
    "check_middleware",
    "check_running",
    "drain",
    "run_server",
    "running_on_asyncio",
    "wrap_up_left",
]

HOOK_ORDER = -1000
"""``order`` of the wrap-up hook ``serve()`` registers (named "uvicorn" or
"hypercorn"). Lower orders run first, so the server stops and drains before the
application's own wrap-up hooks (order 0) start: they see no request in flight
(flush what the requests produced). A hook with a lower order runs before the
server stops accepting."""
# Part of the wrap-up window kept for the app's lifespan shutdown, at most.
_LIFESPAN_RESERVE = 0.5


class ServerStartupError(RuntimeError):
    """The server could not start (address in use, lifespan startup failed, ...)."""


def bound_addresses(sockets: list[socket.socket]) -> list[tuple[str, int]]:
    """``(host, port)`` of each TCP socket (unix sockets are left out)."""
    found: list[tuple[str, int]] = []
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
    now = anyio.current_time()
    # The phase may have begun before this hook: wrap-up hooks with a lower
    # order ran first.
    window_end = coord.wrap_up_deadline
    if window_end is None:
        window_end = started + coord.config.wrap_up_time
    left = max(0.0, min(window_end, ctx.deadline) - now)
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
        raise TypeError(f"coord must be a ShutdownCoordinator; got {_describe(coord)}")
    if coord.trigger is not None or not coord.accepting:
        raise ShutdownError(
            "serve() needs a running coordinator (call it inside `async with coord:`, "
            f"before the shutdown); it is {coord.state.value}"
        )
    return coord


class InFlight:
    """ASGI wrapper that can cut every request in flight at once, for a forced quit.

    A cut request ends as if the app had returned: the server closes its
    connection, rather than meeting a cancelled task it reports with a traceback
    (or, in hypercorn's asyncio worker, failing on it).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._scopes: set[anyio.CancelScope] = set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Run one ASGI connection; HTTP and websocket ones can be cut."""
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with anyio.CancelScope() as cancel_scope:
            self._scopes.add(cancel_scope)
            try:
                await self.app(scope, receive, send)
            finally:
                self._scopes.discard(cancel_scope)

    def cut(self) -> None:
        """Cancel every request in flight."""
        for cancel_scope in list(self._scopes):
            cancel_scope.cancel()


async def run_server(
    run: Callable[[], Awaitable[None]],
    force_stop: Callable[[], None],
    in_flight: InFlight,
    done: anyio.Event,
    *,
    listening: anyio.Event | None = None,
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Run a server until it returns, shielded from outside cancellation.

    A server cancelled in the middle of its drain leaves tasks behind (uvicorn)
    or fails (hypercorn's asyncio worker). When this task is cancelled (a forced
    quit: the coordinator cancels its block), the requests in flight are cut and
    the server is told to stop at once (``force_stop``); only if it is not done
    within ``FORCE_GRACE`` seconds is it cancelled.

    ``on_listening`` is called in the calling task (where ``task_status`` may be
    used) once ``listening`` is set, unless the server has ended by then.
    """
    failure: list[Exception] = []
    server_scope = anyio.CancelScope(shield=True)

    async def serve() -> None:
        try:
            with server_scope:
                await run()
        except Exception as exc:  # raised again below, not as an exception group
            failure.append(exc)
        finally:
            done.set()
            if listening is not None:
                listening.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, name="gracestop server")
        try:
            if listening is not None:
                await listening.wait()
                if on_listening is not None and not done.is_set():
                    on_listening()
            await done.wait()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                in_flight.cut()
                force_stop()
                with anyio.move_on_after(FORCE_GRACE):
                    await done.wait()
                server_scope.cancel()
            raise
    if failure:
        raise failure[0]


FORCE_GRACE = 1.0
"""Seconds a forced stop waits for the server to end before cancelling it."""


async def drain(
    middleware: ShutdownMiddleware,
    in_flight: InFlight,
    done: anyio.Event,
    seconds: float,
    after_websockets: Callable[[], None] | None = None,
) -> None:
    """Wait for a stopping server to finish; cut what still runs after ``seconds``.

    The websockets are closed (1001) at the end of the drain: once no HTTP
    request is left, or just before the requests still running are cut. Then
    ``after_websockets`` is called (uvicorn is told to stop only then: its own
    stop closes websockets at once, with 1012).
    """
    with anyio.move_on_after(seconds) as window:
        await middleware._no_http_requests()
    await middleware.close_websockets()
    if after_websockets is not None:
        after_websockets()
    with anyio.move_on_at(window.deadline):
        await done.wait()
    if not done.is_set():
        in_flight.cut()
        await done.wait()


def check_middleware(app: Any, coord: ShutdownCoordinator) -> ShutdownMiddleware:
    """``app`` if it is a middleware bound to ``coord`` (or to none), else ``app``
    wrapped in one for ``coord``."""
    if not isinstance(app, ShutdownMiddleware):
        return ShutdownMiddleware(app, coord)
    if app.coordinator is not None and app.coordinator is not coord:
        raise ValueError(
            f"app is a ShutdownMiddleware bound to {app.coordinator!r}, "
            f"not to the coordinator serve() was given ({coord!r})"
        )
    return app
