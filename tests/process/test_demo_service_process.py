"""The demo's job service on its own: idle workers stop at SIGTERM on both backends.

``gracestop demo`` always signals the service under load; here no job ever
arrives, so every worker is waiting for one when the wrap-up phase begins.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _harness import BACKENDS, _Stream

pytestmark = pytest.mark.process


@pytest.mark.parametrize("backend", BACKENDS)
def test_idle_workers_stop_and_the_shutdown_is_ok(backend: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    db = str(tmp_path / "jobs.db")
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "gracestop._demo_service", db, "--backend", backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Stream(proc.stdout, "stdout"), _Stream(proc.stderr, "stderr")
    try:
        ready = out.expect(r"^READY ", timeout=20)
        assert ready is not None, out.text() + err.text()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
        out.join(5)
        err.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    assert rc == 0, out.text() + err.text()
    reports = [x for x in out.lines if x.startswith("REPORT ")]
    assert len(reports) == 1, out.text()
    results = json.loads(reports[0][len("REPORT ") :])["report"]["results"]
    statuses = {r["name"]: r["status"] for r in results}
    assert statuses == {"stop-workers": "ok", "flush-queue": "ok", "close-db": "ok"}, err.text()
    assert "worker-1: stopped, taking no more jobs" in err.text()
