"""Failed requests when a server gets SIGTERM under load, as in a Kubernetes rollout.

The same ASGI app (``benchmarks/peers/uvicorn_service.py``) served by plain
uvicorn (``uvicorn.run(app)``, its defaults) and by ``gracestop.uvicorn.serve``
under ``gracestop.run`` with the settings of ``docs/kubernetes.md``
(``drain_delay=5s``, ``wrap_up_time=20s``, ``wait_time=30s``). Plain uvicorn is
run twice: as is ("no preStop"), and with the usual Kubernetes workaround, a
``preStop: sleep`` as long as gracestop's ``drain_delay``: the kubelet runs the
hook when the pod is removed from the Service and sends SIGTERM only once it is
over, so the parent plays it by sending SIGTERM ``drain_delay`` seconds after the
moment the others get theirs.

Kubernetes sends SIGTERM and removes the pod from the Service at the same time;
until every router has caught up, requests still arrive (about a second on a
small cluster). The benchmark plays that second: 9 clients on loopback (6 keeping
their connection alive, 3 opening one per request, real httpx clients, each
pacing itself to one request every 40 ms) load the server; once 20 requests have
succeeded the parent sends SIGTERM (with preStop: starts the hook's sleep), and the
load goes on until a request started a second after that moment has ended (the
load's own records tell, no sleep). The figure is the number of requests started
within that second that failed: refused, reset, timed out (2 s) or answered with
a 5xx. Then the parent waits for the process to end (gracestop: after its drain
delay; with preStop: SIGTERM once the hook's sleep is over, then the exit).

Each round runs the three servers, one after the other, rotating which goes first
(3 rounds; ``--smoke``: 1); both rows compare with the same gracestop samples.

    python benchmarks/drain_failures.py [--smoke]
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from functools import partial

sys.path.insert(0, os.path.dirname(__file__))

from _bench import Measure, Row, alternate, cli
from _httpload import Load
from _procs import Program, ProgramError

import gracestop

#: docs/kubernetes.md's settings.
SETTINGS = ("drain_delay=5s", "wrap_up_time=20s", "wait_time=30s")
#: How long routers still send requests after SIGTERM.
WINDOW = 1.0
#: The preStop hook's sleep: gracestop's drain_delay.
PRESTOP = gracestop.ShutdownConfig.from_mapping(dict(s.split("=", 1) for s in SETTINGS)).drain_delay
ROUNDS = 3
START_TIMEOUT = 30.0
#: Bound on the exit once the load is over: gracestop's wait_time and a margin.
EXIT_TIMEOUT = 40.0


@dataclass
class Side:
    """One server's failures per round, and what it was sent."""

    failed: list[float] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    endings: list[str] = field(default_factory=list)


def one(side: str, record: Side) -> float:
    """One server under load and SIGTERM: the requests of the window that failed.

    ``side`` is ``gracestop``, ``uvicorn`` or ``prestop`` (plain uvicorn behind a
    ``preStop: sleep`` of ``PRESTOP`` seconds).
    """
    settings = SETTINGS if side == "gracestop" else ()
    server = "uvicorn" if side == "prestop" else side
    with Program("uvicorn_service.py", server, "load", *settings) as program:
        port = int(program.expect("READY", START_TIMEOUT).split()[1])
        with Load(
            f"http://127.0.0.1:{port}",
            ["/"],
            keepalive=6,
            fresh=3,
            interval=0.04,
            max_requests=100_000,
            max_duration=120.0,
            timeout=2.0,
        ) as load:
            load.wait_for_requests(20, timeout=START_TIMEOUT)
            # The moment the pod leaves the Service: SIGTERM, or the preStop hook starts.
            signalled = time.monotonic() if side == "prestop" else program.signal()
            load.wait_for_start_after(signalled + WINDOW, timeout=START_TIMEOUT)
        window = load.between(signalled, signalled + WINDOW)
        failed = [r for r in window if not r.ok]
        if side == "prestop":
            # The hook's sleep itself: what is being played, not a synchronisation.
            time.sleep(max(0.0, signalled + PRESTOP - time.monotonic()))
            program.signal()
        if program.exited_within(EXIT_TIMEOUT) is None:
            raise ProgramError(f"still running {EXIT_TIMEOUT}s after SIGTERM\n{program.output()}")
    record.failed.append(float(len(failed)))
    record.sent.append(len(window))
    record.endings.append(f"rc {program.returncode}")
    for r in failed:
        key = r.error if r.error is not None else str(r.status)
        record.outcomes[key] = record.outcomes.get(key, 0) + 1
    return float(len(failed))


def describe(name: str, side: Side) -> str:
    counts = ", ".join(f"{what} {n}" for what, n in sorted(side.outcomes.items()))
    sent = "/".join(str(n) for n in side.sent)
    failed = "/".join(f"{n:.0f}" for n in side.failed)
    return (
        f"{name}: {failed} failed of {sent} sent in the window"
        f"{f' ({counts})' if counts else ''}, {', '.join(sorted(set(side.endings)))}"
    )


def run(smoke: bool) -> list[Row]:
    """Failed requests in the second after SIGTERM: gracestop vs plain uvicorn, without
    and with a preStop sleep."""
    sides = {"gracestop": Side(), "uvicorn": Side(), "prestop": Side()}
    alternate(1 if smoke else ROUNDS, {name: partial(one, name, s) for name, s in sides.items()})
    ours, bare, prestop = sides["gracestop"], sides["uvicorn"], sides["prestop"]
    group = f"failed requests in the {WINDOW:g} s after SIGTERM under load"
    given = f"gracestop.uvicorn.serve with {', '.join(SETTINGS)}"
    return [
        Row(
            group=group,
            case="uvicorn, no preStop",
            a=Measure("gracestop", "requests", ours.failed),
            b=Measure("uvicorn", "requests", bare.failed),
            better="lower",
            kind="peer",
            note=(
                f"{given} vs uvicorn.run(app), SIGTERM as the pod leaves the Service; "
                f"{describe('gracestop', ours)}; {describe('uvicorn', bare)}"
            ),
        ),
        Row(
            group=group,
            case=f"uvicorn, preStop sleep {PRESTOP:g}",
            a=Measure("gracestop", "requests", ours.failed),
            b=Measure(f"uvicorn + preStop sleep {PRESTOP:g}", "requests", prestop.failed),
            better="lower",
            kind="peer",
            note=(
                f"{given} vs uvicorn.run(app) behind a preStop: sleep {PRESTOP:g} (the same "
                f"{PRESTOP:g} s; SIGTERM once the sleep is over, the window counted from the "
                f"moment the pod leaves the Service, as for gracestop); "
                f"{describe('gracestop', ours)}; {describe('uvicorn + preStop', prestop)}. "
                "An exec preStop sleep needs a sleep binary in the image (Kubernetes 1.30+ "
                "also has a sleep action)"
            ),
        ),
    ]


if __name__ == "__main__":
    cli(run, __doc__)
