"""Observers of shutdown events: logging, structlog, Prometheus, or your own.

A coordinator tells its observers what happens during a shutdown: the trigger,
each stage and hook starting and ending, progress while it is slow, a forced
quit, and the final report. An observer is any callable that takes one event:

    import gracestop
    from gracestop import instrumentation as gi

    def on_event(event: gi.Event) -> None:
        match event:
            case gi.ShutdownTriggered(trigger=trigger):
                print("shutting down:", trigger.describe())
            case gi.ShutdownFinished(report=report):
                print(report.summary())
            case _:
                pass  # events added in later versions land here

    async with gracestop.ShutdownCoordinator(
        observers=[gi.LoggingObserver(), on_event]
    ) as coord:
        ...

Why one callable with a union of event types rather than a protocol with one
method per event: a function is an observer as it stands, an observer handles
only the events it cares about, and new event types can be added without
breaking existing observers (a protocol that grew a method would no longer be
satisfied by classes written against the old one). ``match`` on the event type
reads like a dispatch table, and a type checker knows each event's fields in
each ``case``.

Which observers a coordinator calls: the global ones, set with
`set_observers` and read when the coordinator is entered, followed by
those given as ``observers=`` to it, which are *added* to them. The global
default is one `LoggingObserver`, which writes the lines described in
the logging section of the documentation (hook failures with their tracebacks,
forced quits, the paths of diagnostics files): they are kept whatever a
coordinator adds. ``set_observers([])`` is the explicit way to silence them.

Observers are called synchronously on the event loop's thread, in the order
given, never while the coordinator holds a lock. They must be fast and must not
block: hand slow work (network calls) to a queue or a task of your own. An
observer that raises does not break the shutdown: its exception is logged, with
its traceback, the first time it happens for that observer and event type, and
is otherwise ignored; the other observers still get the event. Only
``Exception`` is caught: an observer that raises ``KeyboardInterrupt`` or
``SystemExit`` (or another ``BaseException``) stops the event where it is raised,
as it would anywhere else in the event loop's thread, so that Ctrl-C and
``sys.exit()`` keep their meaning; don't raise them from an observer.

There is no event per hold opened or closed: holds are opened per request and
must stay cheap. `CoordinatorEntered` carries ``open_holds``, a function
returning how many holds the coordinator has open, to read when needed (the
Prometheus gauge reads it at scrape time).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Literal,
    Protocol,
    TypeAlias,
    cast,
    runtime_checkable,
)

from ._report import HookStatus, Phase, ShutdownReport, Trigger, _count

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "CoordinatorEntered",
    "DiagnosticsWritten",
    "Event",
    "ForcedQuit",
    "HookEnded",
    "HookStarted",
    "LoggingObserver",
    "Observer",
    "PhaseEnded",
    "PhaseStarted",
    "Progress",
    "PrometheusObserver",
    "ShutdownFinished",
    "ShutdownTriggered",
    "SignalReceived",
    "Stage",
    "StructlogObserver",
    "WrapUpTimeUp",
    "emit",
    "get_observers",
    "set_observers",
]

logger = logging.getLogger("gracestop")

Stage: TypeAlias = Literal["drain", "wrap_up", "shutdown"]
"""The stages of a shutdown: the drain delay and the two phases."""


# ---------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class CoordinatorEntered:
    """The coordinator was entered (``async with``) and listens to ``signals``.

    ``coordinator_id`` numbers the coordinator within the process (the same
    number is in its `ShutdownFinished`); ``open_holds`` returns how many
    holds it has open right now, callable from any thread until the shutdown has
    finished.
    """

    event_kind: ClassVar[str] = "entered"
    signals: tuple[signal.Signals, ...]
    coordinator_id: int = 0
    open_holds: Callable[[], int] | None = None


@dataclass(frozen=True, slots=True)
class ShutdownTriggered:
    """The shutdown began; the quit is forced ``wait_time`` seconds from now."""

    event_kind: ClassVar[str] = "triggered"
    trigger: Trigger
    wait_time: float


@dataclass(frozen=True, slots=True)
class SignalReceived:
    """A signal arrived after the trigger (the triggering signal itself is in
    `ShutdownTriggered`).

    ``action`` says what came of it: ``"deadline"`` (the first signal after a
    manual, exit or error trigger: the quit will be forced at the deadline),
    ``"force"`` (a second signal forces the quit; a `ForcedQuit` follows),
    ``"ignore"`` (``second_signal="ignore"``) or ``"after_stop"`` (the shutdown
    had already finished).
    """

    event_kind: ClassVar[str] = "signal"
    signal: signal.Signals
    action: Literal["deadline", "force", "ignore", "after_stop"]
    trigger: Trigger


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    """A stage began: the drain delay, the wrap-up phase or the shutdown phase.

    ``hooks`` is how many hooks the phase starts with (0 for the drain) and
    ``limit`` how long the stage may last (``None``: until the deadline).
    """

    event_kind: ClassVar[str] = "phase_started"
    phase: Stage
    hooks: int
    limit: float | None


@dataclass(frozen=True, slots=True)
class WrapUpTimeUp:
    """``wrap_up_time`` ran out with wrap-up hooks or holds still open; the
    shutdown phase starts now, beside them."""

    event_kind: ClassVar[str] = "wrap_up_time_up"
    wrap_up_time: float
    hooks: tuple[str, ...]
    holds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PhaseEnded:
    """A stage ended after ``duration`` seconds."""

    event_kind: ClassVar[str] = "phase_ended"
    phase: Stage
    duration: float


@dataclass(frozen=True, slots=True)
class HookStarted:
    """A hook started; ``late`` when it was registered after the trigger."""

    event_kind: ClassVar[str] = "hook_started"
    name: str
    phase: Phase
    late: bool = False


@dataclass(frozen=True, slots=True)
class HookEnded:
    """A hook ended. ``duration`` is ``None`` (and ``status`` ``CANCELLED``) for a
    hook that never started because the quit was forced; ``error`` is the
    exception of a ``FAILED`` hook or the ``TimeoutError`` of a ``TIMED_OUT`` one."""

    event_kind: ClassVar[str] = "hook_ended"
    name: str
    phase: Phase
    status: HookStatus
    duration: float | None
    error: BaseException | None = None
    late: bool = False


@dataclass(frozen=True, slots=True)
class Progress:
    """Sent every ``progress_interval`` while something is still pending.

    ``pending`` describes each hook still running or waiting
    (``"wrap_up hook flush (running 2.0s)"``) and ``holds`` names the open holds;
    ``time_left`` is the number of seconds until the quit is forced.
    """

    event_kind: ClassVar[str] = "progress"
    pending: tuple[str, ...]
    holds: tuple[str, ...]
    time_left: float


@dataclass(frozen=True, slots=True)
class ForcedQuit:
    """The quit is forced, by the ``wait_time`` deadline or by a second signal.

    ``pending`` names what was cut short: hooks still running or not started,
    and holds still open.
    """

    event_kind: ClassVar[str] = "forced_quit"
    by: Literal["deadline", "signal"]
    pending: tuple[str, ...]
    signal: signal.Signals | None = None


@dataclass(frozen=True, slots=True)
class DiagnosticsWritten:
    """A diagnostics file was written; ``kind`` says what it holds, such as
    ``"dump"`` or ``"profile"``."""

    event_kind: ClassVar[str] = "diagnostics_written"
    path: str
    kind: str


@dataclass(frozen=True, slots=True)
class ShutdownFinished:
    """The shutdown is over; ``report`` tells how it went. ``coordinator_id`` is
    the one of the `CoordinatorEntered` event of the same coordinator."""

    event_kind: ClassVar[str] = "finished"
    report: ShutdownReport
    coordinator_id: int = 0


Event: TypeAlias = (
    CoordinatorEntered
    | ShutdownTriggered
    | SignalReceived
    | PhaseStarted
    | WrapUpTimeUp
    | PhaseEnded
    | HookStarted
    | HookEnded
    | Progress
    | ForcedQuit
    | DiagnosticsWritten
    | ShutdownFinished
)
"""Every event an observer may receive; match on the type to tell them apart."""

_EVENT_TYPES: tuple[type, ...] = (
    CoordinatorEntered,
    ShutdownTriggered,
    SignalReceived,
    PhaseStarted,
    WrapUpTimeUp,
    PhaseEnded,
    HookStarted,
    HookEnded,
    Progress,
    ForcedQuit,
    DiagnosticsWritten,
    ShutdownFinished,
)


@runtime_checkable
class Observer(Protocol):
    """Anything called with each `Event`: a function or an object with
    ``__call__``. It runs on the event loop's thread and must return quickly."""

    def __call__(self, event: Event) -> None:
        """Handle one event; events of types it does not know are to be ignored."""


# ---------------------------------------------------------------------- dispatch


def _check_observers(observers: object, field: str = "observers") -> tuple[Observer, ...]:
    """Validate an iterable of observers (callables) and return them as a tuple.

    Raises:
        TypeError: *observers* is not an iterable, or one item is not callable;
            the message names *field* and the value.
    """
    if isinstance(observers, (str, bytes)) or not isinstance(observers, Iterable):
        raise TypeError(
            f"{field} must be an iterable of observers (callables taking an event); "
            f"got {type(observers).__name__} {observers!r}"
        )
    found = tuple(cast("Iterable[object]", observers))
    for item in found:
        if not callable(item):
            raise TypeError(
                f"{field} must contain only observers (callables taking an event); "
                f"got {type(item).__name__} {item!r}"
            )
    # callable() cannot see a signature: each observer is trusted to take one event.
    return cast("tuple[Observer, ...]", found)


class _Dispatcher:
    """Calls observers one by one; a failing observer is logged once per event type."""

    __slots__ = ("_failed", "observers")

    def __init__(self, observers: tuple[Observer, ...]) -> None:
        self.observers = observers
        self._failed: set[tuple[int, str]] = set()

    def __call__(self, event: Event) -> None:
        for observer in self.observers:
            try:
                observer(event)
            except Exception:
                key = (id(observer), event.event_kind)
                if key in self._failed:
                    continue
                self._failed.add(key)
                logger.error(
                    "observer %r failed on a %s event; its further failures on such "
                    "events are ignored",
                    observer,
                    event.event_kind,
                    exc_info=True,
                    extra={"gracestop_event": event.event_kind},
                )


_global: _Dispatcher | None = None


def _default_observers() -> tuple[Observer, ...]:
    return (LoggingObserver(),)


def get_observers() -> tuple[Observer, ...]:
    """The global observers: what a coordinator without ``observers=`` calls.

    By default one `LoggingObserver`.
    """
    global _global
    if _global is None:
        _global = _Dispatcher(_default_observers())
    return _global.observers


class _Setting:
    """The value of `set_observers`: usable as a context manager that
    restores the previous observers."""

    __slots__ = ("_previous",)

    def __init__(self, previous: tuple[Observer, ...]) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        """Nothing to do: the observers are set already."""

    def __exit__(self, *exc: object) -> None:
        """Put back the observers that were set before."""
        set_observers(self._previous)


def set_observers(observers: Iterable[Observer]) -> _Setting:
    """Replace the global observers, called by every coordinator entered from now
    on that was not given ``observers=``.

    Works as a plain call or as a context manager that puts the previous
    observers back (handy in tests):

        from gracestop import instrumentation as gi

        gi.set_observers([gi.LoggingObserver(), gi.PrometheusObserver()])

        with gi.set_observers([]):  # silence, for this block only
            ...

    Raises:
        TypeError: *observers* is not an iterable of callables.
    """
    global _global
    found = _check_observers(observers)
    previous = get_observers()
    _global = _Dispatcher(found)
    return _Setting(previous)


def emit(event: Event, observers: Iterable[Observer] | None = None) -> None:
    """Send *event* to *observers* (default: the global ones), isolating failures.

    For events that arise outside a coordinator's own code, such as
    `DiagnosticsWritten`. Call it on the event loop's thread.
    """
    if not isinstance(event, _EVENT_TYPES):
        raise TypeError(
            f"event must be a gracestop.instrumentation event; got {type(event).__name__} {event!r}"
        )
    if observers is None:
        get_observers()
        assert _global is not None
        _global(event)
    else:
        _Dispatcher(_check_observers(observers))(event)


# ---------------------------------------------------------------------- logging


def _secs(value: float | None) -> str:
    if value is None:
        return "no limit"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    return f"{value:.3g}s" if value < 100 else f"{value:.0f}s"


def _names(items: Iterable[str], limit: int = 10) -> str:
    """A list for a log line: the first ``limit`` items, then how many more."""
    listed = list(items)
    shown = ", ".join(listed[:limit])
    return f"{shown} and {len(listed) - limit} more" if len(listed) > limit else shown


def _never_started(report: ShutdownReport) -> tuple[str, ...]:
    """Names of the hooks that never started because the quit was forced."""
    return tuple(
        r.name for r in report.results if r.status is HookStatus.CANCELLED and r.started_at is None
    )


class LoggingObserver:
    """Writes shutdown events to a standard `logging` logger (``gracestop``).

    INFO: the trigger, each stage, progress lines and the summary. WARNING:
    failed, timed-out and cancelled hooks, the wrap-up time running out with
    work still open, forced quits (naming what was pending) and second signals.
    DEBUG: each hook's start and end. Every record carries structured ``extra``
    fields named ``gracestop_*`` (``gracestop_event`` always; ``gracestop_hook``,
    ``gracestop_phase``, ``gracestop_status``, ``gracestop_trigger`` and others
    where they apply), for JSON formatters.
    """

    __slots__ = ("logger",)

    def __init__(self, logger: logging.Logger | None = None) -> None:
        """Log to *logger*, by default ``logging.getLogger("gracestop")``."""
        if logger is not None and not isinstance(logger, logging.Logger):
            raise TypeError(
                f"logger must be a logging.Logger or None; got {type(logger).__name__} {logger!r}"
            )
        self.logger = logger if logger is not None else logging.getLogger("gracestop")

    def __repr__(self) -> str:
        return f"LoggingObserver({self.logger.name!r})"

    def _log(self, level: int, event: Event, msg: str, *args: object, **extra: Any) -> None:
        if self.logger.isEnabledFor(level):
            exc_info = extra.pop("exc_info", None)
            fields = {
                "gracestop_event": event.event_kind,
                **{f"gracestop_{k}": v for k, v in extra.items()},
            }
            self.logger.log(level, msg, *args, exc_info=exc_info, extra=fields)

    def __call__(self, event: Event) -> None:
        """Log one event (see the class docstring for levels)."""
        match event:
            case CoordinatorEntered(signals=signals):
                names = ", ".join(s.name for s in signals) or "none"
                self._log(logging.DEBUG, event, "coordinator entered; signals: %s", names)
            case ShutdownTriggered(trigger=trigger, wait_time=wait_time):
                level = logging.WARNING if trigger.kind in ("error", "cancelled") else logging.INFO
                self._log(
                    level,
                    event,
                    "%s, shutting down; force quit in %s",
                    trigger.describe(),
                    _secs(wait_time),
                    trigger=trigger.kind,
                )
            case SignalReceived():
                self._signal(event)
            case PhaseStarted(phase="drain", limit=limit):
                self._log(
                    logging.INFO,
                    event,
                    "readiness off; draining for %s before the wrap-up phase",
                    _secs(limit),
                    phase="drain",
                )
            case PhaseStarted(phase="wrap_up", hooks=hooks, limit=limit):
                self._log(
                    logging.INFO,
                    event,
                    "wrap-up phase: %s, up to %s",
                    _count(hooks, "hook"),
                    _secs(limit),
                    phase="wrap_up",
                )
            case PhaseStarted(phase=phase, hooks=hooks):
                self._log(
                    logging.INFO, event, "shutdown phase: %s", _count(hooks, "hook"), phase=phase
                )
            case WrapUpTimeUp(wrap_up_time=wrap_up_time, hooks=hooks, holds=holds):
                still = [*(f"hook {n}" for n in hooks), *(f"hold {h}" for h in holds)]
                self._log(
                    logging.WARNING,
                    event,
                    "wrap-up time (%s) is up; starting the shutdown phase with %s still open",
                    _secs(wrap_up_time),
                    _names(still) or "nothing",
                )
            case PhaseEnded(phase=phase, duration=duration):
                self._log(
                    logging.DEBUG, event, "%s ended after %s", phase, _secs(duration), phase=phase
                )
            case HookStarted(name=name, phase=phase, late=late):
                self._log(
                    logging.DEBUG,
                    event,
                    "%s%s hook %s started",
                    "late " if late else "",
                    phase,
                    name,
                    hook=name,
                    phase=phase.value,
                )
            case HookEnded():
                self._hook_ended(event)
            case Progress(pending=pending, holds=holds, time_left=time_left):
                counts: dict[str, int] = {}
                for hold in holds:
                    counts[hold] = counts.get(hold, 0) + 1
                parts = [
                    *pending,
                    *(f"hold {n}" + (f" x{c}" if c > 1 else "") for n, c in counts.items()),
                ]
                self._log(
                    logging.INFO,
                    event,
                    "still waiting for %s; force quit in %s",
                    _names(parts, limit=20),
                    _secs(max(0.0, time_left)),
                )
            case ForcedQuit(by="signal", pending=pending, signal=sig):
                self._log(
                    logging.WARNING,
                    event,
                    "received %s again: forcing the quit; still pending: %s",
                    sig.name if sig is not None else "a signal",
                    _names(pending, limit=20),
                    forced_by="signal",
                )
            case ForcedQuit():
                pass  # by the deadline: the summary that follows names what was cut short
            case DiagnosticsWritten(path=path, kind=kind):
                self._log(
                    logging.INFO,
                    event,
                    "diagnostics written: %s %s",
                    kind,
                    path,
                    path=path,
                    kind=kind,
                )
            case ShutdownFinished(report=report):
                self._finished(event, report)

    def _signal(self, event: SignalReceived) -> None:
        name = event.signal.name
        if event.action == "after_stop":
            self._log(logging.INFO, event, "received %s after the shutdown finished; ignored", name)
        elif event.action == "deadline":
            self._log(
                logging.INFO,
                event,
                "received %s during the shutdown (%s); force quit at the deadline",
                name,
                event.trigger.describe(),
            )
        elif event.action == "ignore":
            self._log(
                logging.WARNING,
                event,
                "received %s again; second_signal='ignore', so the shutdown goes on",
                name,
            )
        # "force": the ForcedQuit event that follows says it, with what was pending.

    def _hook_ended(self, event: HookEnded) -> None:
        took = "" if event.duration is None else f" after {_secs(event.duration)}"
        fields = {"hook": event.name, "phase": event.phase.value, "status": event.status.value}
        if event.status is HookStatus.OK:
            self._log(
                logging.DEBUG, event, "%s hook %s ended%s", event.phase, event.name, took, **fields
            )
        elif event.status is HookStatus.FAILED:
            self._log(
                logging.WARNING,
                event,
                "%s hook %s failed%s: %r",
                event.phase,
                event.name,
                took,
                event.error,
                exc_info=event.error,
                **fields,
            )
        elif event.duration is None:
            pass  # never started: named once, all together, when the shutdown finishes
        else:
            reason = "timed out" if event.status is HookStatus.TIMED_OUT else "was cancelled"
            self._log(
                logging.WARNING,
                event,
                "%s hook %s %s%s",
                event.phase,
                event.name,
                reason,
                took,
                **fields,
            )

    def _finished(self, event: ShutdownFinished, report: ShutdownReport) -> None:
        never = _never_started(report)
        if never:
            self._log(
                logging.WARNING,
                event,
                "%s never started: %s",
                _count(len(never), "hook"),
                _names(never),
            )
        if report.forced:
            cut = [r.name for r in report.by_status(HookStatus.TIMED_OUT)]
            cut += [r.name for r in report.by_status(HookStatus.CANCELLED)]
            self._log(
                logging.WARNING,
                event,
                "%s; cut short: %s",
                report.summary(),
                _names(cut) or "nothing",
                forced_by=report.forced_by,
                ok=False,
            )
        else:
            self._log(logging.INFO, event, "%s", report.summary(), ok=report.ok)


# ---------------------------------------------------------------------- structlog


def _require(module: str, user: str, extra: str | None = None) -> None:
    """Fail with an install hint when an optional dependency is missing."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ValueError:  # sys.modules[module] is None: import blocked
        found = False
    if not found:
        raise ImportError(
            f"{user} needs the {module} package: pip install 'gracestop[{extra or module}]'"
        )


class StructlogObserver:
    """Writes shutdown events to a structlog logger as key-value events.

    structlog is imported when the observer is created (``pip install
    gracestop[structlog]``). Event names are the event types' ``event_kind``
    (``"triggered"``, ``"hook_ended"``, ...) prefixed with ``gracestop.``; levels
    follow `LoggingObserver`. Example:

        from gracestop import instrumentation as gi

        gi.set_observers([gi.StructlogObserver()])
    """

    __slots__ = ("logger",)

    def __init__(self, logger: Any = None) -> None:
        """Log to *logger*, by default ``structlog.get_logger("gracestop")``."""
        _require("structlog", "StructlogObserver")
        import structlog

        self.logger: Any = logger if logger is not None else structlog.get_logger("gracestop")

    def __repr__(self) -> str:
        return "StructlogObserver()"

    def __call__(self, event: Event) -> None:
        """Log one event with its fields as key-value pairs."""
        name = f"gracestop.{event.event_kind}"
        log = self.logger
        match event:
            case CoordinatorEntered(signals=signals):
                log.debug(name, signals=[s.name for s in signals])
            case ShutdownTriggered(trigger=trigger, wait_time=wait_time):
                method = log.warning if trigger.kind in ("error", "cancelled") else log.info
                method(
                    name,
                    trigger=trigger.kind,
                    signal=trigger.signal.name if trigger.signal is not None else None,
                    reason=trigger.reason,
                    wait_time=wait_time,
                )
            case SignalReceived(signal=sig, action=action):
                method = log.warning if action in ("force", "ignore") else log.info
                method(name, signal=sig.name, action=action)
            case PhaseStarted(phase=phase, hooks=hooks, limit=limit):
                log.info(name, phase=phase, hooks=hooks, limit=limit)
            case WrapUpTimeUp(wrap_up_time=wrap_up_time, hooks=hooks, holds=holds):
                log.warning(name, wrap_up_time=wrap_up_time, hooks=list(hooks), holds=list(holds))
            case PhaseEnded(phase=phase, duration=duration):
                log.debug(name, phase=phase, duration=duration)
            case HookStarted(name=hook, phase=phase, late=late):
                log.debug(name, hook=hook, phase=phase.value, late=late)
            case HookEnded(name=hook, phase=phase, status=status, duration=duration, error=error):
                fields = {
                    "hook": hook,
                    "phase": phase.value,
                    "status": status.value,
                    "duration": duration,
                    "late": event.late,
                }
                if status is HookStatus.OK:
                    log.debug(name, **fields)
                elif status is HookStatus.FAILED:
                    log.warning(name, **fields, exc_info=error)
                else:
                    log.warning(name, **fields, error=None if error is None else str(error))
            case Progress(pending=pending, holds=holds, time_left=time_left):
                log.info(name, pending=list(pending), holds=list(holds), time_left=time_left)
            case ForcedQuit(by=by, pending=pending, signal=sig):
                log.warning(
                    name, by=by, pending=list(pending), signal=sig.name if sig is not None else None
                )
            case DiagnosticsWritten(path=path, kind=kind):
                log.info(name, path=path, kind=kind)
            case ShutdownFinished(report=report):
                method = log.info if report.ok else log.warning
                method(
                    name,
                    ok=report.ok,
                    forced=report.forced,
                    forced_by=report.forced_by,
                    duration=report.duration,
                    summary=report.summary(),
                    never_started=list(_never_started(report)),
                )


# ---------------------------------------------------------------------- prometheus


class PrometheusObserver:
    """Records shutdown metrics with ``prometheus_client`` (``pip install
    gracestop[prometheus]``, imported when the observer is created).

    Metrics (``namespace`` prefixes each name, ``gracestop`` by default):

    - ``gracestop_shutdowns_total{trigger}``: shutdowns begun, by trigger kind;
    - ``gracestop_shutdown_duration_seconds``: histogram of shutdown durations;
    - ``gracestop_hook_duration_seconds{phase,status}``: histogram of hook
      durations (hooks that never started are not observed);
    - ``gracestop_open_holds``: gauge of the holds open right now, summed over
      the coordinators that have been entered and have not finished their
      shutdown (read when the metrics are scraped).

    Create one per registry: registering the same names twice in one registry
    is refused by ``prometheus_client``. Tests pass a fresh ``CollectorRegistry``:

        from prometheus_client import CollectorRegistry
        from gracestop import instrumentation as gi

        registry = CollectorRegistry()
        observer = gi.PrometheusObserver(registry=registry)
    """

    __slots__ = ("_live", "hook_duration", "open_holds", "shutdown_duration", "shutdowns")

    def __init__(
        self, *, registry: CollectorRegistry | None = None, namespace: str = "gracestop"
    ) -> None:
        """Create the metrics in *registry* (default: ``prometheus_client.REGISTRY``)."""
        _require("prometheus_client", "PrometheusObserver", extra="prometheus")
        import prometheus_client

        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"namespace must be a non-empty str; got {namespace!r}")
        reg = registry if registry is not None else prometheus_client.REGISTRY
        self.shutdowns = prometheus_client.Counter(
            "shutdowns",
            "Shutdowns begun, by trigger kind.",
            ["trigger"],
            namespace=namespace,
            registry=reg,
        )
        self.shutdown_duration = prometheus_client.Histogram(
            "shutdown_duration_seconds",
            "Seconds from the trigger to the end of the shutdown.",
            namespace=namespace,
            registry=reg,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.hook_duration = prometheus_client.Histogram(
            "hook_duration_seconds",
            "Seconds each shutdown hook ran, by phase and status.",
            ["phase", "status"],
            namespace=namespace,
            registry=reg,
        )
        self.open_holds = prometheus_client.Gauge(
            "open_holds",
            "Holds (work in flight) open right now.",
            namespace=namespace,
            registry=reg,
        )
        # Coordinator number -> its open-hold counter, for the coordinators running.
        self._live: dict[int, Callable[[], int]] = {}
        self.open_holds.set_function(self._count_open_holds)

    def _count_open_holds(self) -> float:
        """At scrape time, possibly in the metrics server's thread."""
        return float(sum(count() for count in tuple(self._live.values())))

    def __repr__(self) -> str:
        return "PrometheusObserver()"

    def __call__(self, event: Event) -> None:
        """Update the metrics for one event."""
        match event:
            case ShutdownTriggered(trigger=trigger):
                self.shutdowns.labels(trigger=trigger.kind).inc()
            case HookEnded(phase=phase, status=status, duration=duration) if duration is not None:
                self.hook_duration.labels(phase=phase.value, status=status.value).observe(duration)
            case CoordinatorEntered(coordinator_id=number, open_holds=count) if count:
                self._live[number] = count
            case ShutdownFinished(report=report, coordinator_id=number):
                self._live.pop(number, None)
                self.shutdown_duration.observe(report.duration)
            case _:
                pass
