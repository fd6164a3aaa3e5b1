"""The report file of a real process: written at the end of a shutdown started by a
real SIGTERM, and by the watchdog before it ends a stuck process."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from _harness import BACKENDS, Child, results_by_name

pytestmark = pytest.mark.process

Spawn = Callable[..., Child]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["from_env", "plain"])
def test_sigterm_writes_the_report_named_by_the_environment(
    spawn: Spawn, backend: str, variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``ShutdownConfig.from_env()``, and without it: the coordinator reads
    ``GRACESTOP_REPORT_FILE`` itself when its config has no ``report_file``."""
    target = tmp_path / "reports" / "shutdown.json"
    target.parent.mkdir()
    monkeypatch.setenv("GRACESTOP_REPORT_FILE", str(target))
    child = spawn("report_file", backend, variant)
    child.expect(rf"^READY {re.escape(str(target))}$")
    assert not target.exists()
    child.signal(signal.SIGTERM)
    rc, _, err = child.wait(timeout=10)
    assert rc == 0, err
    written = json.loads(target.read_text(encoding="utf-8"))
    assert written == child.report()  # the file holds what the process reported
    assert written["schema"] == "gracestop.report"
    assert written["trigger"]["kind"] == "signal"
    assert written["trigger"]["signal"] == "SIGTERM"
    statuses = {name: r["status"] for name, r in results_by_name(written).items()}
    assert statuses == {"flush": "ok", "close-db": "failed"}
    assert results_by_name(written)["close-db"]["error"]["message"] == "database is gone"
    assert [p.name for p in target.parent.iterdir()] == ["shutdown.json"]  # no temp file
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # the child's umask is ours
    assert "could not write the shutdown report" not in err


@pytest.mark.parametrize("backend", BACKENDS)
def test_watchdog_writes_the_report_before_it_ends_the_process(
    spawn: Spawn, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "shutdown.json"
    monkeypatch.setenv("GRACESTOP_REPORT_FILE", str(target))
    child = spawn("report_file", backend, "blocking")
    child.expect(r"^READY ")
    child.signal(signal.SIGTERM)
    child.expect(r"^HOOK-START flush$")
    rc, out, err = child.wait(timeout=10)
    assert rc == 3, err  # force_exit_code, from the watchdog
    assert "REPORT " not in out  # the loop never got to finish
    assert "the process outlived its shutdown deadline" in err
    written = json.loads(target.read_text(encoding="utf-8"))
    assert written["forced"] is True
    assert written["forced_by"] == "deadline"
    assert written["trigger"]["signal"] == "SIGTERM"
    results = results_by_name(written)
    assert results["flush"]["status"] == "timed_out"
    assert results["flush"]["started_at"] is not None
    assert results["close-db"]["status"] == "cancelled"  # never started
    assert written["duration"] >= 1.0  # wait_time had passed
    assert [p.name for p in tmp_path.iterdir()] == ["shutdown.json"]
