"""Reports: summary, render and to_dict on fixed data."""

from __future__ import annotations

import datetime as dt
import json
import signal

import pytest

from gracestop import HookResult, HookStatus, Phase, PhaseSpan, ShutdownReport, State, Trigger

AT = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)


def fixed_report() -> ShutdownReport:
    return ShutdownReport(
        trigger=Trigger("signal", signal=signal.SIGTERM, reason="SIGTERM", at=AT),
        results=(
            HookResult("flush", Phase.WRAP_UP, 0, HookStatus.OK, 0.0, 2.0),
            HookResult("late-one", Phase.WRAP_UP, 0, HookStatus.OK, 1.0, 0.5, late=True),
            HookResult(
                "close-db", Phase.SHUTDOWN, 0, HookStatus.FAILED, 2.0, 0.5, ValueError("gone")
            ),
            HookResult("never", Phase.SHUTDOWN, 5, HookStatus.CANCELLED),
        ),
        forced=False,
        duration=4.0,
        open_holds=("request",),
        phases=(
            PhaseSpan("drain", 0.0, 0.0),
            PhaseSpan("wrap_up", 0.0, 2.0),
            PhaseSpan("shutdown", 2.0, 4.0),
        ),
        wait_time=5.5,
    )


def test_summary_counts_and_outcome() -> None:
    report = fixed_report()
    assert not report.ok
    assert report.summary() == (
        "shutdown with failures in 4.000s: 4 hooks, 2 ok, 1 failed, 1 cancelled"
    )
    assert [r.name for r in report.by_status(HookStatus.OK)] == ["flush", "late-one"]


def test_render_draws_an_aligned_timeline() -> None:
    lines = fixed_report().render(width=8).splitlines()
    assert lines[0] == (
        "shutdown with failures in 4.000s: 4 hooks, 2 ok, 1 failed, 1 cancelled (received SIGTERM)"
    )
    assert lines[1:9] == [
        "  stage/hook         status        start      took  timeline",
        "  drain              -            0.000s    0.000s  |#       |",
        "  wrap_up            -            0.000s    2.000s  |####    |",
        "    flush            ok           0.000s    2.000s  |####    |",
        "    late-one (late)  ok           1.000s    0.500s  |  #     |",
        "  shutdown           -            2.000s    2.000s  |    ####|",
        "    close-db         failed       2.000s    0.500s  |    #   |",
        "    never            cancelled         -         -  |        |",
    ]
    assert lines[9] == "  holds still open when wrap-up time ran out: request"
    assert lines[10] == "  close-db failed: ValueError: gone"


def test_render_lists_hooks_of_phases_that_never_started() -> None:
    report = ShutdownReport(
        trigger=Trigger("manual", reason="test", at=AT),
        results=(HookResult("orphan", Phase.SHUTDOWN, 0, HookStatus.CANCELLED),),
        forced=True,
        forced_by="signal",
        duration=0.1,
        phases=(PhaseSpan("wrap_up", 0.0, None),),
    )
    text = report.render()
    assert "orphan [shutdown]" in text
    assert "forced by signal" in text
    assert "shutdown requested (test)" in text


def test_to_dict_is_json_serialisable_and_complete() -> None:
    data = json.loads(json.dumps(fixed_report().to_dict()))
    assert data["ok"] is False
    assert data["trigger"] == {
        "kind": "signal",
        "signal": "SIGTERM",
        "reason": "SIGTERM",
        "at": "2026-11-28T12:00:00+00:00",
    }
    assert data["counts"] == {"ok": 2, "failed": 1, "cancelled": 1}
    assert data["open_holds"] == ["request"]
    assert data["phases"][1] == {"name": "wrap_up", "start": 0.0, "end": 2.0}
    failed = data["results"][2]
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "ValueError"
    assert failed["error"]["message"] == "gone"
    assert data["results"][1]["late"] is True
    assert data["results"][3]["started_at"] is None


def test_trigger_descriptions() -> None:
    assert Trigger("signal", signal=signal.SIGINT).describe() == "received SIGINT"
    assert Trigger("manual").describe() == "shutdown requested"
    assert Trigger("manual", reason="deploy").describe() == "shutdown requested (deploy)"
    assert Trigger("exit").describe() == "the service block ended"
    assert Trigger("error", reason="ValueError: x").describe() == (
        "the service block raised ValueError: x"
    )
    assert Trigger("error").describe() == "the service block raised"
    assert Trigger("exit", reason="SystemExit(0)").describe() == (
        "the service block ended (SystemExit(0))"
    )
    assert Trigger("cancelled").describe() == "the service block was cancelled"
    assert Trigger("manual").at.tzinfo is not None


def test_bad_report_input_is_refused() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        Trigger("bogus")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="signal"):
        Trigger("signal", signal=15)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reason"):
        Trigger("manual", reason=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="width"):
        fixed_report().render(width=0)
    with pytest.raises(TypeError, match="width"):
        fixed_report().render(width="wide")  # type: ignore[arg-type]


def test_enums_print_as_their_values_and_states_are_ordered() -> None:
    assert str(Phase.WRAP_UP) == "wrap_up"
    assert str(HookStatus.TIMED_OUT) == "timed_out"
    assert str(State.DRAINING) == "draining"
    ranks = [s.rank for s in State]
    assert ranks == sorted(ranks)
    assert State.IDLE.rank == 0
    assert HookStatus.OK.final
    assert not HookStatus.RUNNING.final
