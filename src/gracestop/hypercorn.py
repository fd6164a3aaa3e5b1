"""Serve an ASGI app with hypercorn under a [`ShutdownCoordinator`][gracestop.ShutdownCoordinator],
on asyncio or on trio.

`serve` follows the same sequence as `gracestop.uvicorn.serve`: on
SIGTERM ``/readyz`` answers 503 and responses carry ``Connection: close`` while
the server goes on serving for ``drain_delay``; when the wrap-up phase starts,
the listeners close and the HTTP requests in flight finish within the wrap-up
time left; then (once no HTTP request is left, or when that time is up)
websockets are closed with code 1001, and what still runs at the end of the
window, an endless stream say, is cut; then the app's lifespan shutdown runs,
and only then the shutdown hooks. A second signal cuts the requests in flight and stops the server
at once:

    import gracestop
    import gracestop.hypercorn

    async def main() -> None:
        async with gracestop.ShutdownCoordinator(drain_delay=5, wrap_up_time=20,
                                                 wait_time=30) as coord:
            await gracestop.hypercorn.serve(app, coord, bind="0.0.0.0:8000")

    anyio.run(main, backend="trio")  # or "asyncio"
"""

from __future__ import annotations

import copy
import logging
import socket
from types import TracebackType
from typing import Any, cast

import anyio
from anyio.abc import TaskStatus
from hypercorn.config import Config, Sockets

# hypercorn annotates WSGI apps with a bare dict and Callable: partly unknown to pyright.
from hypercorn.utils import wrap_app  # pyright: ignore[reportUnknownVariableType]

from ._config import _describe
from ._coordinator import ShutdownCoordinator
from ._hooks import HookContext
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

_OWNED = frozenset({"graceful_timeout"})


def _config(config: Config | None, options: dict[str, Any]) -> Config:
    if config is None:
        config = Config()
    elif not isinstance(config, Config):
        raise TypeError(
            f"config must be a hypercorn.config.Config or None; got {_describe(config)}"
        )
    else:
        # The shutdown changes graceful_timeout: leave the caller's object alone.
        config = copy.copy(config)
    for key, value in options.items():
        if key in _OWNED:
            raise TypeError(f"serve() sets {key} itself; got {key}={value!r}")
        if key.startswith("_") or not hasattr(config, key):
            raise TypeError(f"unknown hypercorn option {key}={value!r}")
        setattr(config, key, value)
    return config


def _listen(config: Config) -> Sockets:
    try:
        sockets = config.create_sockets()
    except OSError as exc:
        _close_sockets_left_in(exc.__traceback__)
        raise ServerStartupError(
            f"hypercorn could not bind {', '.join(config.bind)}: {exc}"
        ) from exc
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.listen(config.backlog)
    return sockets


def _close_sockets_left_in(tb: TracebackType | None) -> None:
    """Close the sockets hypercorn created before a bind failed: it leaves them open."""
    while tb is not None:
        for value in list(tb.tb_frame.f_locals.values()):
            # A frame's locals are of any type; a list is searched one level deep.
            found = cast("list[object]", value) if isinstance(value, list) else [value]
            for item in found:
                if isinstance(item, socket.socket):
                    item.close()
        tb = tb.tb_next


def _close(sockets: Sockets) -> None:
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets):
        sock.close()


async def serve(
    app: Any,
    coord: ShutdownCoordinator,
    config: Config | None = None,
    *,
    task_status: TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
    **hypercorn_options: Any,
) -> None:
    """Serve ``app`` with hypercorn until ``coord`` shuts down; return when drained.

    Call it inside ``async with coord:``, on asyncio or trio (the running backend
    picks ``hypercorn.asyncio`` or ``hypercorn.trio``). ``app`` is wrapped in
    `ShutdownMiddleware` unless it already is one (bound to ``coord`` or
    to none: a middleware bound to another coordinator is a ``ValueError``).
    ``config`` is a ``hypercorn.config.Config`` (copied, not changed);
    ``hypercorn_options`` set its attributes (``bind="0.0.0.0:8000"``,
    ``keep_alive_timeout=5``, ...), except ``graceful_timeout``, which
    `serve` sets at the shutdown from the wrap-up time left. Cancelling
    `serve` (a forced quit does) cuts the requests in flight and stops the
    server without draining.

    The listening sockets are bound before `serve` hands over to hypercorn,
    so a bind failure raises at once, and ``task_status`` receives the bound
    ``(host, port)`` pairs (with ``bind="127.0.0.1:0"``, the port chosen):

        (host, port), *_ = await tg.start(
            functools.partial(gracestop.hypercorn.serve, app, coord, bind="127.0.0.1:0")
        )

    Raises:
        ServerStartupError: an address could not be bound.
        ShutdownError: ``coord`` is not running (enter it first).
        ValueError: ``app`` is a middleware bound to another coordinator.
        TypeError: bad ``coord`` or ``config``, an unknown option, or an option
            `serve` owns.
    """
    config = _config(config, hypercorn_options)
    coord = check_running(coord)
    middleware = check_middleware(app, coord)
    # hypercorn annotates shutdown_trigger with a bare Awaitable: partly unknown to pyright.
    if running_on_asyncio():
        from hypercorn.asyncio.run import (
            worker_serve,  # pyright: ignore[reportUnknownVariableType]
        )
    else:
        from hypercorn.trio.run import (
            worker_serve,  # pyright: ignore[reportUnknownVariableType]
        )
    stop = anyio.Event()
    done = anyio.Event()

    async def stop_hypercorn(ctx: HookContext) -> None:
        started = anyio.current_time()
        if done.is_set():
            return
        left = round(wrap_up_left(coord, ctx, started), 3)
        # hypercorn's own limit is only a backstop: at ``left`` the requests still
        # running are cut here, which ends them without a cancelled-task traceback.
        config.graceful_timeout = left + FORCE_GRACE
        logger.info("hypercorn: no longer accepting; draining for at most %.3gs", left)
        stop.set()
        await drain(middleware, in_flight, done, left)

    sockets = _listen(config)
    in_flight = InFlight(middleware)

    async def run() -> None:
        await worker_serve(
            wrap_app(cast(Any, in_flight), config.wsgi_max_body_size, "asgi"),
            config,
            sockets=sockets,
            shutdown_trigger=stop.wait,
        )

    def force_stop() -> None:
        config.graceful_timeout = 0
        stop.set()

    try:
        coord.add_wrap_up_listener(stop_hypercorn, name="hypercorn", order=HOOK_ORDER)
        task_status.started(bound_addresses([*sockets.secure_sockets, *sockets.insecure_sockets]))
        await run_server(run, force_stop, in_flight, done)
    finally:
        done.set()
        _close(sockets)
