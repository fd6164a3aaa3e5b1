"""``gracestop.hypercorn.serve`` in a real process under load and a real SIGTERM,
on asyncio and on trio.

The server is ``apps.py`` (the example FastAPI app served by hypercorn); see
``_drain.py`` for the scenario.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _drain import check_rollout, check_second_signal, server_options
from _harness import BACKENDS
from _load import ServerProcess

pytestmark = pytest.mark.process


@pytest.mark.parametrize("backend", BACKENDS)
def test_hypercorn_rollout_under_load(tmp_path: Path, backend: str) -> None:
    server = ServerProcess.python(backend, *server_options(str(tmp_path / "db")), module="apps")
    try:
        check_rollout(server)
    finally:
        server.kill()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_second_sigterm_ends_a_stuck_drain_at_once(tmp_path: Path, backend: str) -> None:
    server = ServerProcess.python(backend, *server_options(str(tmp_path / "db")), module="apps")
    try:
        check_second_signal(server, r"hypercorn: no longer accepting")
    finally:
        server.kill()
