"""Reports: summary, render and to_dict on fixed data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import signal
import sys

import pytest

from gracestop import HookResult, HookStatus, Phase, PhaseSpan, ShutdownReport, State, Trigger
from gracestop._report import REPORT_SCHEMA, REPORT_VERSION

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


UNICODE_72 = [
    "gracestop: received SIGTERM at 2026-11-28 12:00:00Z, deadline 5.5s",
    "  stage / hook       status        start    took  0s              4.000s",
    "  drain                           0.000s  0.000s  ━·····················",
    "  wrap-up                         0.000s  2.000s  ━━━━━━━━━━━···········",
    "    flush            ✓ ok         0.000s  2.000s  ███████████···········",
    "    late-one (late)  ✓ ok         1.000s  0.500s  ·····████·············",
    "  shutdown                        2.000s  2.000s  ···········━━━━━━━━━━━",
    "    close-db         ✗ failed     2.000s  0.500s  ···········███········",
    "      ↳ ValueError: gone",
    "    never            – cancelled       -       -  ······················",  # noqa: RUF001
    "  ⚠ holds still open when wrap-up time ran out: request",
    "shutdown with failures in 4.000s: 4 hooks, 2 ok, 1 failed, 1 cancelled",
]

ASCII_60 = [
    "gracestop: received SIGTERM at 2026-11-28 12:00:00Z",
    "  deadline 5.5s",
    "  stage / hook  status        start    took  0s       4.000s",
    "  drain                      0.000s  0.000s  =..............",
    "  wrap-up                    0.000s  2.000s  ========.......",
    "    flush       + ok         0.000s  2.000s  ########.......",
    "    late-on...  + ok         1.000s  0.500s  ...###.........",
    "  shutdown                   2.000s  2.000s  .......========",
    "    close-db    x failed     2.000s  0.500s  .......###.....",
    "      -> ValueError: gone",
    "    never       - cancelled       -       -  ...............",
    "  !! holds still open when wrap-up time ran out: request",
    "shutdown with failures in 4.000s: 4 hooks, 2 ok, 1 failed, 1",
    "  cancelled",
]

# ESC[...m sequences spelled out: bold 1, dim 2, red 31, green 32, yellow 33, cyan 36.
B, D, R, G, Y, C, X = (f"\x1b[{c}m" for c in ("1", "2", "31", "32", "33", "36", "0"))
COLOUR_ASCII_72 = [
    f"{B}gracestop: received SIGTERM at 2026-11-28 12:00:00Z, deadline 5.5s{X}",
    f"{D}  stage / hook       status        start    took  0s              4.000s{X}",
    f"  {B}drain            {X}               0.000s  0.000s  {C}={X}{D}{'.' * 21}{X}",
    f"  {B}wrap-up          {X}               0.000s  2.000s  {C}{'=' * 11}{X}{D}{'.' * 11}{X}",
    f"    flush            {G}+ ok       {X}  0.000s  2.000s  {G}{'#' * 11}{X}{D}{'.' * 11}{X}",
    f"    late-one (late)  {G}+ ok       {X}  1.000s  0.500s  "
    f"{D}.....{X}{G}####{X}{D}{'.' * 13}{X}",
    f"  {B}shutdown         {X}               2.000s  2.000s  {D}{'.' * 11}{X}{C}{'=' * 11}{X}",
    f"    close-db         {R}x failed   {X}  2.000s  0.500s  "
    f"{D}{'.' * 11}{X}{R}###{X}{D}{'.' * 8}{X}",
    f"{R}      -> ValueError: gone{X}",
    f"    never            {D}- cancelled{X}       -       -  {D}{'.' * 22}{X}",
    f"{Y}  !! holds still open when wrap-up time ran out: request{X}",
    f"\x1b[31;1mshutdown with failures in 4.000s: 4 hooks, 2 ok, 1 failed, 1 cancelled{X}",
]


def test_render_unicode_timeline_exact() -> None:
    text = fixed_report().render(width=72, color=False, ascii=False)
    assert text.splitlines() == UNICODE_72
    assert max(len(line) for line in text.splitlines()) <= 72


def test_render_ascii_timeline_exact_and_wraps_long_lines() -> None:
    text = fixed_report().render(width=60, color=False, ascii=True)
    assert text.splitlines() == ASCII_60
    assert text.isascii()
    assert max(len(line) for line in text.splitlines()) <= 60


def test_render_with_colour_exact() -> None:
    text = fixed_report().render(width=72, color=True, ascii=True)
    assert text.splitlines() == COLOUR_ASCII_72
    # Without its escape sequences the coloured text is the plain one.
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert plain == fixed_report().render(width=72, color=False, ascii=True)


def forced_report() -> ShutdownReport:
    """Every status, an open hold and a quit forced by the deadline."""
    return ShutdownReport(
        trigger=Trigger("signal", signal=signal.SIGINT, reason="SIGINT", at=AT),
        results=(
            HookResult("deregister", Phase.WRAP_UP, 0, HookStatus.OK, 0.0, 0.5),
            HookResult(
                "flush-a-very-long-queue-name-that-goes-on-and-on",
                Phase.WRAP_UP,
                0,
                HookStatus.TIMED_OUT,
                0.0,
                3.0,
                TimeoutError("hook timed out after 3s"),
            ),
            HookResult(
                "close-db",
                Phase.SHUTDOWN,
                0,
                HookStatus.FAILED,
                1.0,
                0.25,
                RuntimeError("database is closed\nsecond line"),
            ),
            HookResult("close-cache", Phase.SHUTDOWN, 1, HookStatus.CANCELLED),
        ),
        forced=True,
        forced_by="deadline",
        duration=3.0,
        open_holds=("request", "request"),
        phases=(PhaseSpan("wrap_up", 0.0, 1.0), PhaseSpan("shutdown", 1.0, None)),
        wait_time=3.0,
    )


def test_render_forced_quit_with_every_status() -> None:
    lines = forced_report().render(width=80, color=False, ascii=False).splitlines()
    assert lines == [
        "gracestop: received SIGINT at 2026-11-28 12:00:00Z, deadline 3s",
        "  stage / hook                 status        start    took  0s            3.000s",
        "  wrap-up                                   0.000s  1.000s  ━━━━━━━·············",
        "    deregister                 ✓ ok         0.000s  0.500s  ████················",
        "    flush-a-very-long-queue-…  ⧖ timed out  0.000s  3.000s  ████████████████████",
        "      ↳ TimeoutError: hook timed out after 3s",
        "  shutdown                                  1.000s       -  ······━━━━━━━━━━━━━━",
        "    close-db                   ✗ failed     1.000s  0.250s  ······███···········",
        "      ↳ RuntimeError: database is closed",
        "    close-cache                – cancelled       -       -  ····················",  # noqa: RUF001
        "  ⚠ holds still open when wrap-up time ran out: request x2",
        "  ⚠ forced quit by the wait_time deadline; cut short:",
        "     flush-a-very-long-queue-name-that-goes-on-and-on, close-cache",
        "shutdown forced by deadline in 3.000s: 4 hooks, 1 ok, 1 failed, 1 timed_out, 1",
        "  cancelled",
    ]


def test_render_forced_by_a_second_signal_and_phases_that_never_started() -> None:
    report = ShutdownReport(
        trigger=Trigger("manual", reason="test", at=AT),
        results=(HookResult("orphan", Phase.SHUTDOWN, 0, HookStatus.CANCELLED),),
        forced=True,
        forced_by="signal",
        duration=0.1,
        phases=(PhaseSpan("wrap_up", 0.0, None),),
    )
    lines = report.render(width=70, color=False, ascii=True).splitlines()
    assert lines == [
        "gracestop: shutdown requested (test) at 2026-11-28 12:00:00Z",
        "  stage / hook  status        start  took  0s                   0.100s",
        "  wrap-up                    0.000s     -  ===========================",
        "  shutdown                        -     -  ...........................",
        "    orphan      - cancelled       -     -  ...........................",
        "  !! forced quit by a second signal; cut short: orphan",
        "shutdown forced by signal in 0.100s: 1 hook, 1 cancelled",
    ]


def test_render_names_holds_open_at_a_quit_forced_before_the_window_closed() -> None:
    report = ShutdownReport(
        trigger=Trigger("signal", signal=signal.SIGTERM, reason="SIGTERM", at=AT),
        results=(
            HookResult("stop-intake", Phase.WRAP_UP, 0, HookStatus.OK, 0.0, 0.1),
            HookResult("close-db", Phase.SHUTDOWN, 0, HookStatus.CANCELLED),
        ),
        forced=True,
        forced_by="signal",
        duration=0.5,
        open_holds=("worker",),
        phases=(PhaseSpan("wrap_up", 0.0, None),),
    )
    lines = report.render(width=70, color=False, ascii=True).splitlines()
    assert "  !! holds still open at the forced quit: worker" in lines
    assert not [line for line in lines if "wrap-up time ran out" in line]


def test_render_running_and_pending_hooks_of_a_report_built_mid_way() -> None:
    report = ShutdownReport(
        trigger=Trigger("exit", at=AT),
        results=(
            HookResult("busy", Phase.WRAP_UP, 0, HookStatus.RUNNING, 0.0, 1.0),
            HookResult("queued", Phase.WRAP_UP, 1, HookStatus.PENDING),
        ),
        forced=False,
        duration=1.0,
    )
    lines = report.render(width=60, color=False, ascii=False).splitlines()
    assert lines == [
        "gracestop: the service block ended at 2026-11-28 12:00:00Z",
        "  stage / hook  status      start    took  0s         1.000s",
        "  wrap-up                       -       -  ·················",
        "    busy        … running  0.000s  1.000s  █████████████████",
        "    queued      · pending       -       -  ·················",
        "shutdown with failures in 1.000s: 2 hooks",
    ]
    assert "deadline" not in lines[0]  # no wait_time recorded


def test_render_defaults_follow_the_terminal_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = fixed_report()
    monkeypatch.setenv("COLUMNS", "72")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    # Under pytest stdout is captured: not a terminal, so no colour.
    assert report.render(ascii=False) == "\n".join(UNICODE_72)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert "\x1b[" in report.render()
    monkeypatch.setenv("NO_COLOR", "1")  # NO_COLOR wins over FORCE_COLOR
    assert "\x1b[" not in report.render()
    monkeypatch.setenv("COLUMNS", "20")  # auto width stays readable
    assert max(len(line) for line in report.render().splitlines()) <= 60
    monkeypatch.setenv("COLUMNS", "500")
    widest = max(len(line) for line in report.render().splitlines())
    assert widest == 160  # the column header reaches the capped width


class _Terminal(io.StringIO):
    def __init__(self, encoding: str) -> None:
        super().__init__()
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def isatty(self) -> bool:
        return True


def test_render_auto_colour_on_a_terminal_and_ascii_for_its_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "72")
    report = fixed_report()
    monkeypatch.setattr(sys, "stdout", _Terminal("ascii"))
    text = report.render()
    assert "\x1b[" in text
    assert text.isascii()
    monkeypatch.setattr(sys, "stdout", _Terminal("utf-8"))
    assert "✓" in report.render()
    monkeypatch.setattr(sys, "stdout", _Terminal("no-such-codec"))
    assert report.render().isascii()
    monkeypatch.setattr(sys, "stdout", None)
    text = report.render()
    assert "\x1b[" not in text
    assert text.isascii()
    closed = io.StringIO()
    closed.close()  # isatty() raises ValueError on a closed stream
    monkeypatch.setattr(sys, "stdout", closed)
    assert "\x1b[" not in report.render()


def test_render_names_an_error_without_a_message_by_its_type() -> None:
    report = ShutdownReport(
        trigger=Trigger("manual", at=AT),
        results=(
            HookResult("quiet", Phase.SHUTDOWN, 0, HookStatus.FAILED, 0.0, 0.1, RuntimeError()),
        ),
        forced=False,
        duration=0.1,
        phases=(PhaseSpan("wrap_up", 0.0, 0.0), PhaseSpan("shutdown", 0.0, 0.1)),
    )
    lines = report.render(width=60, color=False, ascii=True).splitlines()
    assert lines[lines.index(next(line for line in lines if "quiet" in line)) + 1] == (
        "      -> RuntimeError"
    )


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"width": 39}, ValueError, "width must be at least 40; got 39"),
        ({"width": "wide"}, TypeError, "width must be an int or None; got str 'wide'"),
        ({"width": True}, TypeError, "width must be an int or None; got bool True"),
        ({"color": "yes"}, TypeError, "color must be True, False or None; got str 'yes'"),
        ({"ascii": 1}, TypeError, "ascii must be True, False or None; got int 1"),
    ],
)
def test_render_refuses_bad_arguments(
    kwargs: dict[str, object], exc: type[Exception], pattern: str
) -> None:
    with pytest.raises(exc, match=re.escape(pattern)):
        fixed_report().render(**kwargs)  # type: ignore[arg-type]


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


def test_to_dict_names_its_schema_and_version() -> None:
    data = fixed_report().to_dict()
    assert list(data)[:2] == ["schema", "version"]
    assert data["schema"] == REPORT_SCHEMA == "gracestop.report"
    assert data["version"] == REPORT_VERSION == 1
    assert set(data) == {
        "schema",
        "version",
        "ok",
        "forced",
        "forced_by",
        "duration",
        "wait_time",
        "trigger",
        "open_holds",
        "phases",
        "counts",
        "results",
    }
    assert set(data["results"][0]) == {
        "name",
        "phase",
        "order",
        "status",
        "started_at",
        "duration",
        "error",
        "late",
    }
    assert set(data["results"][2]["error"]) == {"type", "message", "traceback"}


@pytest.mark.parametrize("report", [fixed_report(), forced_report()], ids=["fixed", "forced"])
def test_to_json_round_trips_to_dict(report: ShutdownReport) -> None:
    assert json.loads(report.to_json()) == report.to_dict()
    assert json.loads(report.to_json(indent=2)) == report.to_dict()
    assert "\n" not in report.to_json()
    assert report.to_json(indent=2).startswith('{\n  "schema": "gracestop.report",\n')


def test_to_json_keeps_non_ascii_names_readable() -> None:
    report = ShutdownReport(
        trigger=Trigger("manual", at=AT),
        results=(HookResult("vider-la-file-d-attente-é", Phase.WRAP_UP, 0, HookStatus.OK, 0, 0),),
        forced=False,
        duration=0.0,
    )
    assert "vider-la-file-d-attente-é" in report.to_json()


@pytest.mark.parametrize(
    ("indent", "exc", "pattern"),
    [
        ("  ", TypeError, "indent must be an int or None; got str '  '"),
        (True, TypeError, "indent must be an int or None; got bool True"),
        (-1, ValueError, "indent must not be negative; got -1"),
    ],
)
def test_to_json_refuses_bad_indent(indent: object, exc: type[Exception], pattern: str) -> None:
    with pytest.raises(exc, match=re.escape(pattern)):
        fixed_report().to_json(indent=indent)  # type: ignore[arg-type]


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


def test_enums_print_as_their_values_and_states_are_ordered() -> None:
    assert str(Phase.WRAP_UP) == "wrap_up"
    assert str(HookStatus.TIMED_OUT) == "timed_out"
    assert str(State.DRAINING) == "draining"
    ranks = [s.rank for s in State]
    assert ranks == sorted(ranks)
    assert State.IDLE.rank == 0
    assert HookStatus.OK.final
    assert not HookStatus.RUNNING.final


def every_status_report() -> ShutdownReport:
    """A report with a hook in every status, a late one, an error and open holds."""
    base = forced_report()
    extra = (
        HookResult(
            "late-one", Phase.WRAP_UP, status=HookStatus.OK, started_at=2.0, duration=0.2, late=True
        ),
        HookResult("still-running", Phase.SHUTDOWN, status=HookStatus.RUNNING, started_at=1.5),
        HookResult("waiting", Phase.SHUTDOWN, status=HookStatus.PENDING),
    )
    return dataclasses.replace(
        base,
        results=base.results + extra,
        open_holds=(*base.open_holds, "a-hold-with-a-name-far-longer-than-any-terminal-line" * 3),
    )


@pytest.mark.parametrize("ascii_", [False, True])
def test_render_fits_every_width(ascii_: bool) -> None:
    report = every_status_report()
    assert {r.status for r in report.results} == set(HookStatus)
    for width in range(40, 121):
        lines = report.render(width=width, color=False, ascii=ascii_).splitlines()
        assert max(len(line) for line in lines) <= width, (width, lines)
        if width >= 80:  # wide enough for the words
            assert any("timed out" in line for line in lines)


def test_status_marks_are_one_cell_wide() -> None:
    import unicodedata

    from gracestop._render import _UNICODE

    for mark in _UNICODE.marks.values():
        assert len(mark) == 1
        assert unicodedata.east_asian_width(mark) in ("N", "Na", "A"), mark
    # Not the stopwatch (U+23F1), which terminals draw as a wide emoji.
    assert "\u23f1" not in _UNICODE.marks.values()
    assert unicodedata.east_asian_width(_UNICODE.marks[HookStatus.TIMED_OUT]) == "N"
