"""One aiohttp application under ``web.run_app`` or under ``gracestop.aiohttp.serve``.

    python aiohttp_service.py SIDE SITUATION [SETTING...]

``SIDE`` is ``aiohttp`` (``web.run_app(app)`` with its defaults, or
``shutdown_timeout=SECONDS`` if given, on a socket the program binds to a free
loopback port) or ``gracestop`` (``gracestop.run(main)``
serving the same application with ``gracestop.aiohttp.serve`` on a free port;
gracestop's defaults, or the ``field=value`` settings given, such as
``wait_time=1.5s``). Both print ``READY <port>`` once
they listen. ``SITUATION`` is what goes wrong at the shutdown:

- ``blocking``: an ``on_cleanup`` handler blocks the event loop (``time.sleep(60)``);
- ``stream``: nothing in the app; the parent holds ``/events``, an endless
  server-sent event stream, open and reads it;
- ``stubborn``: a background task, started and stopped by a cleanup context as
  aiohttp's documentation shows, swallows its cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import sys
import time
from collections.abc import AsyncIterator

import anyio
from _peers import peer_option, say, settings, stubborn
from aiohttp import web

import gracestop
import gracestop.aiohttp


async def index(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def events(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    number = 0
    while True:
        await response.write(f"data: {number}\n\n".encode())
        number += 1
        await asyncio.sleep(0.1)


async def blocking_cleanup(app: web.Application) -> None:
    say("CLEANUP start")
    time.sleep(60)  # noqa: ASYNC251 - blocking the loop is the point


async def background(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(stubborn())
    yield
    say("CLEANUP start")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def make_app(situation: str) -> web.Application:
    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/events", events)
    if situation == "blocking":
        app.on_cleanup.append(blocking_cleanup)
    elif situation == "stubborn":
        app.cleanup_ctx.append(background)
    return app


def main(argv: list[str]) -> None:
    side, situation = argv[0], argv[1]
    app = make_app(situation)
    if side == "aiohttp":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        say(f"READY {sock.getsockname()[1]}")
        timeout = peer_option(argv[2:], "shutdown_timeout")
        if timeout is None:
            web.run_app(app, sock=sock)
        else:
            web.run_app(app, sock=sock, shutdown_timeout=timeout)
        say("EXITED")
        return

    async def serve(coord: gracestop.ShutdownCoordinator) -> None:
        async with anyio.create_task_group() as tg:
            (_, port), *_ = await tg.start(
                functools.partial(gracestop.aiohttp.serve, app, coord, port=0)
            )
            say(f"READY {port}")

    gracestop.run(serve, hooks=gracestop.Hooks(), **settings(argv[2:]))


if __name__ == "__main__":
    main(sys.argv[1:])
