"""``gracestop demo``: start the demo service, load it, SIGTERM it, count what was lost.

The service (`_demo_service`) runs in a child process so that the
signal is a real one. This side is the client: it offers jobs over loopback at a
steady pace, sends SIGTERM half-way through while jobs are in hand and queued, goes
on offering jobs while the service drains, and after the child has exited checks
the SQLite file against every acknowledgement it received. A job is *lost* when
the service said ``QUEUED`` (it took it) and the file has no row for it, or said
``DONE`` and the row is not ``done``.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import queue
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ._demo_http import SERVERS, http_unavailable
from ._demo_service import read_jobs

# The rendered timeline follows the terminal, within reason.
_MAX_COLUMNS = 100

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
    http: bool = True
    clients: int = 4
    request_time: float = 0.1
    stop_signal: signal.Signals = signal.SIGTERM
    """The signal sent half-way; SIGKILL shows what a crash costs (hidden option)."""


@dataclass
class HttpCounts:
    """What the HTTP clients saw.

    ``failed`` is a request on an accepted connection that got no complete response
    or a status other than 200: the thing a graceful shutdown must avoid.
    ``refused`` is a connection refused once the listener had closed, which a load
    balancer routes elsewhere.
    """

    server: str = ""
    sent: int = 0
    served: int = 0
    failed: int = 0
    refused: int = 0
    sent_after_signal: int = 0
    served_after_signal: int = 0
    readiness_off_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The numbers, JSON-serialisable."""
        return {
            "server": self.server,
            "sent": self.sent,
            "served": self.served,
            "failed": self.failed,
            "refused": self.refused,
            "sent_after_sigterm": self.sent_after_signal,
            "served_after_sigterm": self.served_after_signal,
            "readiness_off_after": self.readiness_off_after,
        }


@dataclass
class JobCounts:
    """What the client saw and what the SQLite file holds afterwards."""

    offered: int = 0
    queued: set[int] = field(default_factory=set[int])
    done: set[int] = field(default_factory=set[int])
    refused: set[int] = field(default_factory=set[int])
    unanswered: int = 0
    rows_done: int = 0
    rows_pending: int = 0
    lost: list[int] = field(default_factory=list[int])

    def to_dict(self) -> dict[str, Any]:
        """The numbers, JSON-serialisable."""
        return {
            "offered": self.offered,
            "queued": len(self.queued),
            "acknowledged_done": len(self.done),
            "refused": len(self.refused),
            "unanswered": self.unanswered,
            "rows_done": self.rows_done,
            "rows_pending": self.rows_pending,
            "lost": len(self.lost),
            "lost_ids": sorted(self.lost),
        }


@dataclass
class DemoResult:
    """Everything ``gracestop demo`` prints."""

    options: DemoOptions
    jobs: JobCounts
    http: HttpCounts | None
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
            "http": None if self.http is None else self.http.to_dict(),
            "service_exit_code": self.returncode,
            "shutdown": self.report,
            "service_log": self.log,
            "skipped": self.skipped,
            "problems": self.problems,
        }


class _Lines:
    """Lines from a pipe, read on a daemon thread, handed over through a queue."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.ended = False
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
        """The next line starting with *prefix*, or None at end of pipe or timeout.

        ``ended`` tells the two apart: it is True once the end of the pipe was read.
        """
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
                self.ended = True
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


class _HttpLoad:
    """Clients that send ``GET /work`` until readiness turns off, as a load balancer would.

    A poller reads ``/readyz`` every 50 ms; once it fails, no new request is sent
    (endpoints removed), while the requests in flight must still be served.
    """

    def __init__(self, port: int, counts: HttpCounts, clients: int) -> None:
        self.port = port
        self.counts = counts
        self.signalled_at: float | None = None
        self.started_at = time.monotonic()
        self._routing_off = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._poll, daemon=True)]
        self._threads += [
            threading.Thread(target=self._client, daemon=True) for _ in range(clients)
        ]
        for thread in self._threads:
            thread.start()

    def _get(self, path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=_ACK_TIMEOUT)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def _poll(self) -> None:
        while not self._routing_off.is_set():
            try:
                status = self._get("/readyz")
            except OSError:
                status = 0
            if status != 200:
                with self._lock:
                    self.counts.readiness_off_after = (
                        None
                        if self.signalled_at is None
                        else round(time.monotonic() - self.signalled_at, 3)
                    )
                self._routing_off.set()
                return
            # The polling period of the emulated load balancer.
            self._routing_off.wait(0.05)

    def _client(self) -> None:
        while not self._routing_off.is_set():
            after_signal = self.signalled_at is not None
            try:
                status = self._get("/work")
            except ConnectionRefusedError:
                status = -1
            except OSError:
                status = 0
            with self._lock:
                self.counts.sent += 1
                self.counts.sent_after_signal += after_signal
                if status == 200:
                    self.counts.served += 1
                    self.counts.served_after_signal += after_signal
                elif status == -1:
                    self.counts.refused += 1
                else:
                    self.counts.failed += 1

    def signalled(self) -> None:
        self.signalled_at = time.monotonic()

    def stop(self, timeout: float) -> bool:
        """Stop sending and wait for the requests in flight; False if they hang."""
        self._routing_off.set()
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)


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
        "--request-time",
        repr(options.request_time),
        *(["--http"] if options.http else []),
    ]


def _offer_jobs(
    sock: socket.socket,
    acks: _Acks,
    proc: subprocess.Popen[str],
    options: DemoOptions,
    load: _HttpLoad | None,
) -> None:
    """Offer the jobs, SIGTERM half-way."""
    counts = acks.counts
    signalled = False

    def send_sigterm() -> None:
        if load is not None:
            load.signalled()
        proc.send_signal(options.stop_signal)

    for job in range(1, options.jobs + 1):
        if not signalled and job > options.jobs // 2:
            # Mid-flight: at least one job done, others in hand and queued.
            acks.first_done.wait(_ACK_TIMEOUT)
            send_sigterm()
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
        send_sigterm()


def count_losses(db: Path, counts: JobCounts) -> list[str]:
    """Check the SQLite file *db* against the acknowledgements in *counts*; the problems.

    Whatever the service said or failed to say, the file alone tells what survived:
    a file that is missing or cannot be read loses every acknowledged job.
    """
    problems: list[str] = []
    rows: dict[int, str] = {}
    if not db.exists():
        if counts.queued:
            problems.append("the service left no job database")
    else:
        try:
            rows = read_jobs(db)
        except sqlite3.Error as exc:
            problems.append(f"cannot read the job database: {exc}")
    counts.rows_done = sum(1 for state in rows.values() if state == "done")
    counts.rows_pending = sum(1 for state in rows.values() if state == "pending")
    missing = {job for job in counts.queued if job not in rows}
    not_done = {job for job in counts.done if rows.get(job) != "done"}
    counts.lost = sorted(missing | not_done)
    return problems


def run_demo(options: DemoOptions) -> DemoResult:
    """Run the whole demo and return what happened; never raises for a failed run."""
    skipped: list[str] = []
    reason = "--no-http was given" if not options.http else http_unavailable(options.backend)
    if reason is not None:
        skipped.append(f"HTTP part skipped: {reason}")
        options = dataclasses.replace(options, http=False)
    http_counts = HttpCounts(server=SERVERS[options.backend]) if options.http else None
    load: _HttpLoad | None = None
    problems: list[str] = []
    counts = JobCounts()
    report: dict[str, Any] | None = None
    render = ""
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    # The child writes to a pipe, so it cannot see the terminal: tell it the width.
    env["COLUMNS"] = str(min(shutil.get_terminal_size().columns, _MAX_COLUMNS))
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
        try:
            assert proc.stdout is not None and proc.stderr is not None
            out, err = _Lines(proc.stdout), _Lines(proc.stderr)
        except BaseException:
            # Ctrl-C right after the start: the service must not outlive the demo.
            proc.kill()
            proc.wait()
            raise
        returncode: int | None = None
        try:
            ready = out.wait_for("READY ", _START_TIMEOUT)
            if ready is None and out.ended:
                try:
                    status = proc.wait(_ACK_TIMEOUT)
                except subprocess.TimeoutExpired:
                    status = None
                shown = "still running" if status is None else f"status {status}"
                problems.append(f"the service exited before READY ({shown})")
            elif ready is None:
                problems.append(f"the service did not start within {_START_TIMEOUT:g}s")
            else:
                ports = json.loads(ready[len("READY ") :])
                if http_counts is not None:
                    load = _HttpLoad(int(ports["http_port"]), http_counts, options.clients)
                address = ("127.0.0.1", int(ports["port"]))
                with socket.create_connection(address, timeout=_ACK_TIMEOUT) as sock:
                    # Connected: from now on the service may be quiet for as long as a
                    # job takes, and a timeout would end the reading of acknowledgements.
                    sock.settimeout(None)
                    acks = _Acks(sock, counts)
                    _offer_jobs(sock, acks, proc, options, load)
                    deadline = options.wait_time + _ACK_TIMEOUT
                    if not acks.join(deadline):
                        problems.append(f"the service kept its connection open {deadline:g}s")
            try:
                returncode = proc.wait(options.wait_time + _ACK_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append("the service did not exit in time and was killed")
        finally:
            if load is not None and not load.stop(_ACK_TIMEOUT):
                problems.append("HTTP requests still hung after the service had exited")
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
        problems += count_losses(db, counts)
    if returncode is not None and returncode != 0:
        problems.append(f"the service exited with status {returncode}")
    if report is None:
        problems.append("the service printed no shutdown report")
    elif not report.get("ok"):
        problems.append("the shutdown report is not ok")
    if http_counts is not None and http_counts.failed:
        problems.append(f"{http_counts.failed} HTTP requests failed")
    if counts.lost:
        problems.append(f"{len(counts.lost)} acknowledged jobs are not in the database")
    return DemoResult(
        options, counts, http_counts, returncode, report, render, err.seen, skipped, problems
    )


def format_result(result: DemoResult) -> str:
    """The human-readable story of a demo run."""
    o, jobs = result.options, result.jobs
    signal_name = o.stop_signal.name
    # The timeline ends with the summary the service also logged: show it once.
    summary = result.render.splitlines()[-1] if result.render else None
    log = [line for line in result.log if summary is None or not line.endswith(summary)]
    lines = [
        "gracestop demo: a job worker"
        + (f" and an HTTP endpoint ({SERVERS[o.backend]})" if result.http is not None else "")
        + f" on {o.backend}",
        f"  {o.jobs} jobs, one every {o.interval * 1000:g}ms, ~{o.job_time:g}s each "
        f"(seed {o.seed}); {signal_name} after {o.jobs // 2}",
        f"  drain_delay {o.drain_delay:g}s, wrap_up_time {o.wrap_up_time:g}s, "
        f"wait_time {o.wait_time:g}s",
        *(f"  {line}" for line in result.skipped),
        "",
        "service log:",
        *(f"  {line}" for line in log),
        "",
        result.render or "(no shutdown report)",
        "",
        f"jobs: offered {jobs.offered}, queued {len(jobs.queued)}, "
        f"refused {len(jobs.refused)} (after wrap-up began), unanswered {jobs.unanswered}",
        f"      done and acknowledged {len(jobs.done)}, rows 'done' {jobs.rows_done}, "
        f"flushed as 'pending' {jobs.rows_pending}",
        f"      lost {len(jobs.lost)}"
        + (f" ({', '.join(map(str, jobs.lost[:10]))})" if jobs.lost else ""),
    ]
    if result.http is not None:
        h = result.http
        off = (
            "not seen"
            if h.readiness_off_after is None
            else f"{h.readiness_off_after:g}s after {signal_name}"
        )
        lines += [
            f"http: {o.clients} clients on {h.server} stop once /readyz fails: {off}",
            f"      sent {h.sent}, served {h.served}, failed {h.failed}, refused {h.refused}; "
            f"after {signal_name}: sent {h.sent_after_signal}, served {h.served_after_signal}",
        ]
    lines.append("")
    if result.ok:
        lines.append(
            "ok: no job lost, "
            + ("no request failed, " if result.http is not None else "")
            + "shutdown ok, service exit status 0"
        )
    else:
        lines.extend(f"FAILED: {problem}" for problem in result.problems)
    return "\n".join(lines)
