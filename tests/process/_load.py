"""HTTP load against a server in a subprocess, for the serving tests.

``ServerProcess`` starts any server program (a module, a script, a command line),
reads its stdout and stderr like ``_harness.Child`` and learns its port from a
``LISTENING <port>`` line. ``Load`` (``benchmarks/_httpload.py``, shared with the
benchmarks) drives a bounded, paced HTTP load on loopback
from worker threads with real httpx clients: some workers keep one connection
alive across requests, others open a new connection for every request
(``Connection: close``). Every request is recorded with its start and end times
(``time.monotonic()``, which on Linux is one clock for every process, so the times
compare with those a server prints), status, ``Connection`` header and error, so a
test can ask what happened in a given window, e.g. between the signal and the
moment the server stopped accepting.

Typical use::

    server = ServerProcess([sys.executable, "-u", "-m", "my.server", "--port", "0"])
    port = server.listening()
    with Load(f"http://127.0.0.1:{port}", ["/"]) as load:
        load.wait_for_requests(20)
        signalled = server.signal(signal.SIGTERM)
        rc, out, err = server.wait(15)
    assert load.failed(started_before=signalled + drain_delay - margin) == []
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from _harness import Child, _Stream

ROOT = Path(__file__).resolve().parents[2]
# The load itself lives with the benchmarks, which measure the same thing.
sys.path.append(str(ROOT / "benchmarks"))

from _httpload import Load, LoadError, Record, classify, iter_sse_events  # noqa: E402


class ServerProcess(Child):
    """A server program in a subprocess, driven by the lines it prints.

    ``args`` is the full command line (use ``sys.executable`` for Python programs).
    The working directory is the project root and ``PYTHONPATH`` includes it, so
    ``-m examples.fastapi_app`` and ``-m tests.process.apps`` work. Everything
    ``Child`` offers (``expect``, ``signal``, ``wait``, ``report``, ``kill``)
    applies; ``wait`` fails the test with the output when the process outlives
    its timeout.
    """

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        full_env = dict(os.environ)
        full_env.pop("PYTHONWARNINGS", None)
        full_env["PYTHONUNBUFFERED"] = "1"
        paths = [str(ROOT), str(ROOT / "tests" / "process")]
        if full_env.get("PYTHONPATH"):
            paths.append(full_env["PYTHONPATH"])
        full_env["PYTHONPATH"] = os.pathsep.join(paths)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = _Stream(self.proc.stdout, "stdout")
        self.err = _Stream(self.proc.stderr, "stderr")
        self.returncode: int | None = None

    @classmethod
    def python(
        cls, *args: str, module: str | None = None, env: dict[str, str] | None = None
    ) -> ServerProcess:
        """Run ``python -u -m module args...`` (or ``python -u args...``)."""
        head = [sys.executable, "-u"] + (["-m", module] if module else [])
        return cls([*head, *args], env=env)

    def listening(self, timeout: float = 20.0) -> int:
        """Wait for the ``LISTENING <port>`` line; return the port."""
        return int(self.expect(r"^LISTENING (\d+)$", timeout).group(1))


__all__ = [
    "ROOT",
    "Load",
    "LoadError",
    "Record",
    "ServerProcess",
    "classify",
    "iter_sse_events",
]
