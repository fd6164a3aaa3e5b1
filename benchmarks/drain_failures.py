"""Failed requests when a server gets SIGTERM under load, as in a Kubernetes rollout.

The same ASGI app (``benchmarks/peers/uvicorn_service.py``) served by plain
uvicorn (``uvicorn.run(app)``, its defaults) and by ``gracestop.uvicorn.serve``
under ``gracestop.run`` with the settings of ``docs/kubernetes.md``
(``drain_delay=5s``, ``wrap_up_time=20s``, ``wait_time=30s``).

Kubernetes sends SIGTERM and removes the pod from the Service at the same time;
until every router has caught up, requests still arrive (about a second on a
small cluster). The benchmark plays that second: 9 clients on loopback (6 keeping
their connection alive, 3 opening one per request, real httpx clients, each
pacing itself to one request every 40 ms) load the server; once 20 requests have
succeeded the parent sends SIGTERM, and the load goes on until a request started
a second after the signal has ended (the load's own records tell, no sleep). The
figure is the number of requests started within that second that failed:
refused, reset, timed out (2 s) or answered with a 5xx. Then the parent waits
for the process to end (gracestop: after its drain delay).

Each round runs both servers, one after the other, alternating which goes first
(3 rounds; ``--smoke``: 1).

    python benchmarks/drain_failures.py [--smoke]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from functools import partial

sys.path.insert(0, os.path.dirname(__file__))

from _bench import Measure, Row, alternate, table
from _httpload import Load
from _procs import Program, ProgramError

#: docs/kubernetes.md's settings.
SETTINGS = ("drain_delay=5s", "wrap_up_time=20s", "wait_time=30s")
#: How long routers still send requests after SIGTERM.
WINDOW = 1.0
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
    """One server under load and SIGTERM: the requests of the window that failed."""
    settings = SETTINGS if side == "gracestop" else ()
    with Program("uvicorn_service.py", side, "load", *settings) as program:
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
            signalled = program.signal()
            load.wait_for_start_after(signalled + WINDOW, timeout=START_TIMEOUT)
        window = load.between(signalled, signalled + WINDOW)
        failed = [r for r in window if not r.ok]
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
    """One row: failed requests in the second after SIGTERM, gracestop vs uvicorn."""
    sides = {"gracestop": Side(), "uvicorn": Side()}
    alternate(1 if smoke else ROUNDS, {name: partial(one, name, s) for name, s in sides.items()})
    ours, theirs = sides["gracestop"], sides["uvicorn"]
    note = (
        f"gracestop.uvicorn.serve with {', '.join(SETTINGS)} vs uvicorn.run(app); "
        f"{describe('gracestop', ours)}; {describe('uvicorn', theirs)}"
    )
    return [
        Row(
            group=f"failed requests in the {WINDOW:g} s after SIGTERM under load",
            case="uvicorn",
            a=Measure("gracestop", "requests", ours.failed),
            b=Measure("uvicorn", "requests", theirs.failed),
            better="lower",
            kind="peer",
            note=note,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    rows = run(args.smoke)
    print(table(rows))
    for row in rows:
        print(f"- {row.note}")


if __name__ == "__main__":
    main()
