"""sd_notify messages, read from a real unix datagram socket standing in for systemd."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import gracestop
from gracestop import Hooks, ShutdownConfig, ShutdownCoordinator
from gracestop._systemd import EXIT_MARGIN, SystemdNotifier, notify_address, watchdog_interval

pytestmark = pytest.mark.anyio


class FakeSystemd:
    """A bound unix datagram socket: what systemd listens on for sd_notify."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.datagrams: list[str] = []

    def drain(self) -> list[str]:
        """Every datagram received so far (they are queued as soon as sent)."""
        self.sock.setblocking(False)
        try:
            while True:
                self.datagrams.append(self.sock.recv(65536).decode())
        except BlockingIOError:
            pass
        return self.datagrams

    def receive(self, timeout: float = 5.0) -> str:
        """The next datagram, waiting for it at most ``timeout`` seconds."""
        self.sock.setblocking(True)
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536).decode()
        except TimeoutError:
            pytest.fail(f"no sd_notify datagram within {timeout}s; got so far: {self.datagrams}")
        self.datagrams.append(data)
        return data

    def assignments(self) -> list[str]:
        """Every KEY=value line received, in order."""
        return [line for datagram in self.drain() for line in datagram.split("\n")]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to about 107 bytes: pytest's tmp_path may be longer.
    with tempfile.TemporaryDirectory(prefix="gs-", dir="/tmp") as name:
        yield Path(name)


@pytest.fixture
def systemd(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemd]:
    path = str(short_dir / "notify")
    fake = FakeSystemd(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield fake
    fake.close()


@pytest.fixture
def abstract_systemd(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemd]:
    name = f"gracestop-test-{uuid.uuid4().hex}"
    fake = FakeSystemd("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    yield fake
    fake.close()


def quiet(**overrides: Any) -> dict[str, Any]:
    return {"hooks": Hooks(), "signals": (), "observers": [], **overrides}


def value_of(lines: list[str], key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in lines if line.startswith(key + "=")]


async def run_slow_shutdown(coord: ShutdownCoordinator, fake: FakeSystemd) -> None:
    """Trigger with a wrap-up hook that ends once a progress STATUS has been sent."""
    seen_progress = anyio.Event()

    @coord.on_wrap_up(name="flush")
    async def flush() -> None:
        with anyio.fail_after(5):
            await seen_progress.wait()

    async def watch() -> None:
        while True:
            datagram = await anyio.to_thread.run_sync(fake.receive)
            if "STATUS=waiting for" in datagram:
                seen_progress.set()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        assert fake.receive() == "READY=1\nSTATUS=running"
        coord.shutdown("deploy")


async def test_messages_on_a_path_socket(systemd: FakeSystemd) -> None:
    async with ShutdownCoordinator(
        **quiet(wait_time=8, watchdog_grace=0.5, progress_interval=0.02)
    ) as coord:
        await run_slow_shutdown(coord, systemd)
    lines = systemd.assignments()
    assert lines[:2] == ["READY=1", "STATUS=running"]
    stopping = lines.index("STOPPING=1")
    extend = lines.index(next(line for line in lines if line.startswith("EXTEND_TIMEOUT_USEC=")))
    status = lines.index("STATUS=shutdown requested (deploy), shutting down; force quit in 8s")
    assert 1 < stopping < extend < status
    extends = [int(v) for v in value_of(lines, "EXTEND_TIMEOUT_USEC")]
    # At the trigger: the whole wait_time, the watchdog's grace and the exit margin.
    assert extends[0] == int((8 + 0.5 + EXIT_MARGIN) * 1e6)
    # Then with each progress line: the time left, which only goes down.
    assert len(extends) >= 2
    assert all(a >= b for a, b in itertools.pairwise(extends))
    assert extends[-1] > (0.5 + EXIT_MARGIN) * 1e6
    statuses = value_of(lines, "STATUS")
    assert "wrap-up phase: 1 hook" in statuses
    progress = next(s for s in statuses if s.startswith("waiting for"))
    assert "wrap_up hook flush (running" in progress
    assert "force quit in" in progress
    assert "shutdown phase: 0 hooks" in statuses
    assert coord.report is not None
    assert statuses[-1] == coord.report.summary()
    assert "WATCHDOG=1" not in lines  # WATCHDOG_USEC is not set


async def test_messages_on_an_abstract_socket(abstract_systemd: FakeSystemd) -> None:
    async with ShutdownCoordinator(**quiet(wait_time=3)) as coord:
        assert abstract_systemd.receive() == "READY=1\nSTATUS=running"
        async with coord.hold("request"):
            coord.shutdown()
    lines = abstract_systemd.assignments()
    assert lines[2:4] == ["STOPPING=1", f"EXTEND_TIMEOUT_USEC={int((3 + 0.5 + EXIT_MARGIN) * 1e6)}"]
    assert value_of(lines, "STATUS")[-1].startswith("shutdown ok in")


async def test_watchdog_pings(systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "40000")  # a ping every 20 ms
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    async with ShutdownCoordinator(**quiet()) as coord:
        assert coord._systemd is not None
        assert coord._systemd.watchdog_interval == pytest.approx(0.02)
        assert systemd.receive() == "READY=1\nSTATUS=running"
        for _ in range(3):
            assert await anyio.to_thread.run_sync(systemd.receive) == "WATCHDOG=1"
    assert systemd.assignments().count("WATCHDOG=1") >= 3
    # The notifier is closed with the coordinator: no ping can follow.
    assert coord._systemd is not None
    assert not coord._systemd.send("WATCHDOG=1")


def test_watchdog_interval_from_the_environment(caplog: pytest.LogCaptureFixture) -> None:
    me = str(os.getpid())
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "2000000"}) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": me}) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    caplog.set_level(logging.WARNING, logger="gracestop")
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert "WATCHDOG_USEC='soon' is not a number" in caplog.text
    assert "WATCHDOG_USEC='0' is not positive" in caplog.text


def test_notify_addresses(caplog: pytest.LogCaptureFixture) -> None:
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@abstract") == "\0abstract"
    assert notify_address("@") is None
    assert notify_address("vsock:2:1234") is None
    assert SystemdNotifier.from_env({}) is None
    caplog.set_level(logging.WARNING, logger="gracestop")
    assert SystemdNotifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"}) is None
    assert "NOTIFY_SOCKET='vsock:2:1234' is not a unix socket path" in caplog.text


async def test_a_missing_socket_is_logged_once_and_breaks_nothing(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gracestop")
    monkeypatch.setenv("NOTIFY_SOCKET", str(short_dir / "gone"))
    async with ShutdownCoordinator(**quiet()) as coord:
        coord.shutdown()
    assert coord.report is not None and coord.report.ok
    failures = [r for r in caplog.records if "could not notify systemd" in r.getMessage()]
    assert len(failures) == 1
    assert "gone" in failures[0].getMessage()


async def test_systemd_notify_false_sends_nothing(systemd: FakeSystemd) -> None:
    async with ShutdownCoordinator(**quiet(systemd_notify=False)) as coord:
        coord.shutdown()
    assert coord._systemd is None
    assert systemd.drain() == []


async def test_only_the_outermost_coordinator_notifies_unless_asked(systemd: FakeSystemd) -> None:
    async with ShutdownCoordinator(**quiet()) as outer:
        async with ShutdownCoordinator(**quiet()) as inner:
            inner.shutdown("inner done")
        assert inner._systemd is None
        async with ShutdownCoordinator(**quiet(systemd_notify=True)) as loud:
            loud.shutdown("loud done")
        outer.shutdown()
    lines = systemd.assignments()
    assert lines.count("READY=1") == 2  # the outer one, and the nested one asked to
    stops = value_of(lines, "STATUS")
    assert any("loud done" in s for s in stops)
    assert not any("inner done" in s for s in stops)


async def test_sends_after_close_are_dropped(systemd: FakeSystemd) -> None:
    path = os.environ["NOTIFY_SOCKET"]
    notifier = SystemdNotifier(path)
    assert notifier.send("STATUS=one")
    notifier.close()
    assert not notifier.send("STATUS=two")
    notifier.close()
    assert systemd.drain() == ["STATUS=one"]


def test_config_field() -> None:
    assert ShutdownConfig().systemd_notify is None
    assert ShutdownConfig(systemd_notify=False).systemd_notify is False
    env = {"GRACESTOP_SYSTEMD_NOTIFY": "off"}
    assert ShutdownConfig.from_env(environ=env).systemd_notify is False
    assert ShutdownConfig.from_mapping({"SystemdNotify": "auto"}).systemd_notify is None
    with pytest.raises(TypeError, match=r"systemd_notify must be None, True or False; got str"):
        ShutdownConfig(systemd_notify="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="GRACESTOP_SYSTEMD_NOTIFY"):
        ShutdownConfig.from_env(environ={"GRACESTOP_SYSTEMD_NOTIFY": "maybe"})


async def test_a_multi_line_error_cannot_inject_assignments(systemd: FakeSystemd) -> None:
    with pytest.raises(ValueError, match="bad config"):
        async with ShutdownCoordinator(**quiet()):
            raise ValueError("bad config\nMAINPID=1\nREADY=1\r\x00\x1b[31m")
    lines = systemd.assignments()
    assert lines.count("READY=1") == 1  # the one sent on entering
    assert not [line for line in lines if line.startswith("MAINPID=")]
    (status,) = [s for s in value_of(lines, "STATUS") if "ValueError" in s]
    assert status.startswith(
        "the service block raised ValueError: bad config MAINPID=1 READY=1 [31m,"
    )
    assert all(line.isprintable() for line in lines)


def test_long_values_are_cut() -> None:
    from gracestop._systemd import MAX_VALUE, clean_value

    assert clean_value("a\n\tb  c\x7f") == "a b c"
    cut = clean_value("x" * 2000)
    assert len(cut) == MAX_VALUE and cut.endswith("...")


async def test_ready_on_entering_by_default(systemd: FakeSystemd) -> None:
    async with ShutdownCoordinator(**quiet()) as coord:
        assert systemd.receive() == "READY=1\nSTATUS=running"
        coord.notify_ready()  # sent already: nothing more
        coord.shutdown()
    assert systemd.assignments().count("READY=1") == 1


async def test_manual_readiness(systemd: FakeSystemd) -> None:
    async with ShutdownCoordinator(**quiet(systemd_ready="manual")) as coord:
        assert systemd.receive() == "STATUS=starting; waiting for the service to be ready"
        coord.notify_ready()
        assert systemd.receive() == "READY=1\nSTATUS=running"
        coord.notify_ready()
        coord.shutdown()
        coord.notify_ready()  # after the trigger: never READY=1 again
    lines = systemd.assignments()
    assert lines.count("READY=1") == 1
    assert lines.index("READY=1") < lines.index("STOPPING=1")


async def test_notify_ready_without_systemd_and_before_entering() -> None:
    coord = ShutdownCoordinator(**quiet(systemd_ready="manual"))
    with pytest.raises(gracestop.ShutdownError, match=r"notify_ready\(\) needs an entered"):
        coord.notify_ready()
    async with coord:
        coord.notify_ready()  # no NOTIFY_SOCKET: nothing to do, no error
        coord.shutdown()
