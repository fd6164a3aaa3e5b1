"""One chaos iteration: start the job service, signal it at a random moment, audit the database.

Shared by the tests (``test_chaos.py``) and the runner (``run.py``). A
:class:`Plan` is drawn from a seed: the service's shape (workers, queue size, job
durations, drain delay, signal mode) and the moments of the signals (after how
many acknowledgements the SIGTERM goes; in the ``force`` variant, after how many
further lines, or right after which event, a second signal follows).
:func:`run_iteration` plays the plan against a real subprocess and returns an
:class:`Outcome`; :meth:`Outcome.problems` lists every broken guarantee.

Nothing here sleeps: every wait is for a line the service prints or for its
exit, each bounded, and a failure message carries the seed, the command that
replays it and everything the service printed.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from chaos_service import FORCE_EXIT_CODE, WAIT_TIME, WATCHDOG_GRACE

# The pipe reader the process tests use.
sys.path.append(str(Path(__file__).resolve().parent.parent / "process"))

from _harness import _Stream

HERE = Path(__file__).resolve().parent
SERVICE = HERE / "chaos_service.py"
BACKENDS = ("asyncio", "trio")
#: ``term``: one SIGTERM. ``force``: a second signal (TERM or INT) follows.
VARIANTS = ("term", "force")
#: The lines the service prints as its shutdown goes, in this order.
EVENTS = ("STOP-INTAKE", "PRODUCER-STOPPED", "DRAINED", "CLOSE-DB", "DB-CLOSED", "FINISHED")

# Bounds on the waits; generous, since the machine is shared.
START_TIMEOUT = 30.0
ACK_TIMEOUT = 30.0
#: The watchdog ends the service wait_time + watchdog_grace after the SIGTERM at
#: the latest; the margin covers the interpreter's exit on a loaded machine.
EXIT_TIMEOUT = WAIT_TIME + WATCHDOG_GRACE + 5.0


@dataclass(frozen=True)
class Plan:
    """Everything one iteration does, drawn from ``(seed, backend, variant)``."""

    seed: int
    backend: str
    variant: str
    workers: int
    queue_size: int
    job_time: float
    produce_gap: float
    drain_delay: float
    signal_mode: str
    acks_before_signal: int
    second_signal: signal.Signals | None = None
    #: The second signal goes once this many more lines have come after the SIGTERM...
    second_after_lines: int | None = None
    #: ...or right after this event line.
    second_after_event: str | None = None

    @classmethod
    def draw(cls, seed: int, backend: str, variant: str) -> Plan:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}")
        rng = random.Random(f"{seed}/{backend}/{variant}")
        workers = rng.randint(1, 4)
        queue_size = rng.choice([0, 1, 2, 4, 8, 16])
        second: dict[str, Any] = {}
        if variant == "force":
            second["second_signal"] = rng.choice([signal.SIGTERM, signal.SIGINT])
            if rng.random() < 0.5:
                # Up to about as many lines as a whole drain prints.
                second["second_after_lines"] = rng.randint(0, queue_size + workers + len(EVENTS))
            else:
                second["second_after_event"] = rng.choice(EVENTS)
        return cls(
            seed=seed,
            backend=backend,
            variant=variant,
            workers=workers,
            queue_size=queue_size,
            job_time=rng.choice([0.0, 0.002, 0.01, 0.03]),
            produce_gap=rng.choice([0.0, 0.0, 0.005]),
            drain_delay=rng.choice([0.0, 0.0, 0.05, 0.2]),
            signal_mode=rng.choice(["auto", "auto", "handler"]),
            acks_before_signal=rng.randint(0, 40),
            **second,
        )

    def service_args(self, db: Path) -> list[str]:
        return [
            str(db),
            f"--backend={self.backend}",
            f"--seed={self.seed}",
            f"--workers={self.workers}",
            f"--queue-size={self.queue_size}",
            f"--job-time={self.job_time}",
            f"--produce-gap={self.produce_gap}",
            f"--drain-delay={self.drain_delay}",
            f"--signal-mode={self.signal_mode}",
        ]

    def replay_command(self) -> str:
        script = os.path.relpath(HERE / "run.py")
        return (
            f"python {script} --replay {self.seed} "
            f"--backend {self.backend} --variant {self.variant}"
        )

    def describe(self) -> str:
        text = (
            f"seed {self.seed} ({self.backend}, {self.variant}): {self.workers} worker(s), "
            f"queue {self.queue_size}, jobs up to {self.job_time}s, gap up to "
            f"{self.produce_gap}s, drain_delay {self.drain_delay}s, signal_mode "
            f"{self.signal_mode}; SIGTERM after {self.acks_before_signal} acks"
        )
        if self.second_signal is not None:
            when = (
                f"{self.second_after_lines} more lines"
                if self.second_after_lines is not None
                else f"the line {self.second_after_event}"
            )
            text += f", then {self.second_signal.name} after {when}"
        return text


def plan_for(base: int, index: int) -> Plan:
    """The plan of iteration ``index`` of a run seeded with ``base``: the backend
    alternates every iteration, the variant every two, the seed is ``base + index``."""
    backend = BACKENDS[index % len(BACKENDS)]
    variant = VARIANTS[(index // len(BACKENDS)) % len(VARIANTS)]
    return Plan.draw(base + index, backend, variant)


class _Lines(_Stream):
    """A pipe's lines (``tests/process/_harness.py``'s reader), counting the acks."""

    def __init__(self, pipe: IO[str], name: str) -> None:
        self.acks = 0
        super().__init__(pipe, name)

    def _add(self, line: str) -> None:
        super()._add(line)
        if line.startswith("ACK "):
            self.acks += 1

    def count(self) -> int:
        with self._cond:
            return len(self.lines)


@dataclass
class Outcome:
    """What one iteration saw: the service's output, its exit and its database."""

    plan: Plan
    returncode: int | None
    #: Seconds from the SIGTERM to the end of the process (None: never signalled).
    elapsed: float | None
    second_sent: bool
    stdout: list[str]
    stderr: str
    #: Rows per job id in the database (no constraint hides a duplicate).
    rows: collections.Counter[int]
    #: Set when the run itself went wrong (no start, no exit in time, no database).
    failure: str | None = None
    produced: list[int] = field(init=False)
    acked: list[int] = field(init=False)
    report: dict[str, Any] | None = field(init=False)
    #: Lines that should carry a job id or a report but do not parse.
    garbled: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.produced, self.acked, self.report, self.garbled = [], [], None, []
        for line in self.stdout:
            verb, _, arg = line.partition(" ")
            try:
                if verb == "PRODUCED":
                    self.produced.append(int(arg))
                elif verb == "ACK":
                    self.acked.append(int(arg))
                elif verb == "FINISHED":
                    self.report = json.loads(arg)
            except ValueError:
                self.garbled.append(line)

    @property
    def lost(self) -> set[int]:
        """Acknowledged, but not in the database."""
        return set(self.acked) - set(self.rows)

    @property
    def duplicated(self) -> set[int]:
        """In the database more than once."""
        return {job for job, n in self.rows.items() if n > 1}

    @property
    def double_acked(self) -> set[int]:
        return {job for job, n in collections.Counter(self.acked).items() if n > 1}

    @property
    def phantom(self) -> set[int]:
        """In the database, but never produced."""
        return set(self.rows) - set(self.produced)

    @property
    def unacked_persisted(self) -> set[int]:
        """In the database, but never acknowledged."""
        return set(self.rows) - set(self.acked)

    @property
    def unprocessed(self) -> set[int]:
        """Produced, but never acknowledged."""
        return set(self.produced) - set(self.acked)

    @property
    def forced(self) -> bool:
        return bool(self.report is not None and self.report.get("forced"))

    @property
    def signal_after_finish(self) -> bool:
        """Whether the second signal came once the shutdown had finished: logged by
        the coordinator, or ignored by gracestop.run while the process exited."""
        return self.second_sent and "after the shutdown" in self.stderr

    def problems(self) -> list[str]:
        """Every guarantee this run broke (empty when all held)."""
        if self.failure is not None:
            return [self.failure]
        found: list[str] = [f"a garbled line: {line!r}" for line in self.garbled[:5]]

        def check(bad: set[int], what: str) -> None:
            if bad:
                found.append(f"{len(bad)} job(s) {what}: {sorted(bad)[:20]}")

        check(self.lost, "acknowledged but not in the database (lost)")
        check(self.duplicated, "in the database more than once")
        check(self.double_acked, "acknowledged more than once")
        check(self.phantom, "in the database but never produced")
        # The ACK follows the commit with no checkpoint between: only a kill
        # (the watchdog's os._exit) could separate them, and nothing here may
        # need the watchdog.
        check(self.unacked_persisted, "in the database but never acknowledged")
        if self.plan.variant == "term":
            # One signal: the drain processes everything that was produced.
            check(self.unprocessed, "produced but never processed after a single SIGTERM")
        found.extend(self._exit_problems())
        if "Traceback" in self.stderr:
            found.append("a traceback on stderr")
        if "outlived its shutdown deadline" in self.stderr:
            found.append("the watchdog had to end the process")
        return found

    def _exit_problems(self) -> list[str]:
        rc, report = self.returncode, self.report
        if report is None:
            return [f"no FINISHED line (exit status {rc})"]
        trigger = report["trigger"]
        sent = {"SIGTERM"}
        if self.second_sent and self.plan.second_signal is not None:
            # Two signals pending at once reach the process lowest number first
            # (SIGINT before SIGTERM): then the second one sent is the trigger.
            sent.add(self.plan.second_signal.name)
        if trigger["kind"] != "signal" or trigger["signal"] not in sent:
            return [f"the shutdown was not triggered by a signal sent: {trigger}"]
        if self.forced:
            if not self.second_sent:
                return [f"forced without a second signal: {report.get('forced_by')}"]
            if report.get("forced_by") != "signal":
                return [f"forced by {report.get('forced_by')}, not by the second signal"]
            if rc != FORCE_EXIT_CODE:
                return [f"forced quit exited with {rc}, not force_exit_code {FORCE_EXIT_CODE}"]
            return []
        if rc != 0:
            return [f"an unforced shutdown exited with {rc}, not 0"]
        if not report.get("ok"):
            return ["an unforced shutdown's report is not ok"]
        return []

    def failure_message(self) -> str:
        problems = "\n".join(f"  - {p}" for p in self.problems())
        return (
            f"chaos {self.plan.describe()}\n"
            f"replay: {self.plan.replay_command()}\n"
            f"problems:\n{problems}\n"
            f"exit status {self.returncode}, {self.elapsed_text()} after the SIGTERM, "
            f"second signal {'sent' if self.second_sent else 'not sent'}; "
            f"produced {len(self.produced)}, acknowledged {len(self.acked)}, "
            f"rows {sum(self.rows.values())}\n"
            f"--- stdout:\n" + "\n".join(self.stdout) + f"\n--- stderr:\n{self.stderr}"
        )

    def elapsed_text(self) -> str:
        return "-" if self.elapsed is None else f"{self.elapsed:.2f}s"


def read_rows(db: Path) -> collections.Counter[int]:
    """Rows per job id. Opened read-write so that SQLite can roll back a journal a
    killed process left behind."""
    conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True)
    try:
        return collections.Counter(int(job) for (job,) in conn.execute("SELECT job FROM jobs"))
    finally:
        conn.close()


def run_iteration(plan: Plan, workdir: Path) -> Outcome:
    """Play ``plan`` against a fresh service; every wait is bounded."""
    db = workdir / f"chaos-{plan.seed}-{plan.backend}-{plan.variant}.sqlite3"
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.Popen(
        [sys.executable, "-u", str(SERVICE), *plan.service_args(db)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out = _Lines(proc.stdout, "chaos-stdout")
    err = _Lines(proc.stderr, "chaos-stderr")
    failure: str | None = None
    elapsed: float | None = None
    second_sent = False
    try:
        if not out.wait(lambda: "READY" in out.lines, START_TIMEOUT):
            failure = f"no READY line within {START_TIMEOUT}s"
        elif not out.wait(lambda: out.acks >= plan.acks_before_signal, ACK_TIMEOUT):
            failure = f"fewer than {plan.acks_before_signal} acks within {ACK_TIMEOUT}s"
        else:
            sent = time.monotonic()
            # Not reaped until the end: a signal sent after the exit meets a zombie.
            os.kill(proc.pid, signal.SIGTERM)
            if plan.second_signal is not None:
                second_sent = _second_signal(proc, out, plan, sent)
            try:
                proc.wait(max(0.0, sent + EXIT_TIMEOUT - time.monotonic()))
                elapsed = time.monotonic() - sent
            except subprocess.TimeoutExpired:
                failure = f"did not exit within {EXIT_TIMEOUT}s of the SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        out.join(5)
        err.join(5)
        proc.stdout.close()
        proc.stderr.close()
    rows: collections.Counter[int] = collections.Counter()
    try:
        rows = read_rows(db)
    except sqlite3.Error as exc:
        failure = failure or f"cannot read the database {db}: {exc}"
    return Outcome(
        plan=plan,
        returncode=proc.returncode,
        elapsed=elapsed,
        second_sent=second_sent,
        stdout=out.snapshot(),
        stderr="\n".join(err.snapshot()),
        rows=rows,
        failure=failure,
    )


def _second_signal(proc: subprocess.Popen[str], out: _Lines, plan: Plan, sent: float) -> bool:
    """Send the second signal at the planned line; False if the service ended first."""
    assert plan.second_signal is not None
    mark = out.count()
    if plan.second_after_lines is not None:
        target = mark + plan.second_after_lines

        def due() -> bool:
            return len(out.lines) >= target
    else:
        event = plan.second_after_event

        def due() -> bool:
            return any(line.partition(" ")[0] == event for line in out.lines[mark:])

    if not out.wait(due, max(0.0, sent + EXIT_TIMEOUT - time.monotonic())):
        return False
    os.kill(proc.pid, plan.second_signal)
    return True


@dataclass
class Totals:
    """Counts over many iterations, for ``make chaos``."""

    iterations: int = 0
    failed: int = 0
    by_backend: collections.Counter[str] = field(default_factory=collections.Counter)
    by_variant: collections.Counter[str] = field(default_factory=collections.Counter)
    exit_codes: collections.Counter[int | None] = field(default_factory=collections.Counter)
    second_sent: int = 0
    forced: int = 0
    #: Second signals that came once the shutdown had finished (logged, ignored).
    after_finish: int = 0
    produced: int = 0
    acknowledged: int = 0
    persisted: int = 0
    unacked_persisted: int = 0
    unprocessed: int = 0
    lost: int = 0
    duplicated: int = 0
    phantom: int = 0
    slowest_exit: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.iterations += 1
        self.failed += bool(outcome.problems())
        self.by_backend[outcome.plan.backend] += 1
        self.by_variant[outcome.plan.variant] += 1
        self.exit_codes[outcome.returncode] += 1
        self.second_sent += outcome.second_sent
        self.forced += outcome.forced
        self.after_finish += outcome.signal_after_finish
        self.produced += len(set(outcome.produced))
        self.acknowledged += len(set(outcome.acked))
        self.persisted += sum(outcome.rows.values())
        self.unacked_persisted += len(outcome.unacked_persisted)
        self.unprocessed += len(outcome.unprocessed)
        self.lost += len(outcome.lost)
        self.duplicated += len(outcome.duplicated)
        self.phantom += len(outcome.phantom)
        if outcome.elapsed is not None:
            self.slowest_exit = max(self.slowest_exit, outcome.elapsed)

    def render(self) -> str:
        def counts(counter: collections.Counter[Any]) -> str:
            return ", ".join(f"{key} {n}" for key, n in sorted(counter.items(), key=str))

        return "\n".join(
            [
                f"iterations        {self.iterations} ({self.failed} failed)",
                f"  by backend      {counts(self.by_backend)}",
                f"  by variant      {counts(self.by_variant)}",
                f"second signals    {self.second_sent} sent: {self.forced} forced the quit, "
                f"{self.after_finish} came after the shutdown had finished (logged), "
                f"{self.second_sent - self.forced - self.after_finish} had no visible effect "
                "(merged with the SIGTERM, or ignored in the interpreter's last clean-up)",
                f"exit codes        {counts(self.exit_codes)}",
                f"slowest exit      {self.slowest_exit:.2f}s after the SIGTERM",
                f"jobs produced     {self.produced}",
                f"  acknowledged    {self.acknowledged}",
                f"  persisted       {self.persisted} rows",
                f"  not processed   {self.unprocessed} (produced, never acknowledged)",
                f"  unacknowledged  {self.unacked_persisted} (persisted, never acknowledged)",
                f"  lost            {self.lost}",
                f"  duplicated      {self.duplicated}",
                f"  never produced  {self.phantom}",
            ]
        )
