"""``gracestop.uvicorn.serve`` in a real process under load and a real SIGTERM.

The server is ``examples/fastapi_app.py``; see ``_drain.py`` for the scenario.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _drain import check_rollout, server_options
from _load import ROOT, ServerProcess

pytestmark = pytest.mark.process

EXAMPLE = str(ROOT / "examples" / "fastapi_app.py")


def test_uvicorn_rollout_under_load(tmp_path: Path) -> None:
    server = ServerProcess([sys.executable, "-u", EXAMPLE, *server_options(str(tmp_path / "db"))])
    try:
        check_rollout(server)
    finally:
        server.kill()
