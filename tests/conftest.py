"""Shared fixtures: every async test runs on asyncio and on trio."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_systemd_from_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test run started by a systemd service must not notify that service:
    tests that want sd_notify set NOTIFY_SOCKET to a socket of their own."""
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)
