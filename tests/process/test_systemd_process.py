"""A real child under a stand-in for systemd: real SIGTERM, real sd_notify datagrams."""

from __future__ import annotations

import signal
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _harness import BACKENDS, Child

pytestmark = pytest.mark.process

Spawn = Callable[..., Child]


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A unix datagram socket named by NOTIFY_SOCKET in the children's environment."""
    # Unix socket paths are limited to about 107 bytes: pytest's tmp_path may be longer.
    with tempfile.TemporaryDirectory(prefix="gs-", dir="/tmp") as name:
        path = str(Path(name) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
        try:
            yield sock
        finally:
            sock.close()


def receive_until(
    sock: socket.socket, child: Child, text: str, got: list[str], timeout: float = 10
) -> None:
    """Read datagrams into ``got`` until one contains ``text``; fail with the child's
    output and the datagrams so far if none does within ``timeout`` seconds."""
    sock.settimeout(timeout)
    while True:
        try:
            datagram = sock.recv(65536).decode()
        except TimeoutError:
            child._fail(f"no sd_notify datagram with {text!r} within {timeout}s; got {got}")
            raise  # pragma: no cover - _fail raised
        got.append(datagram)
        if text in datagram:
            return


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_under_systemd(spawn: Spawn, backend: str, notify_socket: socket.socket) -> None:
    datagrams: list[str] = []
    child = spawn("systemd", backend)
    child.expect(r"^READY$")
    receive_until(notify_socket, child, "READY=1", datagrams)
    child.signal(signal.SIGTERM)
    child.expect(r"^HOOK-START flush$")
    receive_until(notify_socket, child, "STATUS=waiting for wrap_up hook flush", datagrams)
    child.send_line("go")
    rc, out, err = child.wait(timeout=10)
    assert rc == 0, err
    receive_until(notify_socket, child, "STATUS=shutdown ok in", datagrams)
    lines = [line for datagram in datagrams for line in datagram.split("\n")]
    ready = lines.index("READY=1")
    stopping = lines.index("STOPPING=1")
    extend = next(i for i, line in enumerate(lines) if line.startswith("EXTEND_TIMEOUT_USEC="))
    status = lines.index("STATUS=received SIGTERM, shutting down; force quit in 10s")
    assert ready < stopping < extend < status, lines
    # wait_time 10 s + watchdog_grace 0.5 s + one second to exit.
    assert lines[extend] == "EXTEND_TIMEOUT_USEC=11500000"
    progress = next(line for line in lines if line.startswith("STATUS=waiting for"))
    assert "wrap_up hook flush (running" in progress
    assert lines[-1].startswith("STATUS=shutdown ok in")
    assert "HOOK-END flush" in out
    assert child.report()["ok"] is True


@pytest.mark.parametrize("backend", BACKENDS)
def test_watchdog_pings_from_a_real_child(
    spawn: Spawn, backend: str, notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 100 ms
    datagrams: list[str] = []
    child = spawn("systemd", backend)
    child.expect(r"^READY$")
    receive_until(notify_socket, child, "READY=1", datagrams)
    for _ in range(3):
        receive_until(notify_socket, child, "WATCHDOG=1", datagrams)
    child.signal(signal.SIGTERM)
    child.expect(r"^HOOK-START flush$")
    # The pings go on during the shutdown: the process is alive and working.
    receive_until(notify_socket, child, "STOPPING=1", datagrams)
    receive_until(notify_socket, child, "WATCHDOG=1", datagrams)
    child.send_line("go")
    rc, _, err = child.wait(timeout=10)
    assert rc == 0, err
    assert datagrams[0] == "READY=1\nSTATUS=running"
    assert datagrams.count("WATCHDOG=1") >= 4
