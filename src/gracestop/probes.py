"""A tiny HTTP/1.1 server for the readiness and liveness probes of a service with no
HTTP app of its own (a queue worker, a scheduler).

Needs the ``probes`` extra (``pip install gracestop[probes]``), which brings ``h11``
for the HTTP parsing:

    async with gracestop.ShutdownCoordinator(drain_delay=5) as coord:
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve_probes, coord)
            await run_worker(coord)

The answers are those of `gracestop.asgi.ShutdownMiddleware`: readiness 200
while the coordinator is running and 503 from the trigger on, liveness 200 until the
coordinator has stopped and 503 after, each with a short JSON body.
"""

from __future__ import annotations

import http
import json
import logging
import math
import os
from collections.abc import Callable

import anyio
import h11
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

from ._config import _describe
from ._coordinator import ShutdownCoordinator
from ._health import ProbeAnswer, check_path, liveness, method_not_allowed, not_found, readiness

__all__ = ["DEFAULT_PORT", "default_host", "serve_probes"]

logger = logging.getLogger("gracestop")

DEFAULT_PORT = 8081
"""The port `serve_probes` listens on unless told otherwise."""
# A probe request is a few hundred bytes; anything much larger is not a probe.
_MAX_HEADER_BYTES = 8 * 1024
_MAX_BODY_BYTES = 64 * 1024
_READ_SIZE = 16 * 1024


def default_host() -> str:
    """``""`` (every interface, IPv4 and IPv6) inside Kubernetes
    (``KUBERNETES_SERVICE_HOST`` is set), where the kubelet probes the pod's IP,
    whichever family it has; ``127.0.0.1`` elsewhere, so nothing is exposed by
    accident."""
    return "" if os.environ.get("KUBERNETES_SERVICE_HOST") else "127.0.0.1"


async def serve_probes(
    coord: ShutdownCoordinator,
    host: str | None = None,
    port: int = DEFAULT_PORT,
    *,
    readiness_path: str | None = "/readyz",
    liveness_path: str | None = "/livez",
    idle_timeout: float = 5.0,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the readiness and liveness probes of ``coord`` over HTTP/1.1 until cancelled.

    Start it in a task group inside the coordinator's block; it stops when the
    block's body is cancelled at the end of the shutdown. With
    ``await tg.start(functools.partial(serve_probes, coord, port=0))`` the port
    actually bound is returned (``port=0`` picks a free one).

    - ``GET``/``HEAD`` on ``readiness_path``: 200 while ``coord.ready``, else 503.
    - ``GET``/``HEAD`` on ``liveness_path``: 200 until the coordinator has stopped.
    - Other paths: 404; other methods: 405; malformed or oversized requests: the
      4xx status h11 names (400; 431 for headers over 8 KiB; 413 for a body
      over 64 KiB), then the
      connection is closed. Nothing a client sends stops the server.
    - Keep-alive is supported; a connection that sends nothing for
      ``idle_timeout`` seconds, or a client that takes longer than that to send a
      request or to read an answer, is disconnected.

    Args:
        coord: the coordinator whose state the probes report.
        host: the address to bind; ``""`` for every interface of both families
            (IPv4 and IPv6); ``None`` for `default_host`.
        port: the TCP port; ``0`` for a free one.
        readiness_path: the readiness probe's path, or ``None`` for none.
        liveness_path: the liveness probe's path, or ``None`` for none.
        idle_timeout: seconds a connection may stay silent or slow.
        task_status: set by ``TaskGroup.start``; receives the bound port.
    """
    if not isinstance(coord, ShutdownCoordinator):
        raise TypeError(f"coord must be a ShutdownCoordinator; got {_describe(coord)}")
    if host is not None and not isinstance(host, str):
        raise TypeError(f"host must be a str or None; got {_describe(host)}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int; got {_describe(port)}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535; got {port!r}")
    if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)):
        raise TypeError(
            f"idle_timeout must be a number of seconds; got {type(idle_timeout).__name__} "
            f"{idle_timeout!r}"
        )
    if not (idle_timeout > 0 and math.isfinite(idle_timeout)):
        raise ValueError(f"idle_timeout must be positive and finite; got {idle_timeout!r}")
    routes: dict[str, Callable[[ShutdownCoordinator], ProbeAnswer]] = {}
    ready_path = check_path("readiness_path", readiness_path)
    live_path = check_path("liveness_path", liveness_path)
    if ready_path is not None and ready_path == live_path:
        raise ValueError(f"readiness_path and liveness_path must differ; both are {ready_path!r}")
    if ready_path is not None:
        routes[ready_path] = readiness
    if live_path is not None:
        routes[live_path] = liveness

    server = _ProbeServer(coord, routes, float(idle_timeout))
    host = host if host is not None else default_host()
    # No host: anyio binds every interface, one socket per address family.
    listener = await anyio.create_tcp_listener(local_host=host or None, local_port=port)
    async with listener:
        bound = int(listener.extra(SocketAttribute.local_port))
        logger.info("serving probes on %s port %d", host or "all interfaces", bound)
        task_status.started(bound)
        await listener.serve(server.handle)


class _ProbeServer:
    """Answers probe requests on one connection after another."""

    def __init__(
        self,
        coord: ShutdownCoordinator,
        routes: dict[str, Callable[[ShutdownCoordinator], ProbeAnswer]],
        idle_timeout: float,
    ) -> None:
        self._coord = coord
        self._routes = routes
        self._timeout = idle_timeout

    async def handle(self, stream: SocketStream) -> None:
        """Serve one connection; never raises, so one client cannot stop the server."""
        async with stream:
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)
            try:
                await self._serve(conn, stream)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, TimeoutError):
                pass  # the client went away or was too slow: nothing to answer
            except Exception:  # pragma: no cover - a bug must not stop the probes
                logger.exception("probe server: error on a connection")

    async def _serve(self, conn: h11.Connection, stream: SocketStream) -> None:
        while True:
            request: h11.Request | None = None
            try:
                with anyio.move_on_after(self._timeout) as waiting:
                    request = await self._read_request(conn, stream)
                if waiting.cancelled_caught:
                    return
            except h11.RemoteProtocolError as exc:
                logger.debug("probe server: bad request: %s", exc)
                await self._send_error(conn, stream, exc.error_status_hint)
                return
            if request is None:
                return
            await self._respond(conn, stream, request)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _read_request(self, conn: h11.Connection, stream: SocketStream) -> h11.Request | None:
        """The next complete request (its body read and dropped), or None at the end."""
        request: h11.Request | None = None
        body = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive(_READ_SIZE)
                except anyio.EndOfStream:
                    data = b""
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += len(event.data)
                if body > _MAX_BODY_BYTES:
                    raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
            elif isinstance(event, h11.EndOfMessage):
                return request
            else:  # ConnectionClosed, or PAUSED after a client closed its side
                return None

    async def _respond(
        self, conn: h11.Connection, stream: SocketStream, request: h11.Request
    ) -> None:
        path = request.target.split(b"?", 1)[0].decode("ascii", "replace")
        method = request.method.decode("ascii", "replace")
        route = self._routes.get(path)
        headers: list[tuple[bytes, bytes]] = []
        if route is None:
            answer = not_found()
        elif method not in ("GET", "HEAD"):
            answer = method_not_allowed()
            headers.append((b"allow", b"GET, HEAD"))
        else:
            answer = route(self._coord)
        headers = answer.headers + headers
        body = b"" if method == "HEAD" else answer.body
        await self._send(
            conn,
            stream,
            h11.Response(status_code=answer.status, headers=headers, reason=_reason(answer.status)),
        )
        if body:
            await self._send(conn, stream, h11.Data(data=body))
        await self._send(conn, stream, h11.EndOfMessage())

    async def _send_error(self, conn: h11.Connection, stream: SocketStream, status: int) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = json.dumps({"status": _reason(status).decode().lower()}).encode("ascii")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
        ]
        await self._send(
            conn, stream, h11.Response(status_code=status, headers=headers, reason=_reason(status))
        )
        await self._send(conn, stream, h11.Data(data=body))
        await self._send(conn, stream, h11.EndOfMessage())

    async def _send(self, conn: h11.Connection, stream: SocketStream, event: h11.Event) -> None:
        data = conn.send(event)
        if data:
            with anyio.fail_after(self._timeout):
                await stream.send(data)


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:  # pragma: no cover - every status sent here is a known one
        return b""
