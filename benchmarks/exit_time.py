"""Time to exit after SIGTERM when something at the shutdown goes wrong.

Three situations, each on every stack where it applies, gracestop against the
tool a user would otherwise pick for that stack, each with its defaults (what most
users run), and, where the peer has a setting that bounds it, a second row with the
peer tuned to the same budget as gracestop:

- **blocking**: a cleanup blocks the event loop (``time.sleep(60)``): aiorun's
  ``shutdown_callback``, uvicorn's lifespan shutdown, aiohttp's ``on_cleanup``;
- **stream**: an endless server-sent event stream is open, a client connected and
  reading (uvicorn, aiohttp; aiorun serves no HTTP);
- **stubborn**: a background task swallows its cancellation and goes on (aiorun's
  main task, a task of uvicorn's lifespan, of an aiohttp cleanup context).

The budgets compared: gracestop ends a stuck process at ``wait_time`` +
``watchdog_grace`` (its total budget ``B``), so aiorun gets
``timeout_task_shutdown=B``; for the stream, gracestop cuts open responses at the
end of its wrap-up window ``W`` (``wrap_up_time``), so uvicorn gets
``timeout_graceful_shutdown=W`` and aiohttp ``shutdown_timeout=W``. Where the peer
has no setting that bounds the situation, the default row's note says so.

The programs are in ``benchmarks/peers/`` (``background_worker.py``, ``uvicorn_service.py``,
``aiohttp_service.py``): each holds both sides, the peer's and the equivalent
program a gracestop user writes (``gracestop.run`` with a hook,
``gracestop.uvicorn.serve``, ``gracestop.aiohttp.serve``). Each sample is a fresh
child process: the parent waits for its ``READY`` line, and for HTTP services for
a response (``GET /``) or, for the stream, the first event read by a client in the
parent; then it sends SIGTERM and measures on ``time.monotonic()`` until the
process has ended (a pidfd tells, no polling). A process still running at the cap
(15 s) is killed and recorded at the cap as capped ("> 15 s").

Each row alternates gracestop and the peer round by round (3 rounds). Since the
capped sides spend most of their time asleep, the rows run two at a time, which
keeps the whole run near four minutes; the figures gracestop is measured on are its
deadlines (the end of the wrap-up window, ``wait_time`` + ``watchdog_grace``),
which a second idle child does not move. ``--smoke`` runs one round with a 3 s cap
and ``wait_time=1.5s`` for gracestop (the watchdog ends a stuck process at 2 s; the
tuned peers get that budget too).

    python benchmarks/exit_time.py [--smoke]
"""

from __future__ import annotations

import collections
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Literal

import httpx

import gracestop

sys.path.insert(0, os.path.dirname(__file__))

from _bench import Measure, Row, alternate, cli
from _httpload import iter_sse_events
from _procs import Program, ProgramError

CAP = 15.0
SMOKE_CAP = 3.0
#: gracestop's settings in smoke mode: it must finish well within the short cap.
SMOKE_SETTINGS = ("wait_time=1.5s",)
ROUNDS = 3
#: Rows run at the same time (see the module docstring).
LANES = 2
SMOKE_LANES = 4
#: Generous: children start on a busy shared machine.
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Case:
    """One row: a situation on one stack."""

    situation: str
    script: str
    peer: str  # the peer's side name in the script
    label: str  # how the table names the peer
    http: bool
    setup: str  # how each side is written, for the note
    #: The peer's setting that bounds the situation, and which of gracestop's budgets
    #: it is given: ``total`` (wait_time + watchdog_grace) or ``wrap_up`` (wrap_up_time).
    knob: str | None = None
    budget: Literal["total", "wrap_up"] = "total"
    #: For the default row: why the peer has no setting that helps, or what the tuned
    #: row shows.
    remark: str = ""
    #: The peer's settings (``name=seconds``); empty: its defaults.
    peer_settings: tuple[str, ...] = ()
    #: For a tuned row, the note's last word: how the two sides end.
    ending_remark: str = ""

    @property
    def case(self) -> str:
        """The table's name of the row."""
        return ", ".join((self.label, *self.peer_settings))


SITUATIONS = {
    "blocking": "cleanup blocks the event loop",
    "stream": "open SSE stream, client reading",
    "stubborn": "task swallows its cancellation",
}

CASES = [
    Case(
        "blocking",
        "background_worker.py",
        "aiorun",
        "aiorun",
        False,
        "aiorun.run(main(), shutdown_callback=cleanup) vs gracestop.run with an on_shutdown hook",
        remark=(
            "aiorun has no setting that bounds this: timeout_task_shutdown only starts "
            "once shutdown_callback has returned, and nothing in a blocked loop can run"
        ),
    ),
    Case(
        "blocking",
        "uvicorn_service.py",
        "uvicorn",
        "uvicorn",
        True,
        "uvicorn.run(app) vs gracestop.uvicorn.serve, lifespan shutdown sleeps",
        remark=(
            "uvicorn has no setting that bounds this: timeout_graceful_shutdown bounds "
            "connections and tasks, not the lifespan shutdown, and a blocked loop runs nothing"
        ),
    ),
    Case(
        "blocking",
        "aiohttp_service.py",
        "aiohttp",
        "aiohttp run_app",
        True,
        "web.run_app(app) vs gracestop.aiohttp.serve, on_cleanup sleeps",
        remark=(
            "aiohttp has no setting that bounds this: shutdown_timeout bounds the handlers "
            "in flight, not on_cleanup, and a blocked loop runs nothing"
        ),
    ),
    Case(
        "stream",
        "uvicorn_service.py",
        "uvicorn",
        "uvicorn",
        True,
        "uvicorn.run(app) vs gracestop.uvicorn.serve",
        knob="timeout_graceful_shutdown",
        budget="wrap_up",
        ending_remark=(
            "uvicorn cancels the response at its timeout and ends by raising SIGTERM "
            "again (rc -15); gracestop cuts it at the end of the wrap-up window"
        ),
    ),
    Case(
        "stream",
        "aiohttp_service.py",
        "aiohttp",
        "aiohttp run_app",
        True,
        "web.run_app(app) vs gracestop.aiohttp.serve",
        knob="shutdown_timeout",
        budget="wrap_up",
        ending_remark=(
            "aiohttp applies shutdown_timeout twice to a response in flight: it waits that "
            "long for the handler, then cancels it and waits up to that long again, so it "
            "ends near twice the setting"
        ),
    ),
    Case(
        "stubborn",
        "background_worker.py",
        "aiorun",
        "aiorun",
        False,
        "a task of aiorun.run(main()) vs a task in gracestop.run's task group",
        knob="timeout_task_shutdown",
        budget="total",
        ending_remark=(
            "aiorun abandons the task at its timeout and exits 0, with only a logged "
            "WARNING naming the task's frame; gracestop's watchdog exits with "
            "force_exit_code (1), after printing what was pending and every thread's stack"
        ),
    ),
    Case(
        "stubborn",
        "uvicorn_service.py",
        "uvicorn",
        "uvicorn",
        True,
        "a lifespan task, cancelled and awaited at shutdown; uvicorn.run(app) vs "
        "gracestop.uvicorn.serve",
        remark=(
            "uvicorn has no setting that bounds this: the lifespan shutdown has no timeout "
            "(timeout_graceful_shutdown ends before it)"
        ),
    ),
    Case(
        "stubborn",
        "aiohttp_service.py",
        "aiohttp",
        "aiohttp run_app",
        True,
        "a cleanup-context task; web.run_app(app) vs gracestop.aiohttp.serve",
        remark=(
            "aiohttp has no setting that bounds this: shutdown_timeout bounds the handlers "
            "in flight, not cleanup contexts"
        ),
    ),
]


@dataclass
class Side:
    """The samples of one side of a row, and how each run ended."""

    samples: list[float] = field(default_factory=list)
    endings: list[str] = field(default_factory=list)
    capped: int = 0


class _SseClient:
    """A client in this process reading an endless SSE stream on its own thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.first = threading.Event()
        self.events = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with (
                httpx.Client(timeout=START_TIMEOUT) as client,
                client.stream("GET", self.url) as response,
            ):
                for _ in iter_sse_events(response):
                    self.events += 1
                    self.first.set()
        except httpx.HTTPError:
            pass  # the server cut the stream or the process ended: what is measured

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def one(case: Case, side: str, cap: float, settings: tuple[str, ...], record: Side) -> float:
    """Start one child, make it ready, SIGTERM it; the time until it has ended."""
    args = (side, case.situation, *(settings if side == "gracestop" else case.peer_settings))
    stream: _SseClient | None = None
    with Program(case.script, *args) as program:
        try:
            ready = program.expect("READY", START_TIMEOUT)
            if case.http:
                base = f"http://127.0.0.1:{ready.split()[1]}"
                if case.situation == "stream":
                    stream = _SseClient(f"{base}/events")
                    if not stream.first.wait(START_TIMEOUT):
                        raise ProgramError(f"no event from /events\n{program.output()}")
                else:
                    with httpx.Client(timeout=START_TIMEOUT) as client:
                        client.get(f"{base}/").raise_for_status()
            sent = program.signal()
            ended = program.exited_within(cap)
        finally:
            # The stream's client ends with the process: kill it first.
            program.close()
            if stream is not None:
                stream.join(10)
    if ended is None:
        record.capped += 1
        record.endings.append(f"killed at {cap:g} s")
        record.samples.append(cap)
        return cap
    record.endings.append(f"rc {program.returncode}")
    record.samples.append(ended - sent)
    return ended - sent


def endings(side: Side) -> str:
    counts = collections.Counter(side.endings)
    return ", ".join(f"{what} x{n}" if n > 1 else what for what, n in counts.items())


def measure(case: Case, rounds: int, cap: float, settings: tuple[str, ...]) -> Row:
    """One row: ``rounds`` alternating rounds of gracestop and the peer."""
    sides = {"gracestop": Side(), case.peer: Side()}
    variants: dict[str, Callable[[], float]] = {
        name: partial(one, case, name, cap, settings, side) for name, side in sides.items()
    }
    alternate(rounds, variants)
    ours, theirs = sides["gracestop"], sides[case.peer]
    if settings:
        config = ", ".join(settings)
    else:
        d = gracestop.ShutdownConfig()
        config = (
            f"defaults (wrap_up_time {d.wrap_up_time:g} s, wait_time {d.wait_time:g} s, "
            f"watchdog_grace {d.watchdog_grace:g} s)"
        )
    given = (
        f"; {case.label} given {', '.join(case.peer_settings)} (the same budget)"
        if case.peer_settings
        else ""
    )
    note = (
        f"{case.setup}; gracestop {config}{given}. "
        f"Ended: gracestop {endings(ours)}; {case.label} {endings(theirs)}"
    )
    for remark in (case.remark, case.ending_remark if case.peer_settings else ""):
        if remark:
            note += f". {remark[0].upper()}{remark[1:]}"
    return Row(
        group=f"time to exit after SIGTERM: {SITUATIONS[case.situation]}",
        case=case.case,
        a=Measure("gracestop", "s", ours.samples, capped=ours.capped, cap=cap),
        b=Measure(case.label, "s", theirs.samples, capped=theirs.capped, cap=cap),
        better="lower",
        kind="peer",
        note=note,
    )


def budget(case: Case, config: gracestop.ShutdownConfig) -> float:
    """The seconds gracestop gives itself in ``case``'s situation (module docstring)."""
    if case.budget == "wrap_up":
        return config.wrap_up_time
    return config.wait_time + config.watchdog_grace


def rows(settings: tuple[str, ...]) -> list[Case]:
    """Every case of ``CASES``, each tunable one followed by its same-budget twin."""
    config = gracestop.ShutdownConfig.from_mapping(dict(s.split("=", 1) for s in settings))
    cases: list[Case] = []
    for case in CASES:
        if case.knob is None:
            cases.append(case)
            continue
        tuned = f"{case.knob}={budget(case, config):g}"
        remark = f"see the row with {tuned} for the peer given the same budget"
        cases += [replace(case, remark=remark), replace(case, peer_settings=(tuned,))]
    return cases


def run(smoke: bool) -> list[Row]:
    """One row per situation and stack, and one per tuned peer (module docstring)."""
    rounds = 1 if smoke else ROUNDS
    cap = SMOKE_CAP if smoke else CAP
    settings = SMOKE_SETTINGS if smoke else ()
    with ThreadPoolExecutor(SMOKE_LANES if smoke else LANES) as pool:
        return list(pool.map(lambda case: measure(case, rounds, cap, settings), rows(settings)))


if __name__ == "__main__":
    cli(run, __doc__)
