"""What a shutdown did: triggers, per-hook results and the final report."""

from __future__ import annotations

import datetime as _dt
import enum
import signal
import traceback
from dataclasses import dataclass, field
from typing import Any, Literal

from ._config import _describe

__all__ = [
    "HookResult",
    "HookStatus",
    "Phase",
    "PhaseSpan",
    "ShutdownError",
    "ShutdownReport",
    "State",
    "Trigger",
    "TriggerKind",
]


class ShutdownError(RuntimeError):
    """Misuse of a coordinator.

    Raised for a signal claimed twice, explicit signals requested off the main
    thread, a hook registered after the coordinator has stopped, a coordinator
    entered twice, or `set_time_to_force_quit`
    called after the shutdown began.
    """


class Phase(str, enum.Enum):
    """The two phases of a shutdown, in the order they start."""

    WRAP_UP = "wrap_up"
    """Finish the work in hand: flush queues, deregister, wait for requests."""
    SHUTDOWN = "shutdown"
    """Release resources: close pools, databases, files."""

    def __str__(self) -> str:
        return self.value


class State(str, enum.Enum):
    """Where a coordinator is in its life. States only ever move forward."""

    IDLE = "idle"
    RUNNING = "running"
    DRAINING = "draining"
    WRAPPING_UP = "wrapping_up"
    SHUTTING_DOWN = "shutting_down"
    STOPPED = "stopped"

    def __str__(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        """Position in the lifecycle, for comparisons (``IDLE`` is 0)."""
        return _STATE_ORDER.index(self)


_STATE_ORDER = tuple(State)


class HookStatus(str, enum.Enum):
    """The fate of one hook."""

    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def final(self) -> bool:
        """True once the hook has ended, one way or another."""
        return self not in (HookStatus.PENDING, HookStatus.RUNNING)


REPORT_SCHEMA = "gracestop.report"
"""``to_dict()["schema"]``: names the document, for tools that read report files."""
REPORT_VERSION = 1
"""``to_dict()["version"]``: raised when a field changes meaning or is removed."""

TriggerKind = Literal["signal", "manual", "exit", "error", "cancelled"]
TRIGGER_KINDS: tuple[str, ...] = ("signal", "manual", "exit", "error", "cancelled")


@dataclass(frozen=True)
class Trigger:
    """What started a shutdown.

    Attributes:
        kind: ``"signal"`` (a signal was received), ``"manual"``
            (`shutdown` was called), ``"exit"``
            (the ``async with`` body returned), ``"error"`` (the body raised) or
            ``"cancelled"`` (the body was cancelled from outside).
        signal: the signal received, for ``kind == "signal"``; else ``None``.
        reason: a short human-readable reason.
        at: wall-clock time of the trigger (UTC).
    """

    kind: TriggerKind
    signal: signal.Signals | None = None
    reason: str = ""
    at: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc))

    def __post_init__(self) -> None:
        if self.kind not in TRIGGER_KINDS:
            raise ValueError(f"kind must be one of {', '.join(TRIGGER_KINDS)}; got {self.kind!r}")
        if self.signal is not None and not isinstance(self.signal, signal.Signals):
            raise TypeError(f"signal must be a signal.Signals or None; got {self.signal!r}")
        if not isinstance(self.reason, str):
            raise TypeError(f"reason must be a str; got {type(self.reason).__name__}")

    def describe(self) -> str:
        """One phrase for logs, such as ``"received SIGTERM"``."""
        if self.kind == "signal" and self.signal is not None:
            return f"received {self.signal.name}"
        if self.kind == "manual":
            return f"shutdown requested ({self.reason})" if self.reason else "shutdown requested"
        if self.kind == "exit":
            return (
                f"the service block ended ({self.reason})"
                if self.reason
                else ("the service block ended")
            )
        if self.kind == "error":
            return (
                f"the service block raised {self.reason}"
                if self.reason
                else ("the service block raised")
            )
        return "the service block was cancelled"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "kind": self.kind,
            "signal": self.signal.name if self.signal is not None else None,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class HookResult:
    """The outcome of one hook.

    Attributes:
        name: the hook's name (its function's qualified name unless given).
        phase: the phase it belongs to.
        order: its ``order`` group; lower groups run first.
        status: how it ended, or ``PENDING``/``RUNNING`` while it has not.
        started_at: seconds from the trigger to the hook's start; ``None`` if it
            never started.
        duration: seconds it ran; ``None`` if it never started.
        error: the exception it raised (``FAILED``), else ``None``.
        late: True when it was registered after the shutdown was triggered.
    """

    name: str
    phase: Phase
    order: int = 0
    status: HookStatus = HookStatus.PENDING
    started_at: float | None = None
    duration: float | None = None
    error: BaseException | None = None
    late: bool = False

    @property
    def ok(self) -> bool:
        """True when the hook ended without error or timeout."""
        return self.status is HookStatus.OK

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; the error becomes its type, message and traceback."""
        error: dict[str, Any] | None = None
        if self.error is not None:
            error = {
                "type": type(self.error).__qualname__,
                "message": str(self.error),
                "traceback": "".join(traceback.format_exception(self.error)),
            }
        return {
            "name": self.name,
            "phase": self.phase.value,
            "order": self.order,
            "status": self.status.value,
            "started_at": _round(self.started_at),
            "duration": _round(self.duration),
            "error": error,
            "late": self.late,
        }


@dataclass(frozen=True)
class PhaseSpan:
    """When one stage of the shutdown ran, in seconds from the trigger.

    ``name`` is ``"drain"``, ``"wrap_up"`` or ``"shutdown"``; ``end`` is ``None`` when
    the stage never ended by itself (the quit was forced first).
    """

    name: str
    start: float
    end: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"name": self.name, "start": _round(self.start), "end": _round(self.end)}


@dataclass(frozen=True)
class ShutdownReport:
    """How a shutdown went, available as ``coord.report`` and from ``coord.finished()``.

    Attributes:
        trigger: what started it.
        results: one [`HookResult`][gracestop.HookResult] per hook, in the order hooks were known.
        forced: True when the quit was forced, by the ``wait_time`` deadline or by
            a second signal.
        duration: seconds from the trigger to the end.
        open_holds: names of holds still open when the wrap-up window closed.
        phases: when the drain delay and each phase ran.
        forced_by: ``"deadline"``, ``"signal"`` or ``None``.
        wait_time: the deadline that was in force, in seconds from the trigger.
    """

    trigger: Trigger
    results: tuple[HookResult, ...]
    forced: bool
    duration: float
    open_holds: tuple[str, ...] = ()
    phases: tuple[PhaseSpan, ...] = ()
    forced_by: Literal["deadline", "signal"] | None = None
    wait_time: float | None = None

    @property
    def ok(self) -> bool:
        """True when every hook ended ``OK`` and the quit was not forced."""
        return not self.forced and all(r.ok for r in self.results)

    def by_status(self, status: HookStatus) -> tuple[HookResult, ...]:
        """The results with the given status."""
        return tuple(r for r in self.results if r.status is status)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary, documented field by field in ``docs/reports.md``.

        It starts with ``"schema": "gracestop.report"`` and ``"version": 1``; the
        version goes up when a field changes meaning or goes away (new fields may
        appear within a version). Times are seconds, relative to the trigger except
        ``trigger.at`` (ISO 8601, UTC).
        """
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
        return {
            "schema": REPORT_SCHEMA,
            "version": REPORT_VERSION,
            "ok": self.ok,
            "forced": self.forced,
            "forced_by": self.forced_by,
            "duration": _round(self.duration),
            "wait_time": self.wait_time,
            "trigger": self.trigger.to_dict(),
            "open_holds": list(self.open_holds),
            "phases": [p.to_dict() for p in self.phases],
            "counts": counts,
            "results": [r.to_dict() for r in self.results],
        }

    def summary(self) -> str:
        """One line: outcome, duration and counts."""
        outcome = "ok" if self.ok else ("forced" if self.forced else "with failures")
        parts = [_count(len(self.results), "hook")]
        for status in (
            HookStatus.OK,
            HookStatus.FAILED,
            HookStatus.TIMED_OUT,
            HookStatus.CANCELLED,
        ):
            n = len(self.by_status(status))
            if n:
                parts.append(f"{n} {status.value}")
        forced = f" by {self.forced_by}" if self.forced and self.forced_by else ""
        return f"shutdown {outcome}{forced} in {self.duration:.3f}s: " + ", ".join(parts)

    def render(
        self,
        *,
        width: int | None = None,
        color: bool | None = None,
        ascii: bool | None = None,
    ) -> str:
        """A timeline of the stages and hooks, for a person to read at a glance.

        A header names the trigger and the force-quit deadline; then one row per
        stage (drain, wrap-up, shutdown), each followed by its hooks, with a status
        mark (``✓`` ok, ``✗`` failed, ``⏱`` timed out, ``\u2013`` (a dash) cancelled), the start
        and the duration in seconds from the trigger, and a bar on a time axis
        common to every row. A failed hook's error is on a short line below it;
        holds left open and a forced quit are called out; the last line is
        `summary`, with the total.

        Args:
            width: the line width in columns, at least 40. ``None``: the
                terminal's width (``COLUMNS`` is honoured), kept within 60..160.
            color: ANSI colours. ``None``: only when stdout is a terminal;
                ``NO_COLOR`` (non-empty) turns them off, ``FORCE_COLOR`` on.
            ascii: plain ASCII marks and bars (``+ x ! -``, ``#``). ``None``:
                when stdout's encoding cannot write the symbols.

        Example (``report.render(width=72, color=False)``):

            gracestop: received SIGTERM at 2026-11-28 12:00:00Z, deadline 5.5s
              stage / hook  status   start    took  0s                        2.005s
              wrap-up               0.000s  2.004s  ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━
                flush       ✓ ok    0.001s  2.003s  ████████████████████████████████
              shutdown              2.004s  0.001s  ·······························━
                close-db    ✓ ok    2.004s  0.001s  ·······························█
            shutdown ok in 2.005s: 2 hooks, 2 ok

        Raises:
            TypeError: *width* is not an int, or *color*/*ascii* not a bool.
            ValueError: *width* is below 40.
        """
        from ._render import render_report, resolve_style

        width, color, ascii = resolve_style(width, color, ascii)
        return render_report(self, width=width, color=color, ascii=ascii)

    def to_json(self, indent: int | None = None) -> str:
        """`to_dict` as a JSON document; ``indent`` as for `json.dumps`.

        ``json.loads(report.to_json()) == report.to_dict()`` always holds.
        """
        if indent is not None and (isinstance(indent, bool) or not isinstance(indent, int)):
            raise TypeError(f"indent must be an int or None; got {_describe(indent)}")
        if indent is not None and indent < 0:
            raise ValueError(f"indent must not be negative; got {indent!r}")
        import json  # here: import gracestop stays light

        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
