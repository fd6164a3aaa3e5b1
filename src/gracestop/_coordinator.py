"""ShutdownCoordinator: states, phases, holds and the deadline."""

from __future__ import annotations

import collections
import contextvars
import dataclasses
import functools
import itertools
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from ._config import ShutdownConfig, _describe
from ._hooks import Hook, HookContext, Hooks, Waiter, _Registrar, default_hooks, find_waiter
from ._report import (
    HookResult,
    HookStatus,
    Phase,
    PhaseSpan,
    ShutdownError,
    ShutdownReport,
    State,
    Trigger,
)
from ._report_file import REPORT_FILE_ENV, write_report_file
from ._runs import Group, HookRun, call_sync_hook_in_thread, group_done
from ._signals import SignalListener, claimed_signals, loop_caller
from ._testing import apply_testing, is_testing
from ._watchdog import Watchdog
from .instrumentation import (
    CoordinatorEntered,
    DiagnosticsWritten,
    Event,
    ForcedQuit,
    HookEnded,
    HookStarted,
    Observer,
    PhaseEnded,
    PhaseStarted,
    Progress,
    ShutdownFinished,
    ShutdownTriggered,
    SignalReceived,
    WrapUpTimeUp,
    _check_observers,
    _Dispatcher,
    _names,
    _secs,
    get_observers,
)

if TYPE_CHECKING:
    import datetime
    from pathlib import Path

    from typing_extensions import Self, Unpack

    from ._config import ConfigOverrides
    from ._diagnostics import Diagnostics
    from ._systemd import SystemdNotifier

__all__ = ["Coordinator", "Hold", "ShutdownCoordinator"]

logger = logging.getLogger("gracestop")

_DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_ids = itertools.count(1)
# The innermost entered coordinator: a coordinator entered inside another one
# (a library's service embedded in an application) becomes its child.
_current: contextvars.ContextVar[ShutdownCoordinator | None] = contextvars.ContextVar(
    "gracestop_current_coordinator", default=None
)


class Hold:
    """Work in flight: while a hold is open, the wrap-up phase does not end early.

    Get one from `ShutdownCoordinator.hold` and use it as an async or a
    plain context manager (the plain form also works in worker threads):

        async with coord.hold("request"):
            await handle(request)
    """

    __slots__ = ("_coord", "_key", "name")

    def __init__(self, coord: ShutdownCoordinator, name: str) -> None:
        self._coord = coord
        self.name = name
        self._key: int | None = None

    def __enter__(self) -> Self:
        """Open the hold (works in any thread)."""
        if self._key is not None:
            raise ShutdownError(f"hold {self.name!r} is already open; call hold() for another")
        self._key = self._coord._open_hold(self.name)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the hold; the wrap-up phase may end once no hold is open."""
        key, self._key = self._key, None
        if key is not None:
            self._coord._close_hold(key)

    async def __aenter__(self) -> Self:
        """Open the hold."""
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the hold."""
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"<Hold {self.name!r} {'open' if self._key is not None else 'closed'}>"


class ShutdownCoordinator(_Registrar):
    """Runs a service's graceful shutdown: drain, wrap-up hooks, shutdown hooks,
    all within a hard deadline.

    Use it as an async context manager around the service:

        async with ShutdownCoordinator(wait_time=10) as coord:
            waiter = coord.add_wrap_up_listener(flush_queue)
            await start_server(coord)
            await anyio.sleep_forever()  # cancelled once the shutdown has finished
        print(coord.report.render() if coord.report else "")

    On entering, it claims SIGTERM and SIGINT (when in the main thread) and starts
    a signal listener task. A signal, `shutdown`, or leaving the block
    triggers the shutdown: readiness turns off at once, ``drain_delay`` passes,
    the wrap-up hooks run (the phase ends early once they have ended and no
    `hold` is open, and at the latest after ``wrap_up_time``), then the
    shutdown hooks run. ``wait_time`` after the trigger whatever is still running
    is cancelled; if the event loop itself is stuck, a watchdog thread (armed
    when a signal triggered the shutdown, or always with ``hard_exit=True``,
    until every hook has ended; under `gracestop.run`, until the event loop has
    ended) ends the process ``watchdog_grace`` later.

    Args:
        config: a [`ShutdownConfig`][gracestop.ShutdownConfig]; defaults to ``ShutdownConfig()``.
        hooks: a [`Hooks`][gracestop.Hooks] registry or an iterable of them; defaults to
            [`default_hooks`][gracestop.default_hooks].
        observers: callables told about each shutdown event (see
            `instrumentation`), in addition to the global ones (by
            default one `LoggingObserver`;
            ``set_observers([])`` silences the logging).
        **overrides: [`ShutdownConfig`][gracestop.ShutdownConfig] fields, applied over ``config``.
    """

    def __init__(
        self,
        config: ShutdownConfig | None = None,
        *,
        hooks: Hooks | Iterable[Hooks] | None = None,
        observers: Iterable[Observer] | None = None,
        **overrides: Unpack[ConfigOverrides],
    ) -> None:
        self._observers = None if observers is None else _check_observers(observers)
        if config is None:
            config = ShutdownConfig()
        elif not isinstance(config, ShutdownConfig):
            raise TypeError(f"config must be a ShutdownConfig or None; got {_describe(config)}")
        self._config = config.replace(**overrides) if overrides else config
        if is_testing():
            self._config = apply_testing(config, overrides, self._config)
        self._registries = _registries(hooks)
        self._hooks_given = hooks is not None
        self._parent: ShutdownCoordinator | None = None
        self._parent_hold: int | None = None
        self._children: list[ShutdownCoordinator] = []
        self._context_token: contextvars.Token[ShutdownCoordinator | None] | None = None
        self._own = Hooks()
        self._id = next(_ids)
        self._lock = threading.RLock()
        self._state = State.IDLE
        self._trigger: Trigger | None = None
        self._trigger_mono = 0.0
        self._deadline = math.inf
        self._loop_thread: int | None = None
        self._call: Callable[[Callable[[], object]], None] | None = None
        self._tg: TaskGroup | None = None
        self._hook_tg: TaskGroup | None = None
        self._body_scope: anyio.CancelScope | None = None
        self._run_scope: anyio.CancelScope | None = None
        self._trigger_event: anyio.Event | None = None
        self._finished_event: anyio.Event | None = None
        self._changed: anyio.Event | None = None
        # One-shot events for wait_for(), set once their state is reached: a
        # waiter is woken by that state change only, not by every hold or hook.
        self._state_events: dict[State, anyio.Event] = {}
        self._wrap_up_deadline: float | None = None
        self._listener: SignalListener | None = None
        self._diagnostics: Diagnostics | None = None
        self._watchdog: Watchdog | None = None
        # Set by gracestop.run(): the watchdog stays armed past the block, until
        # the event loop has ended (tasks outside the block that ignore their
        # cancellation would hold asyncio's teardown).
        self._keep_watchdog = False
        self._block_left = False
        self._runs: list[HookRun] = []
        # Runs not ended yet, per phase: phase ends are checked in O(1).
        self._unfinished: dict[Phase, int] = {Phase.WRAP_UP: 0, Phase.SHUTDOWN: 0}
        self._pending: dict[Phase, list[HookRun]] = {Phase.WRAP_UP: [], Phase.SHUTDOWN: []}
        self._phase_started: set[Phase] = set()
        self._late_queue: collections.deque[HookRun] = collections.deque()
        self._admitting_closed = False
        self._window_over = False
        self._sequence_done: set[Phase] = set()
        self._spans: dict[str, list[float | None]] = {}
        self._holds: dict[int, str] = {}
        self._hold_ids = itertools.count(1)
        self._open_holds_at_window: tuple[str, ...] = ()
        self._signals_received = 0
        self._early_signals: list[signal.Signals] = []
        self._forced: Literal["signal", "deadline"] | None = None
        self._reraise: BaseException | None = None
        self._thread_limiter: anyio.CapacityLimiter | None = None
        self._report: ShutdownReport | None = None
        self._dispatch = _Dispatcher(())
        self._systemd: SystemdNotifier | None = None
        # Hooks cut short by the deadline, for the forced-quit event.
        self._cut_short: list[str] = []
        self._stages_ended: set[str] = set()

    # ------------------------------------------------------------------ properties

    @property
    def config(self) -> ShutdownConfig:
        """The configuration in force."""
        return self._config

    @property
    def state(self) -> State:
        """Where the coordinator is; moves forward only."""
        return self._state

    @property
    def ready(self) -> bool:
        """True only while ``RUNNING``: readiness probes fail from the trigger on."""
        return self._state is State.RUNNING

    @property
    def accepting(self) -> bool:
        """True until the wrap-up phase starts: during ``drain_delay`` new work is
        still taken, because load balancers still route to this instance."""
        return self._state.rank <= State.DRAINING.rank and self._state is not State.IDLE

    @property
    def trigger(self) -> Trigger | None:
        """What started the shutdown, once it has started."""
        return self._trigger

    @property
    def report(self) -> ShutdownReport | None:
        """The report, once the shutdown has finished."""
        return self._report

    @property
    def signals(self) -> tuple[signal.Signals, ...]:
        """The signals this coordinator listens to (empty before entering)."""
        return self._listener.signals if self._listener is not None else ()

    @property
    def wrap_up_deadline(self) -> float | None:
        """When the wrap-up window ends, on anyio's clock (``anyio.current_time()``).

        ``None`` until the wrap-up phase starts; then ``wrap_up_time`` after its
        start, or the ``wait_time`` deadline if that comes first. It does not
        move when the phase ends early (no hook nor hold left):

            await coord.wait_for(State.WRAPPING_UP)
            left = coord.wrap_up_deadline - anyio.current_time()
        """
        return self._wrap_up_deadline

    async def wait_for(self, state: State) -> None:
        """Return once the coordinator has reached ``state`` or gone past it.

        States only move forward (``RUNNING``, ``DRAINING``, ``WRAPPING_UP``,
        ``SHUTTING_DOWN``, ``STOPPED``), so this returns at once if ``state`` is
        behind already. A shutdown without drain delay skips ``DRAINING``;
        waiting for it returns at the wrap-up phase. ``WRAPPING_UP`` is reached
        once the wrap-up phase has begun, when `wrap_up_deadline` is known.
        The waiter is woken by this change only. Call it on the coordinator's event loop:

            await coord.wait_for(gracestop.State.SHUTTING_DOWN)
            await close_websockets()

        Raises:
            TypeError: ``state`` is not a [`State`][gracestop.State].
        """
        if not isinstance(state, State):
            raise TypeError(f"state must be a gracestop.State; got {_describe(state)}")
        if self._reached_rank() >= state.rank:
            return
        event = self._state_events.get(state)
        if event is None:
            event = self._state_events[state] = anyio.Event()
        await event.wait()

    def _reached_rank(self) -> int:
        """The rank wait_for() goes by: ``WRAPPING_UP`` counts once the phase has
        begun (``wrap_up_deadline`` is known), not at a trigger without drain."""
        state = self._state
        if state is State.WRAPPING_UP and self._wrap_up_deadline is None:
            return State.DRAINING.rank
        return state.rank

    def _wake_state_waiters(self) -> None:
        """Set the wait_for() events of every state reached (loop thread)."""
        rank = self._reached_rank()
        for state in [s for s in self._state_events if s.rank <= rank]:
            self._state_events.pop(state).set()

    @property
    def open_holds(self) -> tuple[str, ...]:
        """Names of the holds open right now."""
        with self._lock:
            return tuple(self._holds.values())

    # ------------------------------------------------------------------ registration

    def _register(self, hook: Hook) -> None:
        with self._lock:
            if self._trigger is None:
                self._own._register(hook)
                return
            if self._state is State.STOPPED or self._admitting_closed:
                raise ShutdownError(
                    f"cannot register hook {hook.name!r}: the coordinator has stopped "
                    "(every hook has ended)"
                )
            run = HookRun(hook, late=True)
            self._add_run(run)
        self._on_loop(functools.partial(self._admit_late, run))

    def _add_run(self, run: HookRun) -> None:
        """Track a run (under the lock)."""
        self._runs.append(run)
        self._unfinished[run.hook.phase] += 1

    def _admit_late(self, run: HookRun) -> None:
        """Join the phase if it has not started, else start at once (loop thread)."""
        phase = run.hook.phase
        if self._state is State.STOPPED or (self._hook_tg is None and self._sequence_done):
            self._end_run(run, HookStatus.CANCELLED)
        elif phase in self._phase_started:
            # Started by the admitter task: this may run in a plain loop callback
            # (registration from another thread), where no task can be spawned.
            self._late_queue.append(run)
            self._notify()
        else:
            self._pending[phase].append(run)

    async def _admitter(self) -> None:
        """Start late hooks of running phases, until the phases are over."""
        while True:
            await self._wait_until(lambda: bool(self._late_queue) or self._admitting_closed)
            while self._late_queue and self._hook_tg is not None:
                run = self._late_queue.popleft()
                self._hook_tg.start_soon(
                    self._run_hook, run, name=f"gracestop hook {run.hook.name}"
                )
            if self._admitting_closed:
                return

    def waiter(self, func: Callable[..., Any]) -> Waiter:
        """The [`Waiter`][gracestop.Waiter] of a hook registered with ``func`` (by decorator,
        here or on one of the coordinator's registries)."""
        with self._lock:
            hooks = [r.hook for r in self._runs] + list(self._own.snapshot())
        for registry in self._registries:
            hooks.extend(registry.snapshot())
        return find_waiter(hooks, func)

    def set_time_to_force_quit(self, seconds: float | str | datetime.timedelta) -> None:
        """Set ``wait_time``, the deadline from trigger to force quit (go-zero's
        ``SetTimeToForceQuit``). Only before the shutdown is triggered."""
        with self._lock:
            if self._trigger is not None:
                raise ShutdownError(
                    "set_time_to_force_quit() must be called before the shutdown is triggered"
                )
            self._config = self._config.replace(wait_time=seconds)

    # ------------------------------------------------------------------ holds

    def hold(self, name: str = "work") -> Hold:
        """A context manager marking work in flight (``async with`` or ``with``).

        While a hold is open the wrap-up phase does not end early, so the shutdown
        phase (closing the database, say) does not start under a running request.
        Holds still open when ``wrap_up_time`` runs out are named in the report.
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be a str; got {_describe(name)}")
        if not name:
            raise ValueError("name must not be empty")
        return Hold(self, name)

    def _open_hold(self, name: str) -> int:
        with self._lock:
            key = next(self._hold_ids)
            self._holds[key] = name
        # No event per hold: holds are opened per request, on the hot path.
        # Observers that want the number read it when they need it
        # (CoordinatorEntered.open_holds).
        return key

    def _close_hold(self, key: int) -> None:
        with self._lock:
            self._holds.pop(key, None)
        self._notify()

    def _open_hold_count(self) -> int:
        """How many holds are open; callable from any thread (a metrics scrape)."""
        return len(self._holds)

    def notify_ready(self) -> None:
        """Tell systemd the service is ready (``READY=1``), for ``systemd_ready="manual"``.

        With ``systemd_ready="manual"`` the coordinator does not send ``READY=1``
        on entering: call this once the service really is ready (its port is
        bound, its caches are warm), so ``systemctl start`` returns only then:

            async with ShutdownCoordinator(systemd_ready="manual") as coord:
                await start_server(coord)
                coord.notify_ready()

        Does nothing without ``NOTIFY_SOCKET`` (not run by systemd), when
        ``READY=1`` was sent already (it is idempotent), or once the shutdown has
        begun. Call it on the event loop's thread.

        Raises:
            ShutdownError: the coordinator has not been entered.
        """
        if self._state is State.IDLE:
            raise ShutdownError("notify_ready() needs an entered coordinator (use `async with`)")
        if self._systemd is not None and self._trigger is None:
            self._systemd.ready()

    # ------------------------------------------------------------------ triggering

    def shutdown(self, reason: str = "manual") -> None:
        """Trigger the shutdown. Idempotent; callable from the event loop thread
        and from any other thread; returns at once."""
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str; got {_describe(reason)}")
        if self._state is State.IDLE:
            raise ShutdownError("shutdown() needs an entered coordinator (use `async with`)")
        self._start(Trigger("manual", reason=reason))

    async def triggered(self) -> Trigger:
        """Wait until the shutdown has begun and return its trigger (go-zero ``Done()``)."""
        event = self._entered_event(self._trigger_event, "triggered")
        await event.wait()
        assert self._trigger is not None
        return self._trigger

    async def finished(self) -> ShutdownReport:
        """Wait until every hook has ended and return the report."""
        event = self._entered_event(self._finished_event, "finished")
        await event.wait()
        assert self._report is not None
        return self._report

    def _entered_event(self, event: anyio.Event | None, what: str) -> anyio.Event:
        if event is None:
            raise ShutdownError(f"{what}() needs an entered coordinator (use `async with`)")
        return event

    def _start(self, trigger: Trigger) -> bool:
        """Record the trigger (first one wins), flip readiness, arm the watchdog."""
        with self._lock:
            if self._trigger is not None or self._state.rank < State.RUNNING.rank:
                return False
            self._trigger = trigger
            self._trigger_mono = time.monotonic()
            # Readiness turns off now; new work is still taken only while a drain
            # delay applies.
            self._state = State.DRAINING if self._drains(trigger) else State.WRAPPING_UP
            seen = {id(r.hook) for r in self._runs}
            for registry in (*self._registries, self._own):
                for hook in registry.snapshot():
                    if id(hook) not in seen:
                        seen.add(id(hook))
                        self._add_run(HookRun(hook))
            for registry in self._registries:
                registry._read_by_shutdown(+1)
            for run in self._runs:
                self._pending[run.hook.phase].append(run)
        if trigger.kind == "signal":
            self._signals_received = 1
            self._arm_watchdog()
        elif self._config.hard_exit:
            self._arm_watchdog()
        self._emit(ShutdownTriggered(trigger, self._config.wait_time))
        self._on_loop(self._set_trigger_event)
        self._on_loop(self._wake_state_waiters)
        with self._lock:
            children = list(self._children)
        for child in children:
            self._start_child(child, trigger)
        return True

    def _set_trigger_event(self) -> None:
        if self._trigger_event is not None:
            self._trigger_event.set()

    def _arm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.arm(
                self._trigger_mono + self._config.wait_time + self._config.watchdog_grace
            )

    def _on_signal(self, sig: signal.Signals) -> None:
        """A signal reached the loop thread."""
        if self._state is State.IDLE:
            # Still entering: the handler is in place but the coordinator is not
            # running yet. Keep the signal for the end of __aenter__.
            self._early_signals.append(sig)
            return
        if self._trigger is None and self._start(Trigger("signal", signal=sig, reason=sig.name)):
            return
        assert self._trigger is not None
        self._signals_received += 1
        trigger = self._trigger
        if self._state is State.STOPPED:
            self._emit(SignalReceived(sig, "after_stop", trigger))
        elif self._signals_received == 1:
            # The first signal after a manual, exit or error trigger: not a second one.
            self._emit(SignalReceived(sig, "deadline", trigger))
            self._arm_watchdog()  # a no-op with hard_exit=False: there is no watchdog
        elif self._config.second_signal == "force":
            self._emit(SignalReceived(sig, "force", trigger))
            if self._forced is None:
                self._emit(ForcedQuit("signal", tuple(self._all_pending()), sig))
            self._force("signal")
        else:
            self._emit(SignalReceived(sig, "ignore", trigger))

    def _forced_by(self) -> Literal["signal", "deadline"] | None:
        return self._forced

    def _force(self, by: Literal["signal", "deadline"]) -> None:
        if self._forced is None:
            self._forced = by
        if self._run_scope is not None:
            self._run_scope.cancel()
        with self._lock:
            children = list(self._children)
        for child in children:
            # The child may run on another thread's event loop.
            child._on_loop(functools.partial(child._force, by))

    # ------------------------------------------------------------------ loop plumbing

    def _on_loop(self, fn: Callable[[], object]) -> None:
        """Run fn on the loop thread: now if we are on it, else as soon as possible."""
        if self._loop_thread == threading.get_ident():
            fn()
        elif self._call is not None:
            self._call(fn)

    def _diagnostics_written(self, path: Path, kind: str) -> None:
        self._emit(DiagnosticsWritten(str(path), kind))

    def _emit(self, event: Event) -> None:
        """Tell the observers, on the loop thread (now if we are on it)."""
        if self._dispatch.observers:
            self._on_loop(functools.partial(self._dispatch, event))

    def _notify(self) -> None:
        """Wake whoever waits for hooks to end or holds to close."""
        self._on_loop(self._set_changed)

    def _set_changed(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        """Claim the signals, start the listener task and the watchdog thread.

        Raises:
            ShutdownError: the coordinator was entered before, or a signal asked
                for explicitly is held by another coordinator or cannot be claimed
                outside the main thread.
        """
        with self._lock:
            if self._state is not State.IDLE:
                raise ShutdownError(
                    "a ShutdownCoordinator runs once; create a new one for another run"
                )
        parent = _current.get()
        if parent is not None and parent._state not in (State.IDLE, State.STOPPED):
            self._parent = parent
            if not self._hooks_given and default_hooks in parent._registries:
                # The enclosing coordinator runs the default registry already.
                self._registries = ()
        self._loop_thread = threading.get_ident()
        self._call = loop_caller()
        self._start_observers()
        self._trigger_event = anyio.Event()
        self._finished_event = anyio.Event()
        listener = SignalListener(
            self._resolve_signals(),
            self._config.signal_mode,
            self._on_signal,
            owner=f"ShutdownCoordinator#{self._id}",
        )
        listener.claim()
        self._listener = listener
        try:
            if self._config.diagnostics:
                # Imported only when asked for: import gracestop stays light.
                from ._diagnostics import claim_diagnostics

                self._diagnostics = claim_diagnostics(
                    self._config,
                    f"ShutdownCoordinator#{self._id}",
                    nested=self._parent is not None,
                    on_written=self._diagnostics_written,
                )
            if self._config.hard_exit is not False:
                self._watchdog = Watchdog(
                    exit_code=self._config.force_exit_code,
                    describe_pending=self._describe_pending,
                    before_exit=self._write_report_at_watchdog,
                )
                self._watchdog.start()
            self._tg = anyio.create_task_group()
            await self._tg.__aenter__()
        except BaseException:
            self._release()
            raise
        try:
            await self._tg.start(listener.run, name="gracestop signal listener")
            if self._diagnostics is not None:
                await self._tg.start(
                    self._diagnostics.run, self._trigger_event, name="gracestop diagnostics"
                )
            self._tg.start_soon(self._runner, name="gracestop shutdown runner")
            if self._systemd is not None and self._systemd.watchdog_interval is not None:
                self._tg.start_soon(self._systemd.ping_watchdog, name="gracestop sd watchdog")
        except BaseException as exc:
            self._tg.cancel_scope.cancel()
            try:
                await self._tg.__aexit__(type(exc), exc, exc.__traceback__)
            finally:
                self._release()
            raise
        with self._lock:
            self._state = State.RUNNING
        self._wake_state_waiters()
        self._body_scope = anyio.CancelScope()
        self._body_scope.__enter__()
        self._context_token = _current.set(self)
        self._emit(CoordinatorEntered(listener.signals, self._id, self._open_hold_count))
        if self._parent is not None:
            self._adopt_by(self._parent)
        early, self._early_signals = self._early_signals, []
        for sig in early:
            self._on_signal(sig)
        return self

    def _start_observers(self) -> None:
        """The observers of this run: the given or global ones, plus systemd's.

        systemd is told by the outermost coordinator only, unless
        ``systemd_notify=True`` asks a nested one to speak too.
        """
        observers = get_observers()
        if self._observers is not None:
            observers = (*observers, *self._observers)
        notify = self._config.systemd_notify
        wanted = notify or (notify is None and self._parent is None)
        if wanted and os.environ.get("NOTIFY_SOCKET"):
            from ._systemd import SystemdNotifier  # only under systemd

            self._systemd = SystemdNotifier.from_env(
                grace=self._config.watchdog_grace,
                ready_on_enter=self._config.systemd_ready == "enter",
            )
            if self._systemd is not None:
                observers = (*observers, self._systemd)
        self._dispatch = _Dispatcher(observers)

    def _adopt_by(self, parent: ShutdownCoordinator) -> None:
        """Become a child: the parent's trigger triggers this coordinator, and the
        parent's wrap-up phase waits for this one's whole shutdown, as for a hold."""
        self._parent_hold = parent._open_hold(f"coordinator #{self._id}")
        with parent._lock:
            parent._children.append(self)
            parent_trigger = parent._trigger
        if parent_trigger is not None:
            parent._start_child(self, parent_trigger)

    def _start_child(self, child: ShutdownCoordinator, trigger: Trigger) -> None:
        """Trigger a child; it inherits this coordinator's watchdog deadline."""
        child._start(_child_trigger(trigger))
        deadline = self._watchdog.deadline if self._watchdog is not None else None
        if deadline is not None and child._watchdog is not None:
            child._watchdog.arm(deadline)

    def _leave_parent(self) -> None:
        parent, key = self._parent, self._parent_hold
        if parent is None or key is None:
            return
        self._parent_hold = None
        with parent._lock:
            if self in parent._children:
                parent._children.remove(self)
        parent._close_hold(key)

    def _resolve_signals(self) -> tuple[signal.Signals, ...]:
        wanted = self._config.signals
        in_main = threading.current_thread() is threading.main_thread()
        if wanted is None:
            if not in_main or self._parent is not None:
                # Off the main thread, or inside another coordinator that is in
                # charge of the process's shutdown.
                return ()
            taken = claimed_signals()
            if any(s in taken for s in _DEFAULT_SIGNALS):
                logger.debug("default signals are held by another coordinator; going without")
                return ()
            return _DEFAULT_SIGNALS
        if wanted and not in_main:
            raise ShutdownError(
                "signals can only be claimed in the main thread; "
                f"signals={tuple(s.name for s in wanted)} was asked for in "
                f"thread {threading.current_thread().name!r} (pass signals=() there)"
            )
        return wanted

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Run the shutdown if the block ended first, wait for it, restore signals.

        The body's own exception propagates unchanged; a ``KeyboardInterrupt`` or
        ``SystemExit`` raised by a hook is raised here once the shutdown is over.
        """
        assert self._body_scope is not None and self._tg is not None
        swallowed = bool(self._body_scope.__exit__(exc_type, exc, tb))
        if swallowed:
            exc_type, exc, tb = None, None, None
        if self._trigger is None:
            if exc is None:
                self._start(Trigger("exit"))
            elif isinstance(exc, SystemExit):
                self._start(Trigger("exit", reason=f"SystemExit({exc.code!r})"))
            elif isinstance(exc, anyio.get_cancelled_exc_class()):
                self._start(Trigger("cancelled", reason="cancelled from outside"))
            else:
                self._start(Trigger("error", reason=f"{type(exc).__name__}: {exc}"))
        finished = self._finished_event
        assert finished is not None
        late_cancel: BaseException | None = None
        try:
            while not finished.is_set():
                try:
                    with anyio.CancelScope(shield=True):
                        await finished.wait()
                except anyio.get_cancelled_exc_class() as cancel:
                    # A native asyncio Task.cancel() (asyncio.timeout, wait_for)
                    # passes anyio's shield. The shutdown still runs to its end;
                    # the cancellation is raised once it has.
                    late_cancel = cancel
            if self._diagnostics is not None:
                # A diagnostics write must not hold the exit up for long: the
                # watchdog is stopped by now.
                self._diagnostics.stop(self._config.watchdog_grace)
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(None, None, None)
        finally:
            self._release()
            if self._context_token is not None:
                _current.reset(self._context_token)
                self._context_token = None
        if self._reraise is not None:
            reraise, self._reraise = self._reraise, None
            raise reraise
        if late_cancel is not None:
            raise late_cancel
        return swallowed

    def _abandoned_threads(self) -> bool:
        """Whether a sync hook's thread was left running at its deadline."""
        return any(run.abandoned for run in self._runs)

    def _release(self) -> None:
        if self._systemd is not None:
            self._systemd.close()
        if self._listener is not None:
            self._listener.release()
        if self._diagnostics is not None:
            self._diagnostics.release()
        self._block_left = True
        self._stop_watchdog()

    def _stop_watchdog(self, *, loop_ended: bool = False) -> None:
        """Disarm the watchdog, unless a sync hook's thread was abandoned (then it
        stays armed until the process exits). Under `gracestop.run` it is kept
        armed until the event loop has ended (``loop_ended``)."""
        if self._watchdog is None or self._abandoned_threads():
            return
        if loop_ended or not self._keep_watchdog:
            self._watchdog.stop()

    async def _runner(self) -> None:
        assert self._trigger_event is not None
        # Shielded: an outer cancellation must not kill the runner before
        # __aexit__ has triggered the shutdown it then waits for.
        with anyio.CancelScope(shield=True):
            await self._trigger_event.wait()
            try:
                await self._run_shutdown()
            except BaseException:  # pragma: no cover - a bug here must not hang the exit
                logger.exception("gracestop: internal error during the shutdown")
            finally:
                self._finish()
            # Let tasks woken by the finish (``await coord.finished()``) take their
            # result before the body is cancelled (one checkpoint for asyncio, a
            # second for trio's batches).
            await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()
        if self._body_scope is not None:
            self._body_scope.cancel()

    async def _run_shutdown(self) -> None:
        assert self._trigger is not None
        left = self._config.wait_time - (time.monotonic() - self._trigger_mono)
        self._deadline = anyio.current_time() + max(0.0, left)
        # As many sync hooks at once as anyio's default thread pool allows.
        self._thread_limiter = anyio.CapacityLimiter(40)
        with anyio.CancelScope(shield=True, deadline=self._deadline) as run_scope:
            self._run_scope = run_scope
            if self._forced is not None:
                run_scope.cancel()
            async with anyio.create_task_group() as side:
                try:
                    await self._phases(side)
                finally:
                    side.cancel_scope.cancel()
        if run_scope.cancelled_caught and self._forced is None:
            self._force("deadline")
            not_started = [
                f"{r.hook.phase} hook {r.hook.name} (not started)"
                for r in self._runs
                if r.status is HookStatus.PENDING
            ]
            holds = [f"hold {h}" for h in self.open_holds]
            self._emit(ForcedQuit("deadline", (*self._cut_short, *not_started, *holds)))

    async def _phases(self, side: TaskGroup) -> None:
        assert self._trigger is not None

        def start_helpers() -> None:
            tg.start_soon(self._admitter, name="gracestop late hooks")
            side.start_soon(self._progress_loop, name="gracestop progress")

        async with anyio.create_task_group() as tg:
            self._hook_tg = tg
            # Without a drain, the helper tasks start once the first wrap-up hooks
            # have (spawning them costs more than the rest of the signal path).
            drains = self._drains(self._trigger)
            if drains:
                start_helpers()
            try:
                if drains:
                    await self._drain()
                self._set_state(State.WRAPPING_UP)
                self._span_start("wrap_up")
                self._wrap_up_deadline = min(
                    anyio.current_time() + self._config.wrap_up_time, self._deadline
                )
                self._wake_state_waiters()
                self._emit(
                    PhaseStarted(
                        "wrap_up", len(self._pending[Phase.WRAP_UP]), self._config.wrap_up_time
                    )
                )
                groups = self._start_phase(Phase.WRAP_UP)
                if not drains:
                    # One loop iteration for the first hooks to start; shielded, so
                    # that what follows runs as it would without this pause.
                    await anyio.lowlevel.cancel_shielded_checkpoint()
                    start_helpers()
                tg.start_soon(self._run_phase, Phase.WRAP_UP, groups, name="gracestop wrap-up")
                with anyio.move_on_after(self._config.wrap_up_time):
                    await self._wait_until(self._wrap_up_over)
                on_its_own = self._wrap_up_over()
                if not on_its_own:
                    self._window_closed()
                self._window_over = True
                self._notify()
                if on_its_own:
                    # Stages follow each other; they overlap only when the wrap-up
                    # window ran out (WrapUpTimeUp) with wrap-up work still running.
                    self._span_end("wrap_up")
                    self._stage_ended("wrap_up")
                self._set_state(State.SHUTTING_DOWN)
                self._span_start("shutdown")
                self._emit(PhaseStarted("shutdown", len(self._pending[Phase.SHUTDOWN]), None))
                groups = self._start_phase(Phase.SHUTDOWN)
                tg.start_soon(self._run_phase, Phase.SHUTDOWN, groups, name="gracestop shutdown")
                await self._wait_until(lambda: self._phase_over(Phase.WRAP_UP))
                self._span_end("wrap_up")
                self._stage_ended("wrap_up")
                await self._wait_until(lambda: self._phase_over(Phase.SHUTDOWN))
                # Children are part of this shutdown: do not stop before them.
                await self._wait_until(lambda: not self._children)
                while True:
                    await self._wait_until(self._all_over)
                    with self._lock:
                        # Under the lock, so a registration from another thread
                        # either counts before this check or is refused after it.
                        if self._all_over():
                            self._admitting_closed = True
                            break
            finally:
                self._admitting_closed = True
                self._notify()
        self._hook_tg = None

    def _drains(self, trigger: Trigger) -> bool:
        return self._config.drain_delay > 0 and trigger.kind in ("signal", "manual")

    async def _drain(self) -> None:
        assert self._trigger is not None
        delay = self._config.drain_delay
        self._span_start("drain")
        self._emit(PhaseStarted("drain", 0, delay))
        try:
            await anyio.sleep(delay)
        finally:
            self._span_end("drain")
        self._stage_ended("drain")

    def _stage_ended(self, name: Literal["drain", "wrap_up", "shutdown"]) -> None:
        span = self._spans.get(name)
        if name in self._stages_ended or span is None or span[0] is None or span[1] is None:
            return
        self._stages_ended.add(name)
        self._emit(PhaseEnded(name, span[1] - span[0]))

    def _wrap_up_over(self) -> bool:
        with self._lock:
            holds = bool(self._holds)
        return self._phase_over(Phase.WRAP_UP) and not holds

    def _all_over(self) -> bool:
        return self._phase_over(Phase.WRAP_UP) and self._phase_over(Phase.SHUTDOWN)

    def _phase_over(self, phase: Phase) -> bool:
        return phase in self._sequence_done and self._unfinished[phase] == 0

    def _window_closed(self) -> None:
        holds = self.open_holds
        self._open_holds_at_window = holds
        still = [
            r.hook.name for r in self._runs if r.hook.phase is Phase.WRAP_UP and not r.status.final
        ]
        self._emit(WrapUpTimeUp(self._config.wrap_up_time, tuple(still), holds))

    def _start_phase(self, phase: Phase) -> list[list[HookRun]]:
        """Start the phase: take its hooks known so far, sort them into ``order``
        groups and start the first group at once; :meth:`_run_phase` does the rest.

        Started here rather than by the phase's task so that the first hooks run
        one loop iteration sooner after the trigger.
        """
        runs = list(self._pending[phase])
        self._pending[phase].clear()
        self._phase_started.add(phase)
        by_order: dict[int, list[HookRun]] = {}
        for run in runs:
            by_order.setdefault(run.hook.order, []).append(run)
        groups = [by_order[order] for order in sorted(by_order)]
        for group in groups:
            counter = Group(len(group))
            for run in group:
                run.group = counter
        if groups:
            self._start_runs(groups[0])
        return groups

    def _start_runs(self, runs: Iterable[HookRun]) -> None:
        assert self._hook_tg is not None
        for run in runs:
            self._hook_tg.start_soon(self._run_hook, run, name=f"gracestop hook {run.hook.name}")

    async def _run_phase(self, phase: Phase, groups: list[list[HookRun]]) -> None:
        """Run the phase's ``order`` groups one after the other, lower ``order``
        first; the first one was started by :meth:`_start_phase`.

        When the wrap-up window closes, the wrap-up groups still waiting for their
        turn start at once, beside the shutdown hooks, rather than after them.
        """

        def cut_short() -> bool:
            return phase is Phase.WRAP_UP and self._window_over

        try:
            for index, group in enumerate(groups):
                if cut_short():
                    # Every group from the second on that has not started yet.
                    self._start_runs([r for later in groups[max(index, 1) :] for r in later])
                    break
                if index:
                    self._start_runs(group)
                await self._wait_until(functools.partial(group_done, group, cut_short))
        finally:
            self._sequence_done.add(phase)
            self._notify()

    async def _run_hook(self, run: HookRun) -> None:
        hook = run.hook
        assert self._trigger is not None
        if self._forced is not None or run.status.final:
            self._end_run(run, HookStatus.CANCELLED)
            return
        run.status = HookStatus.RUNNING
        run.started = time.monotonic()
        timeout = hook.timeout if hook.timeout is not None else self._config.hook_timeout
        own_deadline = math.inf if timeout is None else anyio.current_time() + timeout
        context = HookContext(
            self._trigger, hook.phase, hook.name, min(own_deadline, self._deadline)
        )
        args = (context,) if hook.takes_context else ()
        self._emit(HookStarted(hook.name, hook.phase, run.late))
        status = HookStatus.OK
        try:
            with anyio.CancelScope(deadline=own_deadline) as scope:
                if hook.is_async:
                    await hook.func(*args)
                else:
                    assert self._call is not None and self._thread_limiter is not None
                    await call_sync_hook_in_thread(
                        run,
                        args,
                        min(own_deadline, self._deadline),
                        limiter=self._thread_limiter,
                        call=self._call,
                    )
            if scope.cancelled_caught:
                status = HookStatus.TIMED_OUT
                run.error = TimeoutError(f"hook {hook.name!r} timed out after {_secs(timeout)}")
        except anyio.get_cancelled_exc_class() as exc:
            if self._run_scope is None or not self._run_scope.cancel_called:
                # Not cancelled by us: the hook raised a cancellation of its own.
                status = HookStatus.FAILED
                run.error = exc
                return
            # Read through a method: _forced was set by another task while this one awaited.
            status = HookStatus.CANCELLED if self._forced_by() == "signal" else HookStatus.TIMED_OUT
            if status is HookStatus.TIMED_OUT:
                self._cut_short.append(f"{hook.phase} hook {hook.name}")
            raise
        except Exception as exc:
            status = HookStatus.FAILED
            run.error = exc
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: raised again at exit
            status = HookStatus.FAILED
            run.error = exc
            if self._reraise is None:
                self._reraise = exc
        finally:
            self._end_run(run, status)

    def _end_run(self, run: HookRun, status: HookStatus) -> None:
        if run.status.final:
            return
        run.status = status
        run.ended = time.monotonic()
        with self._lock:
            self._unfinished[run.hook.phase] -= 1
        if run.group is not None:
            run.group.pending -= 1
        hook = run.hook
        took = None if run.started is None else run.ended - run.started
        self._emit(HookEnded(hook.name, hook.phase, status, took, run.error, run.late))
        run.final = run.result(self._trigger_mono)
        hook.waiter._resolve(run.final)
        self._notify()

    def _finish(self) -> None:
        assert self._trigger is not None
        for run in self._runs:
            if not run.status.final:
                self._end_run(run, HookStatus.CANCELLED)
        now = time.monotonic()
        for name in ("drain", "wrap_up", "shutdown"):
            span = self._spans.get(name)
            if span is not None and span[1] is None and not self._forced:
                span[1] = now
            self._stage_ended(name)
        t0 = self._trigger_mono
        report = ShutdownReport(
            trigger=self._trigger,
            # Wrap-up before shutdown; within a phase, in registration order.
            results=tuple(
                r.final or r.result(t0)
                for r in sorted(self._runs, key=lambda r: r.hook.phase is Phase.SHUTDOWN)
            ),
            forced=self._forced is not None,
            duration=now - t0,
            open_holds=self._open_holds_at_window or (self.open_holds if self._forced else ()),
            phases=tuple(
                PhaseSpan(name, span[0] - t0 if span[0] is not None else 0.0, _rel(span[1], t0))
                for name, span in self._spans.items()
            ),
            forced_by=self._forced,
            wait_time=self._config.wait_time,
        )
        self._report = report
        with self._lock:
            self._state = State.STOPPED
        self._wake_state_waiters()
        self._emit(ShutdownFinished(report, self._id))
        path = self._report_path()
        if path is not None:
            write_report_file(path, report)
        # Disarmed now: what the body does after the shutdown (a shielded cleanup,
        # say) is the application's, as DESIGN's watchdog contract says. Under
        # run(), which owns the whole program, it stays armed until the event loop
        # has ended, so that a task ignoring its cancellation cannot keep the
        # process alive past the deadline.
        self._stop_watchdog()
        for registry in self._registries:
            registry._read_by_shutdown(-1)
        self._leave_parent()
        self._notify()
        if self._finished_event is not None:
            self._finished_event.set()

    def _report_path(self) -> str | None:
        """``report_file``, else ``GRACESTOP_REPORT_FILE`` (read now, as
        ``GRACESTOP_TESTING`` is: the variable works without ``from_env()``)."""
        if self._config.report_file is not None:
            return self._config.report_file
        return os.environ.get(REPORT_FILE_ENV) or None

    def _write_report_at_watchdog(self) -> None:
        """The watchdog is about to end the process (watchdog thread, bounded in
        time): write the report as it stands, running hooks timed out and waiting
        ones cancelled. A race with the stuck loop can only make it fail, which
        the watchdog reports on stderr before it exits all the same."""
        path = self._report_path()
        if path is None or self._trigger is None:
            return
        t0 = self._trigger_mono
        fate = {HookStatus.RUNNING: HookStatus.TIMED_OUT, HookStatus.PENDING: HookStatus.CANCELLED}
        results: list[HookResult] = []
        for run in sorted(self._runs, key=lambda r: r.hook.phase is Phase.SHUTDOWN):
            result = run.final or run.result(t0)
            if result.status in fate:
                result = dataclasses.replace(result, status=fate[result.status])
            results.append(result)
        now = time.monotonic()
        report = ShutdownReport(
            trigger=self._trigger,
            results=tuple(results),
            forced=True,
            duration=now - t0,
            # Not through the lock: the loop thread may be stuck holding it.
            open_holds=tuple(dict(self._holds).values()),
            phases=tuple(
                PhaseSpan(name, span[0] - t0 if span[0] is not None else 0.0, _rel(span[1], t0))
                for name, span in dict(self._spans).items()
            ),
            forced_by="deadline",
            wait_time=self._config.wait_time,
        )
        write_report_file(path, report, when=" before the watchdog's exit")

    async def _progress_loop(self) -> None:
        interval = self._config.progress_interval
        while True:
            await anyio.sleep(interval)
            pending = tuple(self._pending_parts())
            holds = self.open_holds
            if pending or holds:
                left = self._deadline - anyio.current_time()
                self._emit(Progress(pending, holds, max(0.0, left)))

    def _describe_pending(self) -> str:
        """What is still running, pending or open: for the watchdog."""
        pending = _names(self._all_pending(), limit=20)
        if pending or self._state is not State.STOPPED:
            return pending
        if self._block_left:
            return (
                "the event loop's end: every hook has ended and the `async with` block "
                "was left, but a task outside it has not ended after being cancelled (a "
                "shielded cleanup, or a task that ignores cancellation?)"
            )
        return (
            "the body of the `async with` block: every hook has ended, but the body, "
            "cancelled then, has not ended (a shielded cleanup, or a task that ignores "
            "cancellation?)"
        )

    def _all_pending(self) -> list[str]:
        """Hooks still running or not started, and open holds (counted by name)."""
        parts = self._pending_parts()
        counts: dict[str, int] = {}
        for name in self.open_holds:
            counts[name] = counts.get(name, 0) + 1
        parts.extend(f"hold {n}" + (f" x{c}" if c > 1 else "") for n, c in counts.items())
        return parts

    def _pending_parts(self) -> list[str]:
        """Each hook still running or not started, described for a person."""
        now = time.monotonic()
        parts: list[str] = []
        for run in list(self._runs):
            if run.abandoned and run.ended is not None:
                parts.append(
                    f"sync {run.hook.phase} hook {run.hook.name} "
                    f"(abandoned at its deadline {now - run.ended:.1f}s ago, "
                    "its worker thread still running)"
                )
            elif run.status is HookStatus.RUNNING and run.started is not None:
                parts.append(
                    f"{run.hook.phase} hook {run.hook.name} (running {now - run.started:.1f}s)"
                )
            elif run.status is HookStatus.PENDING:
                parts.append(f"{run.hook.phase} hook {run.hook.name} (not started)")
        return parts

    def _set_state(self, state: State) -> None:
        with self._lock:
            if state.rank > self._state.rank:
                self._state = state
        self._on_loop(self._wake_state_waiters)

    def _span_start(self, name: str) -> None:
        self._spans[name] = [time.monotonic(), None]

    def _span_end(self, name: str) -> None:
        span = self._spans.get(name)
        if span is not None and span[1] is None:
            span[1] = time.monotonic()

    def __repr__(self) -> str:
        return f"<ShutdownCoordinator #{self._id} {self._state.value}>"


Coordinator = ShutdownCoordinator
"""The same class under a short name: ``async with gracestop.Coordinator() as coord:``."""


def _registries(hooks: Hooks | Iterable[Hooks] | None) -> tuple[Hooks, ...]:
    if hooks is None:
        return (default_hooks,)
    if isinstance(hooks, Hooks):
        return (hooks,)
    if not isinstance(hooks, Iterable) or isinstance(hooks, (str, bytes)):  # type: ignore[unreachable]
        raise TypeError(
            f"hooks must be a Hooks registry or an iterable of them; got {_describe(hooks)}"
        )
    found: list[Hooks] = []
    for item in hooks:
        if not isinstance(item, Hooks):
            raise TypeError(f"hooks must contain only Hooks registries; got {_describe(item)}")
        if item not in found:
            found.append(item)
    return tuple(found)


def _child_trigger(parent: Trigger) -> Trigger:
    """The trigger a child coordinator gets from its parent's: it drains only when
    the parent does (a signal or a manual trigger)."""
    kind: Literal["manual", "exit"] = "manual" if parent.kind in ("signal", "manual") else "exit"
    return Trigger(kind, reason=f"enclosing coordinator: {parent.describe()}")


def _rel(value: float | None, t0: float) -> float | None:
    return None if value is None else value - t0
