"""The chaos test: the job service is signalled at random moments and loses nothing.

Each iteration starts ``chaos_service.py`` in a real subprocess, waits for a
random number of acknowledgements, sends SIGTERM and, in the ``force`` variant,
a second signal a random number of lines later or right after a random event
line; then it reads the SQLite file and checks every guarantee listed in
``chaos_service.py`` (see :meth:`_chaos.Outcome.problems`). The backend
alternates between iterations; worker count, queue size, job durations and the
moments of the signals come from the seed.

Seeds are random unless ``GRACESTOP_CHAOS_SEED`` is set; a failure prints the
seed and the command that replays it. ``make chaos N=500`` runs many more.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
from pathlib import Path

import pytest
from _chaos import Outcome, Plan, plan_for, run_iteration
from chaos_service import FORCE_EXIT_CODE

pytestmark = [pytest.mark.chaos, pytest.mark.process]

ITERATIONS = 30
BASE_SEED = int(os.environ.get("GRACESTOP_CHAOS_SEED") or random.SystemRandom().randrange(2**31))


def _id(index: int) -> str:
    plan = plan_for(0, index)
    return f"{index:02d}-{plan.backend}-{plan.variant}"


@pytest.mark.timeout(150)
@pytest.mark.parametrize("index", range(ITERATIONS), ids=_id)
def test_signalled_service_loses_and_duplicates_nothing(index: int, tmp_path: Path) -> None:
    plan = plan_for(BASE_SEED, index)
    outcome = run_iteration(plan, tmp_path)
    if outcome.problems():
        pytest.fail(outcome.failure_message(), pytrace=False)
    assert len(outcome.acked) >= plan.acks_before_signal, outcome.failure_message()


# The checks themselves: each broken guarantee is reported.


def _outcome(
    stdout: list[str], rows: dict[int, int], returncode: int = 0, variant: str = "term"
) -> Outcome:
    plan = Plan.draw(7, "asyncio", variant)
    return Outcome(
        plan=plan,
        returncode=returncode,
        elapsed=0.1,
        second_sent=variant == "force",
        stdout=stdout,
        stderr="",
        rows=collections.Counter(rows),
    )


def _finished(forced: bool = False) -> str:
    report = {
        "ok": not forced,
        "forced": forced,
        "forced_by": "signal" if forced else None,
        "trigger": {"kind": "signal", "signal": "SIGTERM"},
    }
    return "FINISHED " + json.dumps(report)


def test_a_clean_run_has_no_problems() -> None:
    outcome = _outcome(["READY", "PRODUCED 1", "ACK 1", _finished()], {1: 1})
    assert outcome.problems() == []


def test_lost_duplicated_phantom_and_unacknowledged_jobs_are_reported() -> None:
    outcome = _outcome(
        ["PRODUCED 1", "PRODUCED 2", "PRODUCED 3", "ACK 1", "ACK 2", "ACK 2", _finished()],
        {2: 2, 3: 1, 9: 1},
    )
    assert outcome.lost == {1}
    assert outcome.duplicated == {2}
    assert outcome.double_acked == {2}
    assert outcome.phantom == {9}
    assert outcome.unacked_persisted == {3, 9}
    text = "\n".join(outcome.problems())
    for what in ("(lost)", "more than once", "never produced", "never acknowledged"):
        assert what in text


def test_work_left_undone_after_one_sigterm_is_reported() -> None:
    outcome = _outcome(["PRODUCED 1", "PRODUCED 2", "ACK 1", _finished()], {1: 1})
    assert outcome.problems() == [
        "1 job(s) produced but never processed after a single SIGTERM: [2]"
    ]


def test_exit_statuses_must_match_the_report() -> None:
    lines = ["PRODUCED 1", "ACK 1"]
    assert _outcome([*lines, _finished()], {1: 1}, returncode=1).problems() == [
        "an unforced shutdown exited with 1, not 0"
    ]
    forced = _outcome([*lines, _finished(forced=True)], {1: 1}, 0, "force")
    assert forced.problems() == [
        f"forced quit exited with 0, not force_exit_code {FORCE_EXIT_CODE}"
    ]
    assert _outcome([*lines, _finished(True)], {1: 1}, FORCE_EXIT_CODE, "force").problems() == []
    assert _outcome(lines, {1: 1}, -signal.SIGTERM).problems() == [
        f"no FINISHED line (exit status {-signal.SIGTERM})"
    ]


def test_a_garbled_line_is_reported_not_raised() -> None:
    outcome = _outcome(["PRODUCED 1", "ACK 1", "ACK 1PRODUCED 2", _finished()], {1: 1})
    assert outcome.problems() == ["a garbled line: 'ACK 1PRODUCED 2'"]
