"""Serve an ASGI app with uvicorn under a [`ShutdownCoordinator`][gracestop.ShutdownCoordinator].

uvicorn on its own closes its listener the moment SIGTERM arrives, while a load
balancer may still route traffic to the process, and waits without limit for a
streaming response or a websocket. `serve` runs ``uvicorn.Server`` with
its own signal handling off and lets the coordinator lead:

    import gracestop
    import gracestop.uvicorn

    async def main() -> None:
        async with gracestop.ShutdownCoordinator(drain_delay=5, wrap_up_time=20,
                                                 wait_time=30) as coord:
            await gracestop.uvicorn.serve(app, coord, host="0.0.0.0", port=8000)

On SIGTERM: ``/readyz`` answers 503 and responses carry ``Connection: close``
while the server goes on serving for ``drain_delay``; when the wrap-up phase
starts, the listener closes and the HTTP requests in flight finish within the
wrap-up time left; then (once no HTTP request is left, or when that time is up)
websockets are closed with code 1001, and what still runs at the end of the
window, an endless stream say, is cut; then the app's lifespan shutdown runs,
and only then the coordinator's shutdown hooks (close the database there). A second
signal cuts the requests in flight and stops the server at once.

uvicorn runs on asyncio only: on trio, `serve` raises
[`ShutdownError`][gracestop.ShutdownError]; use `hypercorn` there.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Generator
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskStatus

from ._coordinator import ShutdownCoordinator
from ._hooks import HookContext
from ._report import ShutdownError
from ._serving import (
    FORCE_GRACE,
    HOOK_ORDER,
    InFlight,
    ServerStartupError,
    bound_addresses,
    check_middleware,
    check_running,
    drain,
    run_server,
    running_on_asyncio,
    wrap_up_left,
)

__all__ = ["HOOK_ORDER", "ServerStartupError", "serve"]

logger = logging.getLogger("gracestop")

# Settings serve() owns: the drain needs them under its control.
_OWNED = frozenset({"app", "timeout_graceful_shutdown"})


class _Server(uvicorn.Server):
    """``uvicorn.Server`` that leaves the signals to the coordinator and tells
    when it listens."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start, then report the bound addresses."""
        await super().startup(sockets)
        if self.started:
            self._on_started()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install nothing: the coordinator owns SIGTERM and SIGINT."""
        yield


class _ErrorLog(logging.Handler):
    """Collects uvicorn's error lines while it starts, for the startup error."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def serve(
    app: Any,
    coord: ShutdownCoordinator,
    *,
    task_status: TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
    **uvicorn_config: Any,
) -> None:
    """Serve ``app`` with uvicorn until ``coord`` shuts down; return when drained.

    Call it inside ``async with coord:``. ``app`` is wrapped in
    `ShutdownMiddleware` (readiness, liveness, holds for
    requests in flight) unless it already is one (bound to ``coord`` or
    to none: a middleware bound to another coordinator is a ``ValueError``).
    ``uvicorn_config`` goes to ``uvicorn.Config`` (``host``, ``port``, ``log_level``, ...), except
    ``timeout_graceful_shutdown``, which `serve` sets at the shutdown from
    the wrap-up time left. Cancelling `serve` (a forced quit does) cuts the
    requests in flight and stops the server without draining.

    With ``port=0``, learn the port through ``task_status``:

        async with anyio.create_task_group() as tg:
            (host, port), *_ = await tg.start(
                functools.partial(gracestop.uvicorn.serve, app, coord, port=0)
            )

    Raises:
        ShutdownError: on trio (uvicorn runs on asyncio only), or when ``coord``
            has not been entered.
        ServerStartupError: the server could not start (the message says why,
            e.g. the address is in use).
        ValueError: ``app`` is a middleware bound to another coordinator.
        TypeError: ``coord`` is not a coordinator, or an option ``serve`` owns
            (``timeout_graceful_shutdown``, ``app``) is given.
    """
    owned = sorted(_OWNED & uvicorn_config.keys())
    if owned:
        raise TypeError(
            f"serve() sets {', '.join(owned)} itself; got {owned[0]}={uvicorn_config[owned[0]]!r}"
        )
    coord = check_running(coord)
    middleware = check_middleware(app, coord)
    if not running_on_asyncio():
        raise ShutdownError(
            "gracestop.uvicorn.serve() needs the asyncio backend (uvicorn runs on asyncio "
            "only); on trio use gracestop.hypercorn.serve()"
        )
    in_flight = InFlight(middleware)
    config = uvicorn.Config(in_flight, **uvicorn_config)
    errors = _ErrorLog()
    uvicorn_logger = logging.getLogger("uvicorn.error")
    listening = anyio.Event()
    server = _Server(config, listening.set)
    done = anyio.Event()

    async def stop_uvicorn(ctx: HookContext) -> None:
        started = anyio.current_time()
        if done.is_set():
            return
        left = round(wrap_up_left(coord, ctx, started), 3)
        # uvicorn's own limit is only a backstop: at ``left`` the requests still
        # running are cut here, which ends them without a cancelled-task traceback.
        # Typed int by uvicorn, used as a float (asyncio.wait_for's timeout).
        config.timeout_graceful_shutdown = left + FORCE_GRACE  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
        logger.info("uvicorn: no longer accepting; draining for at most %.3gs", left)
        # Stop accepting now; uvicorn's own stop comes once the websockets are
        # closed with 1001, since it would close them with 1012 at once.
        for listener in server.servers:
            listener.close()
        await drain(middleware, in_flight, done, left, stop)

    def stop() -> None:
        server.should_exit = True

    async def run() -> None:
        uvicorn_logger.addHandler(errors)
        try:
            await server.serve()
        except SystemExit as exc:
            why = "; ".join(errors.messages) or "see the uvicorn.error log"
            raise ServerStartupError(
                f"uvicorn could not start on {config.host}:{config.port} ({why})"
            ) from exc
        finally:
            uvicorn_logger.removeHandler(errors)

    def force_stop() -> None:
        # Requests are cut already; no drain, but the app's lifespan still ends.
        config.timeout_graceful_shutdown = 0
        server.should_exit = True

    def on_listening() -> None:
        uvicorn_logger.removeHandler(errors)
        task_status.started(bound_addresses([s for srv in server.servers for s in srv.sockets]))

    coord.add_wrap_up_listener(stop_uvicorn, name="uvicorn", order=HOOK_ORDER)
    await run_server(
        run, force_stop, in_flight, done, listening=listening, on_listening=on_listening
    )
