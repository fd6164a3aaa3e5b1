"""One ASGI app under plain uvicorn or under ``gracestop.uvicorn.serve``.

    python uvicorn_service.py SIDE SITUATION [SETTING...]

``SIDE`` is ``uvicorn`` (``uvicorn.run(app)`` with its defaults, or
``timeout_graceful_shutdown=SECONDS`` if given) or ``gracestop``
(``gracestop.run(main)`` serving the same app with ``gracestop.uvicorn.serve``;
gracestop's defaults, or the ``field=value`` settings given, such as
``drain_delay=5s``).
Both serve on a socket the program binds itself to a free loopback port, and print
``READY <port>``. ``SITUATION`` is what goes wrong at the shutdown:

- ``blocking``: the app's lifespan shutdown blocks the event loop (``time.sleep(60)``);
- ``stream``: nothing in the app; the parent holds ``/events``, an endless
  server-sent event stream, open and reads it;
- ``stubborn``: a background task started by the lifespan swallows its cancellation
  (the lifespan shutdown cancels it and awaits it);
- ``load``: nothing goes wrong; the parent sends requests to ``/`` throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from _peers import peer_option, say, settings, stubborn

import gracestop
import gracestop.uvicorn

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def make_app(situation: str) -> Callable[[Message, Receive, Send], Awaitable[None]]:
    tasks: list[asyncio.Task[None]] = []

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if situation == "stubborn":
                    tasks.append(asyncio.get_running_loop().create_task(stubborn()))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                say("CLEANUP start")
                if situation == "blocking":
                    time.sleep(60)  # noqa: ASYNC251 - blocking the loop is the point
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def events(send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        number = 0
        while True:
            body = f"data: {number}\n\n".encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})
            number += 1
            await asyncio.sleep(0.1)

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"] == "/events":
            await events(send)
        elif scope["type"] == "http":
            headers = [(b"content-type", b"text/plain")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"ok"})

    return app


def main(argv: list[str]) -> None:
    side, situation = argv[0], argv[1]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    app = make_app(situation)
    say(f"READY {sock.getsockname()[1]}")
    if side == "uvicorn":
        timeout = peer_option(argv[2:], "timeout_graceful_shutdown")
        # uvicorn annotates the setting as int; a float works (asyncio.wait_for).
        uvicorn.run(app, fd=sock.fileno(), timeout_graceful_shutdown=timeout)  # type: ignore[arg-type]
        say("EXITED")  # uvicorn raises SIGTERM again at the end: never printed
        return

    async def serve(coord: gracestop.ShutdownCoordinator) -> None:
        await gracestop.uvicorn.serve(app, coord, fd=sock.fileno())

    gracestop.run(serve, hooks=gracestop.Hooks(), **settings(argv[2:]))


if __name__ == "__main__":
    main(sys.argv[1:])
