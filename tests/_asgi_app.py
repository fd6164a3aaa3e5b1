"""A small raw ASGI app for the in-process server tests, with hooks for the test."""

from __future__ import annotations

import anyio

from gracestop.asgi import Message, Receive, Scope, Send


class App:
    """``/`` answers at once, ``/slow`` waits for :attr:`release`, ``/stream`` never
    ends; it counts requests in flight and records its lifespan."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.slow_started = anyio.Event()
        self.in_flight = 0
        self.events: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert scope["type"] == "http"
        self.in_flight += 1
        try:
            await self._http(scope["path"], send)
        finally:
            self.in_flight -= 1

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            self.events.append(kind)
            await send({"type": f"{kind}.complete"})
            if kind == "lifespan.shutdown":
                return

    async def _http(self, path: str, send: Send) -> None:
        start: Message = {
            "type": "http.response.start",
            "status": 404 if path == "/missing" else 200,
            "headers": [(b"content-type", b"text/plain")],
        }
        if path == "/stream":
            await send(start)
            while True:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await anyio.sleep(0.05)
        if path == "/slow":
            self.slow_started.set()
            await self.release.wait()
        await send(start)
        await send({"type": "http.response.body", "body": path.encode()})
