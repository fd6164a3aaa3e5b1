"""ASGI throughput: requests per second through uvicorn, with and without gracestop.

Three servers run side by side, each a fresh child process serving the same small
ASGI app (``GET /`` answers 200 with a 13-byte text body; the app handles
``lifespan``) with uvicorn on one loopback port, ``log_level="warning"``, the
loop uvicorn itself picks when uvloop is installed (uvloop) and its h11 protocol:

- ``plain``: ``uvicorn.Server(uvicorn.Config(app))``, the comparison;
- ``middleware``: the same server serving ``ShutdownMiddleware(app, coord)``
  inside ``async with ShutdownCoordinator(signals=()):`` (every request a hold,
  probe paths checked, ``Connection: close`` once shut down);
- ``serve``: ``gracestop.uvicorn.serve(app, coord)``, the whole integration
  (the middleware plus the wrapper that can cut requests at a forced quit).

One load generator, a separate process, drives them all in turn: an
``httpx.AsyncClient`` with ``CONCURRENCY`` workers (and as many keep-alive
connections) first sends warm-up requests, prints ``WARM``, waits for the parent's
``GO``, then times a fixed number of requests, every answer checked, and prints
the elapsed time. Servers take turns, rotating which goes first in each round.

Two figures per server: requests per second seen by the client (``better="higher"``),
and the server's CPU time per request, read from ``/proc/<pid>/stat`` just before
``GO`` and after the measured requests (``better="lower"``; Linux only). On a
two-core machine the httpx client costs as much CPU per request as the server,
so the requests-per-second ratio understates the server's own difference; the CPU
per request shows it. Both are ``kind="baseline"``: the same server with and
without gracestop.

    python benchmarks/asgi_rps.py [--smoke]
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import IO

sys.path.insert(0, os.path.dirname(__file__))

from _bench import Measure, Row, alternate, cli

#: Workers (and keep-alive connections) of the load generator.
CONCURRENCY = 8
#: How long any one step (a server starting, a load run) may take before the
#: benchmark gives up, with what the children printed.
STEP_TIMEOUT = 120.0

SERVER = r"""
import socket, sys
import anyio, uvicorn

BODY = b"hello, world\n"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())]

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})

OPTIONS = dict(host="127.0.0.1", port=0, log_level="warning")

class Server(uvicorn.Server):
    async def startup(self, sockets=None):
        await super().startup(sockets)
        if self.started:
            port = self.servers[0].sockets[0].getsockname()[1]
            print(f"READY {port}", flush=True)

async def plain():
    await Server(uvicorn.Config(app, **OPTIONS)).serve()

async def middleware():
    import gracestop
    from gracestop.asgi import ShutdownMiddleware

    async with gracestop.ShutdownCoordinator(hooks=gracestop.Hooks(), signals=()) as coord:
        await Server(uvicorn.Config(ShutdownMiddleware(app, coord), **OPTIONS)).serve()

async def serve():
    import gracestop
    import gracestop.uvicorn

    async with gracestop.ShutdownCoordinator(hooks=gracestop.Hooks()) as coord:
        async with anyio.create_task_group() as tg:
            (host, port), *_ = await tg.start(
                lambda task_status: gracestop.uvicorn.serve(
                    app, coord, task_status=task_status, **OPTIONS
                )
            )
            print(f"READY {port}", flush=True)

variant = {"plain": plain, "middleware": middleware, "serve": serve}[sys.argv[1]]
anyio.run(variant, backend="asyncio", backend_options={"use_uvloop": True})
"""

LOAD = r"""
import sys, time
import anyio, httpx

async def main():
    while True:
        line = await anyio.to_thread.run_sync(sys.stdin.readline)
        if not line:
            return
        url, concurrency, warm, count = line.split()
        concurrency, warm, count = int(concurrency), int(warm), int(count)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            async def batch(n):
                left = [n]

                async def worker():
                    while left[0] > 0:
                        left[0] -= 1
                        response = await client.get(url)
                        if response.status_code != 200 or response.content != b"hello, world\n":
                            raise RuntimeError(
                                f"bad answer: {response.status_code} {response.content!r}"
                            )

                async with anyio.create_task_group() as tg:
                    for _ in range(concurrency):
                        tg.start_soon(worker)

            await batch(warm)
            print("WARM", flush=True)
            if (await anyio.to_thread.run_sync(sys.stdin.readline)).strip() != "GO":
                return
            started = time.perf_counter()
            await batch(count)
            print(f"DONE {time.perf_counter() - started!r}", flush=True)

anyio.run(main)
"""


class Child:
    """A child process driven by the lines it prints; every wait bounded by ``STEP_TIMEOUT``.

    Threads read its stdout (line by line, into a queue) and its stderr (kept for
    error messages), so that neither pipe can fill up and block it.
    """

    def __init__(self, code: str, *args: str) -> None:
        self.name = " ".join(args) or "load generator"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._errors: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._errors.extend, args=(self.proc.stderr,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self._lines.put(line)
        self._lines.put(None)

    def expect(self, word: str) -> list[str]:
        """The next line, which must start with ``word``; its fields."""
        try:
            line = self._lines.get(timeout=STEP_TIMEOUT)
        except queue.Empty:
            line = f"(nothing within {STEP_TIMEOUT:g} s)"
        fields = (line or "(end of output)").split()
        if fields[0] != word:
            self.stop()
            raise RuntimeError(
                f"{self.name}: expected {word!r}, got {' '.join(fields)!r}; "
                f"stderr:\n{''.join(self._errors)}"
            )
        return fields

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        """End the child: SIGTERM, then SIGKILL if it is not gone within 10 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for reader in self._readers:
            reader.join(10)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of process ``pid``, or None without ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime 14 and stime 15 (man proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    rps: float
    cpu_per_request: float | None


def measure(load: Child, server: Child, port: int, warm: int, count: int) -> Sample:
    """One load run against one server."""
    load.send(f"http://127.0.0.1:{port}/ {CONCURRENCY} {warm} {count}")
    load.expect("WARM")
    before = cpu_seconds(server.proc.pid)
    load.send("GO")
    elapsed = float(load.expect("DONE")[1])
    after = cpu_seconds(server.proc.pid)
    cpu = None if before is None or after is None else (after - before) / count
    return Sample(count / elapsed, cpu)


VARIANTS = {
    "plain": "plain uvicorn",
    "middleware": "ShutdownMiddleware",
    "serve": "gracestop.uvicorn.serve",
}


def run(smoke: bool) -> list[Row]:
    """Per gracestop variant: requests per second and server CPU per request."""
    rounds, warm, count = (2, 200, 600) if smoke else (5, 300, 2000)
    children: list[Child] = []
    try:
        ports: dict[str, int] = {}
        servers: dict[str, Child] = {}
        for variant in VARIANTS:
            servers[variant] = child = Child(SERVER, variant)
            children.append(child)
        for variant, child in servers.items():
            ports[variant] = int(child.expect("READY")[1])
        load = Child(LOAD)
        children.append(load)
        taken: dict[str, list[Sample]] = {v: [] for v in VARIANTS}

        def one(variant: str) -> float:
            sample = measure(load, servers[variant], ports[variant], warm, count)
            taken[variant].append(sample)
            return sample.rps

        runs: dict[str, Callable[[], float]] = {v: partial(one, v) for v in VARIANTS}
        alternate(rounds, runs)
    finally:
        for child in children:
            child.stop()
    return rows_from(taken, count)


def rows_from(taken: dict[str, list[Sample]], count: int) -> list[Row]:
    plain = taken["plain"]
    rows = []
    for variant in ("middleware", "serve"):
        mine = taken[variant]
        rows.append(
            Row(
                group="ASGI throughput (uvicorn, httpx load)",
                case=f"{VARIANTS[variant]}, requests/s",
                a=Measure("gracestop", "req/s", [s.rps for s in mine]),
                b=Measure(VARIANTS["plain"], "req/s", [s.rps for s in plain]),
                better="higher",
                kind="baseline",
                note=(
                    f"the cost of gracestop per request: the same server and app with and"
                    f" without it; {CONCURRENCY} keep-alive connections, {count:,} requests"
                    " a sample"
                ),
            )
        )
        mine_cpu = [s.cpu_per_request for s in mine]
        plain_cpu = [s.cpu_per_request for s in plain]
        if all(c is not None for c in mine_cpu + plain_cpu):
            rows.append(
                Row(
                    group="ASGI throughput (uvicorn, httpx load)",
                    case=f"{VARIANTS[variant]}, server CPU/request",
                    a=Measure("gracestop", "s", [c for c in mine_cpu if c is not None]),
                    b=Measure(VARIANTS["plain"], "s", [c for c in plain_cpu if c is not None]),
                    better="lower",
                    kind="baseline",
                    note="user+system time of the server process over the measured requests",
                )
            )
    return rows


if __name__ == "__main__":
    cli(run, __doc__)
