"""serve_probes: a real HTTP/1.1 server on a real socket, asked by httpx and raw clients."""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from gracestop import ShutdownCoordinator
from gracestop.probes import DEFAULT_PORT, default_host, serve_probes

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0


@asynccontextmanager
async def probes(coord: ShutdownCoordinator, **kwargs: Any) -> AsyncIterator[int]:
    """serve_probes on a free port for the block; yields the port."""
    async with anyio.create_task_group() as tg:
        port = await tg.start(functools.partial(serve_probes, coord, "127.0.0.1", 0, **kwargs))
        yield port
        tg.cancel_scope.cancel()


@asynccontextmanager
async def client(port: int) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as c:
        yield c


async def raw(port: int, data: bytes) -> bytes:
    """Send bytes on a fresh connection; everything the server answers until it closes."""
    with anyio.fail_after(TIMEOUT):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(data)
            received = b""
            while True:
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return received


async def test_status_through_the_lifecycle() -> None:
    coord = ShutdownCoordinator(signals=(), drain_delay=0.5, wait_time=5)
    async with probes(coord) as port, client(port) as c:
        idle = await c.get("/readyz")
        assert (idle.status_code, idle.json()) == (503, {"status": "not ready", "state": "idle"})
        async with coord:
            ready = await c.get("/readyz")
            assert (ready.status_code, ready.json()) == (
                200,
                {"status": "ready", "state": "running"},
            )
            assert ready.headers["content-type"] == "application/json"
            live = await c.get("/livez")
            assert (live.status_code, live.json()) == (200, {"status": "alive", "state": "running"})
            coord.shutdown()
            draining = await c.get("/readyz")
            assert (draining.status_code, draining.json()) == (
                503,
                {"status": "not ready", "state": "draining"},
            )
            assert (await c.get("/livez")).status_code == 200
        stopped = await c.get("/livez")
        assert (stopped.status_code, stopped.json()) == (
            503,
            {"status": "stopped", "state": "stopped"},
        )


async def test_other_paths_methods_head_and_query() -> None:
    async with ShutdownCoordinator(signals=()) as coord, probes(coord) as port, client(port) as c:
        missing = await c.get("/metrics")
        assert (missing.status_code, missing.json()) == (404, {"status": "not found"})
        post = await c.post("/readyz", content=b"x")
        assert post.status_code == 405
        assert post.headers["allow"] == "GET, HEAD"
        head = await c.head("/livez")
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) > 0
        assert (await c.get("/readyz?verbose=1")).status_code == 200


async def test_custom_paths_and_a_probe_switched_off() -> None:
    async with (
        ShutdownCoordinator(signals=()) as coord,
        probes(coord, readiness_path="/ready", liveness_path=None) as port,
        client(port) as c,
    ):
        assert (await c.get("/ready")).status_code == 200
        assert (await c.get("/readyz")).status_code == 404
        assert (await c.get("/livez")).status_code == 404


async def test_malformed_requests_get_4xx_and_the_server_goes_on() -> None:
    async with ShutdownCoordinator(signals=()) as coord, probes(coord) as port:
        garbage = await raw(port, b"\x00\x16\x03\x01 garbage \xff\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        oversized = await raw(
            port, b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
        )
        assert oversized.startswith(b"HTTP/1.1 431 ")
        no_host = await raw(port, b"GET /readyz HTTP/1.1\r\n\r\n")
        assert no_host.startswith(b"HTTP/1.1 400 ")
        big_body = await raw(
            port,
            b"POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 100_000,
        )
        assert big_body.startswith(b"HTTP/1.1 413 ")
        async with client(port) as c:
            assert (await c.get("/readyz")).status_code == 200


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    request = b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
    async with ShutdownCoordinator(signals=()) as coord, probes(coord) as port:
        with anyio.fail_after(TIMEOUT):
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                for _ in range(3):
                    await stream.send(request)
                    answer = b""
                    while not answer.endswith(b"}"):
                        answer += await stream.receive()
                    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        # Pipelined requests are answered one after the other.
        closing = b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        both = await raw(port, request + closing)
        assert both.count(b"HTTP/1.1 200 OK") == 2


async def test_idle_and_slow_clients_are_disconnected() -> None:
    async with ShutdownCoordinator(signals=()) as coord, probes(coord, idle_timeout=0.3) as port:
        # Silent connection: closed without an answer.
        assert await raw(port, b"") == b""
        # A request that never ends.
        assert await raw(port, b"GET /readyz HTTP/1.1\r\nHost:") == b""
        async with client(port) as c:
            assert (await c.get("/readyz")).status_code == 200


async def test_twenty_probes_at_once() -> None:
    statuses: list[int] = []
    async with ShutdownCoordinator(signals=()) as coord, probes(coord) as port:

        async def ask(path: str) -> None:
            async with client(port) as c:
                statuses.append((await c.get(path)).status_code)

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(ask, "/readyz" if i % 2 else "/livez")
    assert statuses == [200] * 20


async def test_port_zero_reports_the_bound_port_and_cancel_stops_the_server() -> None:
    async with ShutdownCoordinator(signals=()) as coord:
        async with probes(coord) as port:
            assert port > 0
            assert port != DEFAULT_PORT
            async with client(port) as c:
                assert (await c.get("/livez")).status_code == 200
        with pytest.raises(OSError):
            await anyio.connect_tcp("127.0.0.1", port)


async def test_default_host_follows_kubernetes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert default_host() == "127.0.0.1"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert default_host() == ""
    async with ShutdownCoordinator(signals=()) as coord:
        with caplog.at_level(logging.INFO, logger="gracestop"):
            async with anyio.create_task_group() as tg:
                port = await tg.start(functools.partial(serve_probes, coord, port=0))
                async with client(port) as c:
                    assert (await c.get("/readyz")).status_code == 200
                tg.cancel_scope.cancel()
    assert f"serving probes on all interfaces port {port}" in caplog.text


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
async def test_every_interface_answers_ipv4_and_ipv6(monkeypatch: pytest.MonkeyPatch) -> None:
    """In Kubernetes the pod's IP may be IPv6 only: both families are bound."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    async with ShutdownCoordinator(signals=()) as coord:
        async with anyio.create_task_group() as tg:
            port = await tg.start(functools.partial(serve_probes, coord, port=0))
            for host in ("127.0.0.1", "[::1]"):
                async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as c:
                    answer = await c.get("/readyz")
                    assert answer.status_code == 200, host
            tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"coord": None}, TypeError, "coord must be a ShutdownCoordinator"),
        ({"host": 127001}, TypeError, "host must be a str or None"),
        ({"port": "8081"}, TypeError, "port must be an int"),
        ({"port": True}, TypeError, "port must be an int"),
        ({"port": 70000}, ValueError, "port must be between 0 and 65535"),
        ({"idle_timeout": "5"}, TypeError, "idle_timeout must be a number"),
        ({"idle_timeout": 0}, ValueError, "idle_timeout must be positive"),
        ({"idle_timeout": float("inf")}, ValueError, "idle_timeout must be positive"),
        ({"readiness_path": "readyz"}, ValueError, "readiness_path must start with"),
        ({"liveness_path": 1}, TypeError, "liveness_path must be a str or None"),
        ({"readiness_path": "/x", "liveness_path": "/x"}, ValueError, "must differ"),
    ],
)
async def test_bad_parameters(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    args: dict[str, Any] = {"coord": ShutdownCoordinator(), **kwargs}
    with pytest.raises(error, match=match):
        await serve_probes(**args)
