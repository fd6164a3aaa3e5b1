"""``gracestop demo``: start the demo service, load it, SIGTERM it, count what was lost.

The service (:mod:`gracestop._demo_service`) runs in a child process so that the
signal is a real one. This side is the client: it offers jobs over loopback at a
steady pace, sends SIGTERM half-way through while jobs are in hand and queued, goes
on offering jobs while the service drains, and after the child has exited checks
the SQLite file against every acknowledgement it received. A job is *lost* when
the service said ``QUEUED`` (it took it) and the file has no row for it, or said
``DONE`` and the row is not ``done``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ._demo_service import read_jobs

# Generous: the machine may be busy, and a slow start is not the thing shown here.
_START_TIMEOUT = 30.0
_ACK_TIMEOUT = 10.0


@dataclass(frozen=True)
class DemoOptions:
    """What ``gracestop demo`` runs; every duration in seconds."""

    backend: str = "asyncio"
    jobs: int = 40
    interval: float = 0.02
    job_time: float = 0.2
    seed: int = 0
    drain_delay: float = 0.3
    wrap_up_time: float = 3.0
    wait_time: float = 5.0


@dataclass
class JobCounts:
    """What the client saw and what the SQLite file holds afterwards."""

    offered: int = 0
    queued: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)
    refused: set[int] = field(default_factory=set)
    unanswered: int = 0
    persisted: int = 0
    requeued: int = 0
    lost: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The numbers, JSON-serialisable."""
        return {
            "offered": self.offered,
            "queued": len(self.queued),
            "acknowledged_done": len(self.done),
            "refused": len(self.refused),
            "unanswered": self.unanswered,
            "persisted": self.persisted,
            "requeued": self.requeued,
            "lost": len(self.lost),
            "lost_ids": sorted(self.lost),
        }


@dataclass
class DemoResult:
    """Everything ``gracestop demo`` prints."""

    options: DemoOptions
    jobs: JobCounts
    returncode: int | None
    report: dict[str, Any] | None
    render: str
    log: list[str]
    skipped: list[str]
    problems: list[str]

    @property
    def ok(self) -> bool:
        """Nothing lost, the service exited 0, and its shutdown report is ok."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The numbers and the report, JSON-serialisable."""
        return {
            "ok": self.ok,
            "backend": self.options.backend,
            "jobs": self.jobs.to_dict(),
            "service_exit_code": self.returncode,
            "shutdown": self.report,
            "skipped": self.skipped,
            "problems": self.problems,
        }


def http_unavailable(backend: str) -> str | None:
    """Why the HTTP part of the demo cannot run here, or None when it can.

    The HTTP part needs uvicorn and ``gracestop.uvicorn`` (the serving extra), and
    uvicorn runs on asyncio only.
    """
    if importlib.util.find_spec("uvicorn") is None:
        return "uvicorn is not installed (pip install 'gracestop[uvicorn]')"
    if importlib.util.find_spec("gracestop.uvicorn") is None:
        return "this gracestop has no gracestop.uvicorn integration"
    if backend != "asyncio":
        return "uvicorn runs on asyncio only; this run uses trio"
    # The integration exists but the demo's HTTP service is not wired to it yet.
    return "the demo's HTTP service is not available in this version"


class _Lines:
    """Lines from a pipe, read on a daemon thread, handed over through a queue."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        try:
            for line in pipe:
                self.seen.append(line.rstrip("\n"))
                self.lines.put(line.rstrip("\n"))
        finally:
            self.lines.put(None)

    def wait_for(self, prefix: str, timeout: float) -> str | None:
        """The next line starting with *prefix*, or None at end of pipe or timeout."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            if line.startswith(prefix):
                return line

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class _Acks:
    """Reads the service's replies on a daemon thread and records them."""

    def __init__(self, sock: socket.socket, counts: JobCounts) -> None:
        self.counts = counts
        self.first_done = threading.Event()
        self._sock = sock
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        sets = {"QUEUED": self.counts.queued, "DONE": self.counts.done}
        sets["REFUSED"] = self.counts.refused
        with self._sock.makefile("r", encoding="ascii", errors="replace") as replies:
            try:
                for line in replies:
                    verb, _, arg = line.strip().partition(" ")
                    if verb in sets and arg.isdigit():
                        with self._lock:
                            sets[verb].add(int(arg))
                        if verb == "DONE":
                            self.first_done.set()
            except OSError:
                # The service closed the connection hard; what was read stands.
                pass
        self.first_done.set()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


def _service_command(options: DemoOptions, db: Path) -> list[str]:
    return [
        sys.executable,
        "-u",
        "-m",
        "gracestop._demo_service",
        str(db),
        "--backend",
        options.backend,
        "--seed",
        str(options.seed),
        "--job-time",
        repr(options.job_time),
        "--drain-delay",
        repr(options.drain_delay),
        "--wrap-up-time",
        repr(options.wrap_up_time),
        "--wait-time",
        repr(options.wait_time),
    ]


def _offer_jobs(
    sock: socket.socket, acks: _Acks, proc: subprocess.Popen[str], options: DemoOptions
) -> bool:
    """Offer the jobs, SIGTERM half-way; return whether the signal was sent."""
    counts = acks.counts
    signalled = False
    for job in range(1, options.jobs + 1):
        if not signalled and job > options.jobs // 2:
            # Mid-flight: at least one job done, others in hand and queued.
            acks.first_done.wait(_ACK_TIMEOUT)
            proc.send_signal(signal.SIGTERM)
            signalled = True
        try:
            sock.sendall(f"JOB {job}\n".encode())
        except OSError:
            # The service has stopped and closed the connection: no more offers.
            break
        counts.offered += 1
        # The pace of the load, not a synchronisation.
        time.sleep(options.interval)
    if not signalled:
        proc.send_signal(signal.SIGTERM)
        signalled = True
    return signalled


def run_demo(options: DemoOptions) -> DemoResult:
    """Run the whole demo and return what happened; never raises for a failed run."""
    skipped: list[str] = []
    reason = http_unavailable(options.backend)
    if reason is not None:
        skipped.append(f"HTTP part skipped: {reason}")
    problems: list[str] = []
    counts = JobCounts()
    report: dict[str, Any] | None = None
    render = ""
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    with tempfile.TemporaryDirectory(prefix="gracestop-demo-") as tmp:
        db = Path(tmp) / "jobs.sqlite3"
        proc = subprocess.Popen(
            _service_command(options, db),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        out, err = _Lines(proc.stdout), _Lines(proc.stderr)
        returncode: int | None = None
        try:
            ready = out.wait_for("READY ", _START_TIMEOUT)
            if ready is None:
                problems.append(f"the service did not start within {_START_TIMEOUT:g}s")
            else:
                port = int(json.loads(ready[len("READY ") :])["port"])
                with socket.create_connection(("127.0.0.1", port), timeout=_ACK_TIMEOUT) as sock:
                    acks = _Acks(sock, counts)
                    _offer_jobs(sock, acks, proc, options)
                    deadline = options.wait_time + _ACK_TIMEOUT
                    if not acks.join(deadline):
                        problems.append(f"the service kept its connection open {deadline:g}s")
            try:
                returncode = proc.wait(options.wait_time + _ACK_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append("the service did not exit in time and was killed")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.join(5.0)
            err.join(5.0)
            proc.stdout.close()
            proc.stderr.close()
        for line in out.seen:
            if line.startswith("REPORT "):
                data = json.loads(line[len("REPORT ") :])
                report, render = data["report"], data["render"]
        counts.unanswered = counts.offered - len(counts.queued) - len(counts.refused)
        if db.exists() and report is not None:
            rows = read_jobs(db)
            counts.persisted = sum(1 for state in rows.values() if state == "done")
            counts.requeued = sum(1 for state in rows.values() if state == "pending")
            missing = {job for job in counts.queued if job not in rows}
            not_done = {job for job in counts.done if rows.get(job) != "done"}
            counts.lost = sorted(missing | not_done)
    if returncode is not None and returncode != 0:
        problems.append(f"the service exited with status {returncode}")
    if report is None:
        problems.append("the service printed no shutdown report")
    elif not report.get("ok"):
        problems.append("the shutdown report is not ok")
    if counts.lost:
        problems.append(f"{len(counts.lost)} acknowledged jobs are not in the database")
    return DemoResult(options, counts, returncode, report, render, err.seen, skipped, problems)


def format_result(result: DemoResult) -> str:
    """The human-readable story of a demo run."""
    o, jobs = result.options, result.jobs
    lines = [
        f"gracestop demo: a job worker on {o.backend}, {o.jobs} jobs offered every "
        f"{o.interval * 1000:g}ms, SIGTERM after {o.jobs // 2}",
        f"  drain_delay {o.drain_delay:g}s, wrap_up_time {o.wrap_up_time:g}s, "
        f"wait_time {o.wait_time:g}s, ~{o.job_time:g}s per job, seed {o.seed}",
        *(f"  {line}" for line in result.skipped),
        "",
        "service log:",
        *(f"  {line}" for line in result.log),
        "",
        result.render or "(no shutdown report)",
        "",
        f"jobs: offered {jobs.offered}, queued {len(jobs.queued)}, "
        f"refused {len(jobs.refused)} (after wrap-up began), "
        f"unanswered {jobs.unanswered} (service gone)",
        f"      done and acknowledged {len(jobs.done)}, rows 'done' {jobs.persisted}, "
        f"flushed as 'pending' {jobs.requeued}",
        f"      lost {len(jobs.lost)}"
        + (f" ({', '.join(map(str, jobs.lost[:10]))})" if jobs.lost else ""),
        "",
    ]
    if result.ok:
        lines.append("ok: nothing lost, shutdown ok, service exit status 0")
    else:
        lines.extend(f"FAILED: {problem}" for problem in result.problems)
    return "\n".join(lines)
