"""``gracestop.aiohttp.serve`` in a real process under load and real signals.

The server is ``examples/aiohttp_app.py``; ``_drain.py`` holds the rollout
scenario every server integration passes (load, slow request, stream, websocket,
SIGTERM). aiohttp runs only on asyncio.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from _drain import (
    check_rollout,
    check_second_signal,
    server_options,
)
from _load import ROOT, ServerProcess

pytestmark = pytest.mark.process

EXAMPLE = str(ROOT / "examples" / "aiohttp_app.py")


def test_aiohttp_rollout_under_load(tmp_path: Path) -> None:
    server = ServerProcess([sys.executable, "-u", EXAMPLE, *server_options(str(tmp_path / "db"))])
    try:
        check_rollout(server)
    finally:
        server.kill()


def test_second_signal_ends_a_stuck_drain_at_once_without_tracebacks(tmp_path: Path) -> None:
    """What ``web.run_app`` gets wrong: a second signal during the drain of an
    endless stream ends the process quickly, with the force-quit status and no
    ``InvalidStateError`` tracebacks."""
    server = ServerProcess([sys.executable, "-u", EXAMPLE, *server_options(str(tmp_path / "db"))])
    try:
        check_second_signal(server, r"stopped accepting")
    finally:
        server.kill()


def test_a_port_in_use_fails_the_start_at_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [*server_options(str(tmp_path / "db")), "--port", str(port)]
        server = ServerProcess([sys.executable, "-u", EXAMPLE, *args])
        try:
            rc, out, err = server.wait(20)
        finally:
            server.kill()
    context = f"rc {rc}\n--- stdout:\n{out}\n--- stderr:\n{err}"
    assert rc == 1, context
    assert "address already in use" in err, context
    assert "LISTENING" not in out, context
