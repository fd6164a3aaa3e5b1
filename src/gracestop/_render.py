"""Drawing a [`ShutdownReport`][gracestop.ShutdownReport] as a timeline for a terminal."""

from __future__ import annotations

import datetime as _dt
import math
import os
import shutil
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._config import _describe
from ._report import HookStatus, Phase

if TYPE_CHECKING:
    from ._report import HookResult, ShutdownReport

__all__ = ["MIN_WIDTH", "render_report", "resolve_style"]

MIN_WIDTH = 40
"""Narrowest timeline `render_report` draws; narrower requests are refused."""
# Auto-detected widths are kept in this range: below it the bars say nothing,
# above it a line is too long to read at a glance.
_AUTO_WIDTH_RANGE = (60, 160)
_MIN_BAR = 10
_MIN_NAME = 12
# Below this the columns give way: statuses as marks only, then shorter names.
_NARROW_NAME = 6


@dataclass(frozen=True)
class _Glyphs:
    marks: dict[HookStatus, str]
    hook_bar: str
    phase_bar: str
    track: str
    error: str
    warning: str
    ellipsis: str


_UNICODE = _Glyphs(
    marks={
        HookStatus.OK: "\u2713",  # ✓
        HookStatus.FAILED: "\u2717",  # ✗
        # Not ⏱ (U+23F1): many terminals draw it as a two-cell emoji. The white
        # hourglass is one cell wide everywhere and has no emoji form.
        HookStatus.TIMED_OUT: "\u29d6",  # ⧖
        HookStatus.CANCELLED: "\u2013",  # en dash
        HookStatus.PENDING: "\u00b7",  # ·
        HookStatus.RUNNING: "\u2026",  # …
    },
    hook_bar="\u2588",  # █
    phase_bar="\u2501",  # ━
    track="\u00b7",  # ·
    error="\u21b3",  # ↳
    warning="\u26a0",  # ⚠
    ellipsis="\u2026",
)

_ASCII = _Glyphs(
    marks={
        HookStatus.OK: "+",
        HookStatus.FAILED: "x",
        HookStatus.TIMED_OUT: "!",
        HookStatus.CANCELLED: "-",
        HookStatus.PENDING: ".",
        HookStatus.RUNNING: ">",
    },
    hook_bar="#",
    phase_bar="=",
    track=".",
    error="->",
    warning="!!",
    ellipsis="...",
)

_STATUS_WORDS = {
    HookStatus.OK: "ok",
    HookStatus.FAILED: "failed",
    HookStatus.TIMED_OUT: "timed out",
    HookStatus.CANCELLED: "cancelled",
    HookStatus.PENDING: "pending",
    HookStatus.RUNNING: "running",
}

_RESET = "\x1b[0m"
_BOLD = "1"
_DIM = "2"
_RED = "31"
_GREEN = "32"
_YELLOW = "33"
_CYAN = "36"
_STATUS_COLOURS = {
    HookStatus.OK: _GREEN,
    HookStatus.FAILED: _RED,
    HookStatus.TIMED_OUT: _YELLOW,
    HookStatus.CANCELLED: _DIM,
    HookStatus.PENDING: _DIM,
    HookStatus.RUNNING: _CYAN,
}

_PHASE_LABELS = {"drain": "drain", "wrap_up": "wrap-up", "shutdown": "shutdown"}


def resolve_style(
    width: int | None, color: bool | None, ascii: bool | None
) -> tuple[int, bool, bool]:
    """Check the arguments of ``render()`` and fill in the automatic ones.

    ``width`` defaults to the terminal's (``shutil.get_terminal_size``, which
    honours ``COLUMNS``) kept within 60..160; ``color`` to whether stdout is a
    terminal, with ``NO_COLOR`` forcing it off and ``FORCE_COLOR`` on (any
    non-empty value, https://no-color.org); ``ascii`` to whether stdout's encoding
    cannot write the timeline's symbols.
    """
    if width is not None and (isinstance(width, bool) or not isinstance(width, int)):
        raise TypeError(f"width must be an int or None; got {_describe(width)}")
    if width is not None and width < MIN_WIDTH:
        raise ValueError(f"width must be at least {MIN_WIDTH}; got {width!r}")
    for name, value in (("color", color), ("ascii", ascii)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{name} must be True, False or None; got {_describe(value)}")
    if width is None:
        columns = shutil.get_terminal_size((100, 24)).columns
        width = min(max(columns, _AUTO_WIDTH_RANGE[0]), _AUTO_WIDTH_RANGE[1])
    if color is None:
        color = _colour_wanted()
    if ascii is None:
        ascii = not _can_encode(_unicode_sample())
    return width, color, ascii


def _colour_wanted() -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = sys.stdout
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


def _unicode_sample() -> str:
    glyphs = _UNICODE
    return "".join(glyphs.marks.values()) + glyphs.hook_bar + glyphs.phase_bar + glyphs.error


def _can_encode(text: str) -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


@dataclass(frozen=True)
class _Row:
    label: str
    status: HookStatus | None
    start: float | None
    took: float | None
    is_phase: bool
    open_ended: bool = False
    error: str | None = None


def render_report(report: ShutdownReport, *, width: int, color: bool, ascii: bool) -> str:
    """Draw *report* as a timeline ``width`` columns wide (see ``ShutdownReport.render``)."""
    glyphs = _ASCII if ascii else _UNICODE

    def paint(text: str, *codes: str) -> str:
        if not color or not codes or not text:
            return text
        return f"\x1b[{';'.join(codes)}m{text}{_RESET}"

    rows = _rows(report)
    span = max(
        [report.duration, 1e-9] + [r.start + (r.took or 0.0) for r in rows if r.start is not None]
    )
    start_cells = [_secs(r.start) for r in rows]
    took_cells = [_secs(r.took) for r in rows]
    status_cells = [
        "" if r.status is None else f"{glyphs.marks[r.status]} {_STATUS_WORDS[r.status]}"
        for r in rows
    ]
    status_head = "status"
    start_w = max([len("start"), *map(len, start_cells)])
    took_w = max([len("took"), *map(len, took_cells)])
    status_w = max([len(status_head), *map(len, status_cells)])
    name_w = max([len("stage / hook"), *(len(r.label) for r in rows)])

    def fixed() -> int:
        return 2 + 2 + status_w + 2 + start_w + 2 + took_w + 2

    if fixed() + _MIN_NAME + _MIN_BAR > width:
        # Narrow: the mark alone says the status (the legend is in the docs).
        status_cells = ["" if r.status is None else glyphs.marks[r.status] for r in rows]
        status_head = ""
        status_w = max(map(len, status_cells), default=1)
    # The bars get what the columns leave, at least a quarter of the line:
    # long names give way first.
    min_bar = max(_MIN_BAR, width // 4)
    if width - fixed() - name_w < min_bar:
        name_w = max(_MIN_NAME, width - fixed() - min_bar)
    bar_w = width - fixed() - name_w
    if bar_w < _MIN_BAR:
        name_w = max(_NARROW_NAME, width - fixed() - _MIN_BAR)
        bar_w = max(1, width - fixed() - name_w)

    def cut(text: str, room: int) -> str:
        if len(text) <= room:
            return text
        return text[: max(0, room - len(glyphs.ellipsis))] + glyphs.ellipsis

    def bar(row: _Row) -> str:
        if row.start is None:
            return paint(glyphs.track * bar_w, _DIM)
        first = min(bar_w - 1, int(row.start / span * bar_w))
        end = span if row.open_ended or row.took is None else row.start + row.took
        last = min(bar_w, max(first + 1, math.ceil(end / span * bar_w - 1e-9)))
        fill = glyphs.phase_bar if row.is_phase else glyphs.hook_bar
        codes = (_CYAN,) if row.is_phase else (_STATUS_COLOURS[row.status or HookStatus.OK],)
        return (
            paint(glyphs.track * first, _DIM)
            + paint(fill * (last - first), *codes)
            + paint(glyphs.track * (bar_w - last), _DIM)
        )

    at = report.trigger.at.astimezone(_dt.timezone.utc)
    header = [f"gracestop: {report.trigger.describe()} at {at:%Y-%m-%d %H:%M:%S}Z"]
    if report.wait_time is not None:
        deadline = f"deadline {report.wait_time:g}s"
        if len(header[-1]) + 2 + len(deadline) <= width:
            header[-1] += ", " + deadline
        else:
            header.append("  " + deadline)
    lines = [paint(line, _BOLD) for text in header for line in _wrap(text, width, "  ")]

    axis_right = f"{span:.3f}s"
    if bar_w >= len(axis_right) + len("0s") + 1:
        axis = "0s".ljust(bar_w - len(axis_right)) + axis_right
    else:
        axis = axis_right[-bar_w:].rjust(bar_w)
    lines.append(
        paint(
            f"  {cut('stage / hook', name_w):<{name_w}}  {status_head:<{status_w}}  "
            f"{'start':>{start_w}}  {'took':>{took_w}}  {axis}",
            _DIM,
        )
    )
    for row, status_cell, start_cell, took_cell in zip(
        rows, status_cells, start_cells, took_cells, strict=True
    ):
        label = cut(row.label, name_w)
        label = paint(f"{label:<{name_w}}", _BOLD) if row.is_phase else f"{label:<{name_w}}"
        status_codes = () if row.status is None else (_STATUS_COLOURS[row.status],)
        lines.append(
            f"  {label}  {paint(f'{status_cell:<{status_w}}', *status_codes)}  "
            f"{start_cell:>{start_w}}  {took_cell:>{took_w}}  {bar(row)}"
        )
        if row.error is not None:
            text = cut(f"      {glyphs.error} {row.error}", width)
            lines.append(paint(text, _STATUS_COLOURS[row.status or HookStatus.FAILED]))

    if report.open_holds:
        counts: dict[str, int] = {}
        for name in report.open_holds:
            counts[name] = counts.get(name, 0) + 1
        named = (n + (f" x{c}" if c > 1 else "") for n, c in counts.items())
        # A quit forced before the wrap-up window closed names the holds open then;
        # the window closing is what starts the shutdown stage.
        window_closed = not report.forced or any(p.name == "shutdown" for p in report.phases)
        when = "when wrap-up time ran out" if window_closed else "at the forced quit"
        holds = f"holds still open {when}: " + ", ".join(named)
        lines.extend(paint(line, _YELLOW) for line in _wrap(f"  {glyphs.warning} {holds}", width))
    if report.forced:
        by = {"deadline": "by the wait_time deadline", "signal": "by a second signal"}
        forced = f"forced quit {by.get(report.forced_by or '', '')}".rstrip()
        cut_short = [
            r.name
            for r in report.results
            if r.status in (HookStatus.TIMED_OUT, HookStatus.CANCELLED)
        ]
        if cut_short:
            forced += "; cut short: " + ", ".join(cut_short)
        lines.extend(
            paint(line, _RED, _BOLD) for line in _wrap(f"  {glyphs.warning} {forced}", width)
        )
    lines.extend(
        paint(line, _GREEN if report.ok else _RED, _BOLD)
        for line in _wrap(report.summary(), width, "  ")
    )
    return "\n".join(lines)


def _rows(report: ShutdownReport) -> list[_Row]:
    """One row per stage, each followed by its hooks; hooks of a phase that never
    started come under a row for that phase with no times."""
    spans = {span.name: span for span in report.phases}
    rows: list[_Row] = []
    drain = spans.get("drain")
    if drain is not None:
        rows.append(_phase_row(drain.name, drain.start, drain.end))
    for phase in Phase:
        span = spans.get(phase.value)
        hooks = [r for r in report.results if r.phase is phase]
        if span is None and not hooks:
            continue
        if span is None:
            rows.append(_Row(_PHASE_LABELS[phase.value], None, None, None, is_phase=True))
        else:
            rows.append(_phase_row(span.name, span.start, span.end))
        rows.extend(_hook_row(r) for r in hooks)
    return rows


def _phase_row(name: str, start: float, end: float | None) -> _Row:
    took = None if end is None else end - start
    return _Row(
        _PHASE_LABELS.get(name, name), None, start, took, is_phase=True, open_ended=end is None
    )


def _hook_row(result: HookResult) -> _Row:
    error = None
    if result.error is not None:
        message = str(result.error).strip().splitlines()
        error = type(result.error).__name__ + (f": {message[0]}" if message else "")
    label = "  " + result.name + (" (late)" if result.late else "")
    return _Row(label, result.status, result.started_at, result.duration, False, error=error)


def _wrap(text: str, width: int, indent: str = "     ") -> list[str]:
    """Long notes wrap rather than lose the end (a list of hook names, say)."""
    # Long words (a path, a hold name) are broken too: no line is wider than width.
    return textwrap.wrap(
        text, width, subsequent_indent=indent, break_long_words=True, break_on_hyphens=False
    ) or [""]


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"
