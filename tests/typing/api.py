"""The public API as users write it, checked by mypy --strict and pyright strict.

This file is type-checked only: pytest neither collects nor imports it (its name does
not start with ``test_``; ``tests/test_typing.py`` checks), and importing it would only
fill a local ``Hooks`` registry. ``assert_type`` pins the types that users rely on.

Each line with an ignore comment is a misuse that must stay an error: both checkers
report an ignore that no longer matches an error (mypy's ``warn_unused_ignores``,
pyright's ``reportUnnecessaryTypeIgnoreComment``), so the check fails if the API
loosens. mypy reads the ``# type: ignore[code]`` comments; pyright
(``enableTypeIgnoreComments = false``) reads the ``# pyright: ignore[rule]`` ones.
"""

from __future__ import annotations

import datetime
import logging
import signal
from collections.abc import Mapping
from typing import Any, Literal, NoReturn

import anyio
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from typing_extensions import assert_type

import gracestop
import gracestop.aiohttp
import gracestop.hypercorn
import gracestop.uvicorn
from gracestop import (
    Hold,
    HookContext,
    HookResult,
    Hooks,
    HookStatus,
    Phase,
    ShutdownConfig,
    ShutdownCoordinator,
    ShutdownReport,
    State,
    Trigger,
    Waiter,
)
from gracestop.asgi import ASGIApp, GracefulApp, Receive, Scope, Send, ShutdownMiddleware, graceful
from gracestop.instrumentation import (
    Event,
    HookEnded,
    LoggingObserver,
    Observer,
    PrometheusObserver,
    StructlogObserver,
)
from gracestop.probes import default_host, serve_probes
from gracestop.testing import is_testing, open_coordinator, set_testing, shut_down

# --------------------------------------------------------------------------- hooks

hooks = Hooks()


@hooks.on_wrap_up
async def deregister() -> None:
    """Bare decorator on an async function taking nothing."""


@hooks.on_shutdown(timeout=2.0, order=10, name="db")
async def close_db(ctx: HookContext) -> None:
    """Decorator with options on an async function taking the context."""
    assert_type(ctx.trigger, Trigger)
    assert_type(ctx.phase, Phase)
    assert_type(ctx.name, str)
    assert_type(ctx.deadline, float)
    assert_type(ctx.remaining(), float)
    with anyio.move_on_at(ctx.deadline):
        await anyio.sleep(1)


@hooks.on_wrap_up
def flush_count() -> int:
    """Bare decorator on a sync function: it keeps its return type."""
    return 0


@hooks.on_shutdown(timeout="1s")
def close_file(ctx: HookContext) -> str:
    """Decorator with options on a sync function taking the context."""
    return ctx.name


@hooks.on_wrap_up(timeout=datetime.timedelta(seconds=3), order=-1)
async def drain_queue(ctx: HookContext) -> bool:
    """Options accept a timedelta; the return type is kept."""
    return ctx.remaining() > 0


async def decorated_functions_keep_their_types(ctx: HookContext) -> None:
    """The decorators return the function unchanged, signature and all."""
    assert_type(await deregister(), None)
    assert_type(await close_db(ctx), None)
    assert_type(flush_count(), int)
    assert_type(close_file(ctx), str)
    assert_type(await drain_queue(ctx), bool)
    flush_count(ctx)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    close_file()  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    deregister(1)  # type: ignore[call-arg, unused-coroutine]  # pyright: ignore[reportCallIssue]


def registration_misuse() -> None:
    """A non-callable or a badly typed option is refused by the checkers."""
    hooks.on_wrap_up(42)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    hooks.on_shutdown("close_db")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    hooks.on_shutdown(timeout=[1])  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    hooks.on_wrap_up(order="first")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    hooks.add_shutdown_listener(None)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def module_level_registry() -> None:
    """``gracestop.on_wrap_up``/``on_shutdown`` fill ``gracestop.default_hooks``."""

    @gracestop.on_wrap_up
    async def stop_consumer() -> None: ...

    @gracestop.on_shutdown(name="cache")
    def close_cache() -> None: ...

    assert_type(gracestop.default_hooks, Hooks)
    assert_type(gracestop.default_hooks.waiter(stop_consumer), Waiter)
    assert_type(len(gracestop.default_hooks), int)
    assert_type(close_cache(), None)


# ---------------------------------------------------------------------- coordinator


async def flush_queue() -> None: ...


def close_pool(ctx: HookContext) -> None: ...


async def coordinator_block() -> None:
    """``async with ShutdownCoordinator(...) as coord`` and everything on ``coord``."""
    async with ShutdownCoordinator(hooks=hooks, wait_time=10, drain_delay="2s") as coord:
        assert_type(coord, ShutdownCoordinator)
        assert_type(coord.config, ShutdownConfig)
        assert_type(coord.state, State)
        assert_type(coord.ready, bool)
        assert_type(coord.accepting, bool)
        assert_type(coord.trigger, Trigger | None)
        assert_type(coord.report, ShutdownReport | None)
        assert_type(coord.open_holds, tuple[str, ...])
        assert_type(coord.signals, tuple[signal.Signals, ...])

        waiter = coord.add_wrap_up_listener(flush_queue)
        assert_type(waiter, Waiter)
        assert_type(coord.add_shutdown_listener(close_pool, name="pool", timeout=1), Waiter)
        assert_type(waiter.done, bool)
        assert_type(waiter.result, HookResult | None)

        @coord.on_shutdown(order=5)
        async def late_close() -> None: ...

        assert_type(coord.waiter(late_close), Waiter)
        coord.set_time_to_force_quit("30s")
        coord.set_time_to_force_quit(datetime.timedelta(seconds=30))

        async with coord.hold("request") as hold:
            assert_type(hold, Hold)
        with coord.hold("sync work") as sync_hold:
            assert_type(sync_hold, Hold)

        await coord.wait_for(State.WRAPPING_UP)
        coord.shutdown()
        coord.shutdown(reason="deploy")
        trigger = await coord.triggered()
        assert_type(trigger, Trigger)
        assert_type(trigger.kind, Literal["signal", "manual", "exit", "error", "cancelled"])
        assert_type(trigger.signal, signal.Signals | None)
        assert_type(trigger.reason, str)
        assert_type(trigger.at, datetime.datetime)

        result = await waiter()
        assert_type(result, HookResult)
        assert_type(await waiter.wait(), HookResult)
        assert_type(await waiter, HookResult)
        assert_type(result.status, HookStatus)
        assert_type(result.phase, Phase)
        assert_type(result.duration, float | None)
        assert_type(result.error, BaseException | None)

        report = await coord.finished()
        assert_type(report, ShutdownReport)
        assert_type(report.ok, bool)
        assert_type(report.forced, bool)
        assert_type(report.duration, float)
        assert_type(report.results, tuple[HookResult, ...])
        assert_type(report.open_holds, tuple[str, ...])
        assert_type(report.to_dict(), dict[str, Any])
        assert_type(report.render(), str)

        trigger.kind = "manual"  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
        coord.shutdown(reason=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        coord.hold(3)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        coord.add_wrap_up_listener("flush")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        coord.ready = False  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]

    async with gracestop.Coordinator(signals=("TERM", "INT"), hard_exit=False) as short:
        assert_type(short, ShutdownCoordinator)


def coordinator_misuse() -> None:
    """Unknown settings and settings of the wrong type are errors."""
    ShutdownCoordinator(wiat_time=10)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    ShutdownCoordinator(wait_time=[10])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ShutdownCoordinator(second_signal="kill")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ShutdownCoordinator(hooks=[flush_queue])  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]


# --------------------------------------------------------------------------- config


def config_constructors(environ: Mapping[str, str]) -> None:
    """Durations as numbers, strings or timedeltas; stored as float seconds."""
    config = ShutdownConfig(wait_time="30s", wrap_up_time=datetime.timedelta(seconds=20))
    assert_type(config.wait_time, float)
    assert_type(config.hook_timeout, float | None)
    assert_type(config.signals, tuple[signal.Signals, ...] | None)
    assert_type(config.hard_exit, bool | None)
    assert_type(config.force_exit_code, int)
    assert_type(config.replace(drain_delay=5), ShutdownConfig)
    assert_type(ShutdownConfig.from_env(), ShutdownConfig)
    assert_type(ShutdownConfig.from_env(prefix="APP_", environ=environ), ShutdownConfig)
    assert_type(ShutdownConfig.from_mapping({"WaitTime": "10s"}), ShutdownConfig)
    assert_type(ShutdownCoordinator(config, wait_time=40), ShutdownCoordinator)

    ShutdownConfig(wait_time=None)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ShutdownConfig(signal_mode="poll")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ShutdownConfig(wait_tim=1)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    config.wait_time = 1.0  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]


# ------------------------------------------------------------------------------ run


async def main(coord: ShutdownCoordinator) -> None:
    coord.add_shutdown_listener(close_pool)
    await anyio.sleep_forever()


def start() -> NoReturn:
    """``gracestop.run`` never returns: it ends the process with the exit status."""
    gracestop.run(main, backend="trio", wait_time=10, hooks=hooks)


async def no_coordinator() -> None: ...


# Each misuse of run() in a function of its own: a call that returns NoReturn ends
# the checking of the lines after it.
def start_without_coordinator() -> None:
    gracestop.run(no_coordinator)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def start_with_a_bad_setting() -> None:
    gracestop.run(main, wait_time=[1])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def exit_status(coord: ShutdownCoordinator, error: BaseException | None) -> None:
    assert_type(gracestop.exit_code(coord, error), int)


# -------------------------------------------------------------------------- testing


async def a_test() -> None:
    """The testing helpers as a user's own test suite calls them."""
    with set_testing(True, wait_time=1):
        assert_type(is_testing(), bool)
    set_testing(False)
    async with open_coordinator(hooks=hooks, wrap_up_time=0.5) as coord:
        assert_type(coord, ShutdownCoordinator)
        report = await shut_down(coord, "test over", timeout=5)
        assert_type(report, ShutdownReport)

    set_testing("yes")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await shut_down(None)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# --------------------------------------------------------------------- integrations


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    assert_type(message["type"], Any)
    await send({"type": "http.response.start", "status": 200, "headers": []})


def takes_an_asgi_app(app: ASGIApp) -> None: ...


def asgi_wrapping(coord: ShutdownCoordinator) -> None:
    """The middleware and ``graceful`` wrap any ASGI app and are ASGI apps."""
    middleware = ShutdownMiddleware(asgi_app, coord, readiness_path="/ready")
    assert_type(middleware.coordinator, ShutdownCoordinator | None)
    assert_type(middleware.open_websockets, int)
    app = graceful(asgi_app, hooks=hooks, wait_time=10, liveness_path=None)
    assert_type(app, GracefulApp)
    assert_type(app.coordinator, ShutdownCoordinator | None)
    for served in (middleware, app):
        takes_an_asgi_app(served)

    ShutdownMiddleware(42)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    graceful(asgi_app, wait_time="soon", drain_delay=[1])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def servers(coord: ShutdownCoordinator, aio_app: web.Application) -> None:
    """uvicorn, hypercorn and aiohttp served until the coordinator has drained them."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_probes, coord)
        await gracestop.uvicorn.serve(asgi_app, coord, host="127.0.0.1", port=0)
        await gracestop.hypercorn.serve(asgi_app, coord, bind=["127.0.0.1:0"])
        gracestop.aiohttp.setup(aio_app, coord, readiness_path="/ready")
        await gracestop.aiohttp.serve(aio_app, coord, port=0, shutdown_timeout="5s")
        await serve_probes(coord, port=0, readiness_path="/ready")
    assert_type(default_host(), str)

    await gracestop.uvicorn.serve(asgi_app, None)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await gracestop.aiohttp.serve(asgi_app, coord)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await serve_probes(coord, port="8080")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# ------------------------------------------------------------------ instrumentation


def on_event(event: Event) -> None:
    """A plain function is an observer."""
    if isinstance(event, HookEnded):
        assert_type(event.status, HookStatus)
        assert_type(event.phase, Phase)


def observers() -> None:
    chosen: list[Observer] = [
        on_event,
        LoggingObserver(logging.getLogger("app")),
        PrometheusObserver(registry=CollectorRegistry(), namespace="app"),
        StructlogObserver(structlog.get_logger("app")),
    ]
    assert_type(ShutdownCoordinator(observers=chosen), ShutdownCoordinator)

    def takes_an_int(count: int) -> None: ...

    ShutdownCoordinator(observers=[takes_an_int])  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]
    LoggingObserver("app")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
