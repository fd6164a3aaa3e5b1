"""A hypothesis state machine driving a real coordinator, on asyncio and on trio.

The machine enters a :class:`ShutdownCoordinator` on an event loop in a thread of its
own (an anyio blocking portal) and then, in any order: registers wrap-up and shutdown
hooks (fast, slow, failing, sync, timing out, waiting on a gate the machine opens on the
loop or in a worker thread), on the coordinator and on its ``Hooks`` registry, before
and after the trigger and after the stop; opens and closes holds; waits on hooks, states
and the report; triggers the shutdown by ``shutdown()`` from the test's thread, by a
signal, by leaving the block, by raising in it or by cancelling it from outside; sends
second signals; and lets time pass. At the end every hook's fate is compared with what
the model expects.

Checked throughout: states only move forward; holds are counted exactly (never
negative); the wrap-up phase never ends while a hold is open or a wrap-up hook runs
unless its window ran out; lower ``order`` groups end before the next one starts;
no hook runs twice. Checked at the end: no waiter hangs (each is bounded and fails
with what was pending); every hook that was run is in the report exactly once, with
the outcome its body produced, and its waiter holds the same result; hooks added to
a registry after the trigger are not run, as documented; registration after the stop
raises ``ShutdownError``; the body's own exception comes out of the block unchanged.

Signals: explicit signals can be claimed only in the main thread and the loop runs in
the portal's thread, so the machine hands signals to the coordinator the way its
listener does once one has arrived (``_on_signal`` on the loop thread). Real signals
are sent to real processes in ``tests/process/``. ``hard_exit=False``: no watchdog
thread exists that could end the test process.

More examples: ``GRACESTOP_FUZZ_PROFILE=long`` (see ``tests/_fuzz.py``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import signal
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import Phase as HypothesisPhase
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from _fuzz import LONG, fuzz_settings
from gracestop import (
    HookContext,
    HookResult,
    Hooks,
    HookStatus,
    Phase,
    ShutdownCoordinator,
    ShutdownError,
    ShutdownReport,
    State,
    Waiter,
)
from gracestop.instrumentation import (
    Event,
    HookEnded,
    HookStarted,
    PhaseStarted,
    ShutdownFinished,
    WrapUpTimeUp,
)

# The deadline from trigger to forced quit. Generous: on a loaded machine nothing but
# a gate the machine never opens may come near it.
WAIT_TIME = 4.0
# Every wait of the test thread is bounded by this, then fails with what is pending.
LIMIT = WAIT_TIME + 5.0
# A hook's own timeout, for the hooks that exist to time out.
OWN_TIMEOUT = 0.05

KINDS = ("fast", "slow", "fail", "sync", "sync_fail", "timeout", "gate", "sync_gate", "context")
# The status each kind of hook produces when nothing forces the quit.
OUTCOME = {
    "fast": HookStatus.OK,
    "slow": HookStatus.OK,
    "fail": HookStatus.FAILED,
    "sync": HookStatus.OK,
    "sync_fail": HookStatus.FAILED,
    "timeout": HookStatus.TIMED_OUT,
    "gate": HookStatus.OK,
    "sync_gate": HookStatus.OK,
    "context": HookStatus.OK,
}
REACHABLE = (State.DRAINING, State.WRAPPING_UP, State.SHUTTING_DOWN)
# A hook to register: its kind, phase, order, and where (the coordinator or its registry).
HOOKS = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from(Phase),
    st.sampled_from([0, 0, 1, -1]),
    st.sampled_from(["coordinator", "registry"]),
)
HOLD_NAMES = ("request", "job", "stream")


class HookFailure(Exception):
    """What the failing hooks raise."""


class BodyFailure(Exception):
    """What the block's body raises when the machine makes it fail."""


@dataclasses.dataclass
class Spec:
    """The model of one registered hook."""

    name: str
    kind: str
    phase: Phase
    order: int
    via: str  # "coordinator" or "registry"
    late: bool  # registered after the trigger
    runs: bool  # expected in the report
    waiter: Waiter
    gate: anyio.Event | threading.Event | None = None


async def bounded(
    what: str, make: Callable[[], Awaitable[Any]], describe: Callable[[], str]
) -> Any:
    """Await ``make()`` for at most LIMIT seconds; fail naming what is still pending."""
    with anyio.move_on_after(LIMIT):
        return await make()
    raise AssertionError(
        f"{what} did not return within {LIMIT}s; pending: {describe() or 'nothing'}"
    )


class CoordinatorMachine(RuleBasedStateMachine):
    """One coordinator's life, driven step by step from the test's thread."""

    def __init__(self, backend: str) -> None:
        super().__init__()
        self.backend = backend
        self.stack = contextlib.ExitStack()
        self.portal: BlockingPortal = self.stack.enter_context(start_blocking_portal(self.backend))
        self.lock = threading.Lock()
        self.specs: dict[str, Spec] = {}
        self.calls: Counter[str] = Counter()
        self.events: list[Event] = []
        self.violations: list[str] = []
        self.states: list[State] = []
        self.holds: list[tuple[str, Any]] = []
        self.hold_ids = 0
        self.hook_ids = 0
        self.kind: str | None = None  # what triggered the shutdown, per the model
        self.signals_after_trigger = 0
        self.forced_by_signal = False
        self.stuck = False
        self.waits: list[tuple[str, concurrent.futures.Future[Any]]] = []
        self.refused: list[str] = []
        self.entered = False

    # ------------------------------------------------------------------ set-up

    @initialize(
        wrap_up_time=st.sampled_from([0.0, 0.05, 0.3]),
        drain_delay=st.sampled_from([0.0, 0.05]),
        hook_timeout=st.sampled_from([None, 5.0]),
        second_signal=st.sampled_from(["force", "ignore"]),
        stuck=st.integers(0, 5).map(lambda n: n == 0),
        hooks=st.lists(HOOKS, max_size=6),
        holds=st.lists(st.sampled_from(HOLD_NAMES), max_size=2),
    )
    def enter(
        self,
        *,
        wrap_up_time: float,
        drain_delay: float,
        hook_timeout: float | None,
        second_signal: str,
        stuck: bool,
        hooks: list[tuple[str, Phase, int, str]],
        holds: list[str],
    ) -> None:
        """Register *hooks*, enter a coordinator on the portal's loop, open *holds*.
        *stuck*: the gates stay shut to the end, so the deadline has to end the run."""
        self.stuck = stuck
        self.registry = Hooks()
        self.coord = ShutdownCoordinator(
            hooks=self.registry,
            observers=[self.observe],
            wait_time=WAIT_TIME,
            wrap_up_time=wrap_up_time,
            drain_delay=drain_delay,
            hook_timeout=hook_timeout,
            second_signal=second_signal,  # type: ignore[arg-type]
            signals=(),
            hard_exit=False,
            progress_interval=60,
            systemd_notify=False,
        )
        self.leave = self.portal.call(anyio.Event)
        self.fail_body = False
        self.outside: anyio.CancelScope = self.portal.call(anyio.CancelScope)
        for hook in hooks:
            self.portal.call(self.register, *hook)
        self.body, _ = self.portal.start_task(self.serve, name="state machine body")
        self.entered = True
        for name in holds:
            self.open_hold(name)

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> bool:
        """The service: its block, within a scope that cancels it from outside.
        Returns whether that outside cancellation reached it."""
        with self.outside:
            async with self.coord:
                task_status.started()
                await self.leave.wait()
                if self.fail_body:
                    raise BodyFailure("the body failed")
        return self.outside.cancelled_caught

    # ------------------------------------------------------------------ observing

    def observe(self, event: Event) -> None:
        """Observer on the loop thread: record, and check what must hold right now."""
        self.events.append(event)
        self.states.append(self.coord.state)
        if isinstance(event, PhaseStarted) and event.phase == "shutdown":
            self.check_wrap_up_may_end()
        if isinstance(event, HookStarted) and not event.late:
            self.check_order(event)

    def ended_names(self) -> Counter[str]:
        return Counter(e.name for e in self.events if isinstance(e, HookEnded))

    def window_ran_out(self) -> bool:
        return any(isinstance(e, WrapUpTimeUp) for e in self.events)

    def check_wrap_up_may_end(self) -> None:
        """The shutdown phase starts: the wrap-up phase has ended. Early only when no
        hold is open and no wrap-up hook is left; else its window must have run out."""
        ended = self.ended_names()
        left = [
            s.name
            for s in self.specs.values()
            if s.phase is Phase.WRAP_UP and s.runs and not ended[s.name]
        ]
        holds = self.coord.open_holds
        deadline = self.coord.wrap_up_deadline
        if (left or holds) and (deadline is None or anyio.current_time() < deadline):
            self.violations.append(
                f"wrap-up ended early with hooks {left} and holds {list(holds)} left "
                f"(now {anyio.current_time()}, window until {deadline})"
            )

    def check_order(self, started: HookStarted) -> None:
        """A hook of a registered (not late) group starts once the lower groups ended,
        unless the wrap-up window ran out (then the rest starts at once)."""
        spec = self.specs.get(started.name)
        if spec is None or (spec.phase is Phase.WRAP_UP and self.window_ran_out()):
            return
        ended = self.ended_names()
        early = [
            s.name
            for s in self.specs.values()
            if s.phase is spec.phase
            and s.runs
            and not s.late
            and s.order < spec.order
            and not ended[s.name]
        ]
        if early:
            self.violations.append(f"{spec.name} (order {spec.order}) started before {early}")

    @invariant()
    def states_only_move_forward(self) -> None:
        if not self.entered:
            return
        # Read and recorded on the loop thread, in order with the observer's records.
        self.portal.call(lambda: self.states.append(self.coord.state))
        ranks = [s.rank for s in self.states]
        assert ranks == sorted(ranks), f"states went back: {self.states}"

    @invariant()
    def holds_are_counted_exactly(self) -> None:
        if not self.entered:
            return
        open_now = self.portal.call(lambda: (self.coord.open_holds, self.coord._open_hold_count()))
        assert sorted(open_now[0]) == sorted(name for name, _ in self.holds)
        assert open_now[1] == len(self.holds) >= 0

    @invariant()
    def nothing_runs_twice_and_no_violation(self) -> None:
        with self.lock:
            twice = [name for name, n in self.calls.items() if n > 1]
        assert not twice, f"hooks run more than once: {twice}"
        assert not self.violations, self.violations

    # ------------------------------------------------------------------ hooks

    def make_hook(
        self, name: str, kind: str, phase: Phase
    ) -> tuple[Any, anyio.Event | threading.Event | None]:
        """The hook function for *kind*; it counts its own calls."""

        def called() -> None:
            with self.lock:
                self.calls[name] += 1

        gate = anyio.Event() if kind == "gate" else None
        if kind in ("sync", "sync_fail", "sync_gate"):
            # A sync hook stuck past the deadline is abandoned in its thread; the
            # gate opens at the end of the example, so the thread ends then.
            thread_gate = threading.Event() if kind == "sync_gate" else None

            def sync_hook() -> None:
                called()
                if kind == "sync_fail":
                    raise HookFailure(name)
                if thread_gate is not None:
                    thread_gate.wait(LIMIT)

            return sync_hook, thread_gate
        if kind == "context":

            async def context_hook(ctx: HookContext) -> None:
                called()
                if (ctx.name, ctx.phase) != (name, phase) or ctx.remaining() < 0:
                    self.violations.append(f"{name} got the context {ctx!r}")
                await anyio.lowlevel.checkpoint()

            return context_hook, None

        async def hook() -> None:
            called()
            if kind == "slow":
                await anyio.sleep(0.02)
            elif kind == "fail":
                raise HookFailure(name)
            elif kind == "timeout":
                await anyio.sleep_forever()
            elif kind == "gate":
                assert gate is not None
                await gate.wait()
            else:
                await anyio.lowlevel.checkpoint()

        return hook, gate

    def register(self, kind: str, phase: Phase, order: int, via: str) -> None:
        """Register a hook (on the loop thread, so the model and the coordinator
        change together, between two of its steps)."""
        self.hook_ids += 1
        name = f"{kind}-{self.hook_ids}"
        func, gate = self.make_hook(name, kind, phase)
        target = self.coord if via == "coordinator" else self.registry
        adder = (
            target.add_wrap_up_listener if phase is Phase.WRAP_UP else target.add_shutdown_listener
        )
        timeout = OWN_TIMEOUT if kind == "timeout" else None
        state = self.coord.state
        late = self.coord.trigger is not None
        try:
            waiter = adder(func, name=name, order=order, timeout=timeout)
        except ShutdownError:
            assert via == "coordinator" and late
            every_hook_ended = all(s.waiter.done for s in self.specs.values() if s.runs)
            if state is not State.STOPPED and not (
                state is State.SHUTTING_DOWN and every_hook_ended
            ):
                self.violations.append(f"{name} refused in state {state} before the stop")
            self.refused.append(name)
            return
        if state is State.STOPPED and via == "coordinator":
            self.violations.append(f"{name} accepted after the stop")
        runs = not (late and via == "registry")
        self.specs[name] = Spec(name, kind, phase, order, via, late, runs, waiter, gate)

    @rule(hook=HOOKS)
    def add_hook(self, hook: tuple[str, Phase, int, str]) -> None:
        self.portal.call(self.register, *hook)

    # Rules that pick a hook draw a plain number rather than from the hooks there
    # are: whether a late registration was accepted depends on timing, and hypothesis
    # needs the same draws when it replays a sequence of steps.

    @rule(pick=st.integers(0, 99))
    def open_gate(self, pick: int) -> None:
        shut = [s for s in self.specs.values() if s.gate is not None and not s.gate.is_set()]
        if shut:
            gate = shut[pick % len(shut)].gate
            assert gate is not None
            self.portal.call(gate.set)

    # ------------------------------------------------------------------ holds

    @rule(name=st.sampled_from(HOLD_NAMES))
    def open_hold(self, name: str) -> None:
        def open_() -> None:
            hold = self.coord.hold(name)
            hold.__enter__()
            self.holds.append((name, hold))

        self.portal.call(open_)

    @precondition(lambda self: bool(self.holds))
    @rule(pick=st.integers(0, 99))
    def close_hold(self, pick: int) -> None:
        index = pick % len(self.holds)

        def close() -> None:
            _, hold = self.holds.pop(index)
            hold.__exit__(None, None, None)
            # Closing twice does nothing: a hold is counted once.
            hold.__exit__(None, None, None)

        self.portal.call(close)

    # ------------------------------------------------------------------ triggers

    def note_trigger(self, kind: str) -> None:
        if self.kind is None:
            self.kind = kind

    @precondition(lambda self: self.kind is None)
    @rule(how=st.sampled_from(["manual", "signal", "exit", "error", "cancelled"]))
    def trigger(self, how: str) -> None:
        """Start the shutdown, one of the five ways."""
        if how == "manual":
            self.shutdown_from_this_thread()
            return
        if how == "signal":
            self.send_signal(signal.SIGTERM)
            return
        self.note_trigger(how)
        if how == "cancelled":
            self.portal.call(self.outside.cancel)
        else:
            # The body returns (or raises): leaving the block triggers the shutdown.
            self.fail_body = how == "error"
            self.portal.call(self.leave.set)
        self.portal.call(bounded, "triggered()", self.coord.triggered, self.coord._describe_pending)

    @precondition(lambda self: self.kind is not None)
    @rule()
    def shutdown_from_this_thread(self) -> None:
        """``shutdown()`` from another thread than the loop's; idempotent."""
        self.note_trigger("manual")
        self.coord.shutdown("from the test")
        assert self.coord.trigger is not None

    @precondition(lambda self: self.kind is not None)
    @rule(sig=st.sampled_from([signal.SIGTERM, signal.SIGINT]))
    def send_signal(self, sig: signal.Signals) -> None:
        """A signal as the listener hands it over, on the loop thread."""

        def deliver() -> None:
            state = self.coord.state
            if self.coord.trigger is None:
                self.note_trigger("signal")
            elif state is not State.STOPPED:
                self.signals_after_trigger += 1
                # After a signal trigger any further signal is the second one; after
                # another trigger the first signal only arms the deadline.
                second = self.kind == "signal" or self.signals_after_trigger >= 2
                if second and self.coord.config.second_signal == "force":
                    self.forced_by_signal = True
            self.coord._on_signal(sig)

        self.portal.call(deliver)

    @precondition(lambda self: self.kind is not None and not self.leave.is_set())
    @rule()
    def leave_block_during_the_shutdown(self) -> None:
        """The body returns while the shutdown runs: the block still waits for it."""
        self.portal.call(self.leave.set)

    # ------------------------------------------------------------------ waiting

    def wait_in_background(self, what: str, make: Callable[[], Awaitable[Any]]) -> None:
        future = self.portal.start_task_soon(bounded, what, make, self.coord._describe_pending)
        self.waits.append((what, future))

    @rule(pick=st.integers(0, 99))
    def wait_for_a_hook(self, pick: int) -> None:
        runs = [name for name, s in self.specs.items() if s.runs]
        if runs:
            name = runs[pick % len(runs)]
            self.wait_in_background(f"waiter of {name}", self.specs[name].waiter)

    @rule(state=st.sampled_from([*REACHABLE, State.STOPPED]))
    def wait_for_a_state(self, state: State) -> None:
        self.wait_in_background(f"wait_for({state})", functools.partial(self.coord.wait_for, state))

    @rule()
    def wait_for_the_report(self) -> None:
        self.wait_in_background("finished()", self.coord.finished)

    @precondition(lambda self: self.kind is not None)
    @rule(state=st.sampled_from(REACHABLE))
    def block_until_state(self, state: State) -> None:
        """Block the test until the shutdown reaches *state*: always soon after the
        trigger (drain delay and wrap-up window are short), gates or not."""
        self.portal.call(
            bounded,
            f"wait_for({state})",
            functools.partial(self.coord.wait_for, state),
            self.coord._describe_pending,
        )
        assert self.portal.call(lambda: self.coord.state).rank >= State.DRAINING.rank

    @rule(seconds=st.sampled_from([0.0, 0.01, 0.05]))
    def let_time_pass(self, seconds: float) -> None:
        """Time passes on the loop, so that later steps meet later states."""
        self.portal.call(anyio.sleep, seconds)

    # ------------------------------------------------------------------ the end

    def teardown(self) -> None:
        # Hypothesis calls teardown() from a ``finally``: when a step has failed, only
        # clean up, so that each failing example hypothesis tries while it shrinks
        # costs no more than the coordinator's own deadline.
        failed = sys.exc_info()[1] is not None
        try:
            if self.entered and not failed:
                self.finish()
            elif self.entered:
                self.abandon()
        finally:
            with contextlib.suppress(RuntimeError):
                self.portal.call(self.portal.stop, True)
            self.stack.close()

    def finish(self) -> None:
        if not self.stuck:
            for spec in self.specs.values():
                if spec.gate is not None:
                    self.portal.call(spec.gate.set)
        if self.coord.trigger is None:
            self.note_trigger("manual")
            self.coord.shutdown("end of the example")
        report: ShutdownReport = self.portal.call(
            bounded, "finished()", self.coord.finished, self.coord._describe_pending
        )
        self.check_body()
        # After the stop: a late registration is refused, a late signal changes nothing.
        self.portal.call(self.register, "fast", Phase.SHUTDOWN, 0, "coordinator")
        self.portal.call(self.coord._on_signal, signal.SIGTERM)
        self.check_report(report)
        for what, future in self.waits:
            try:
                future.result(timeout=LIMIT)
            except concurrent.futures.TimeoutError:
                pytest.fail(f"{what} still waiting after the stop")
        for spec in self.specs.values():
            if spec.gate is not None:
                self.portal.call(spec.gate.set)
        for _, hold in self.holds:
            hold.__exit__(None, None, None)
        self.holds.clear()
        assert self.coord.open_holds == ()

    def abandon(self) -> None:
        """After a failed step: end the run as fast as the coordinator allows."""
        for spec in self.specs.values():
            if spec.gate is not None:
                self.portal.call(spec.gate.set)
        if self.coord.trigger is None:
            self.coord.shutdown("a step failed")
        with contextlib.suppress(Exception, concurrent.futures.TimeoutError):
            self.body.result(timeout=LIMIT)

    def check_body(self) -> None:
        """The block ends once the shutdown is over, with the body's own outcome."""
        try:
            cancelled = self.body.result(timeout=LIMIT)
        except concurrent.futures.TimeoutError:
            pytest.fail(f"the block did not end; pending: {self.coord._describe_pending()}")
        except BodyFailure:
            # The body's own exception, as it was raised: not in an ExceptionGroup.
            assert self.kind == "error"
        else:
            assert self.kind != "error"
            # The cancellation goes on propagating once the shutdown has run.
            assert cancelled == (self.kind == "cancelled")

    def check_report(self, report: ShutdownReport) -> None:
        assert self.coord.state is State.STOPPED
        assert report is self.coord.report
        assert report.trigger.kind == self.kind, (report.trigger, self.kind)
        finished = [e for e in self.events if isinstance(e, ShutdownFinished)]
        assert len(finished) == 1 and finished[0].report is report
        assert self.refused and self.refused[-1] not in self.specs

        forced_by_deadline = report.forced_by == "deadline"
        stuck_gates = self.stuck and any(
            s.gate is not None and s.runs and not s.gate.is_set() for s in self.specs.values()
        )
        assert report.forced == (report.forced_by is not None)
        if self.forced_by_signal:
            assert report.forced_by == "signal", report.render()
        elif stuck_gates:
            assert forced_by_deadline, report.render()
        else:
            assert not report.forced, report.render()

        # Every hook run is reported once; registry hooks added after the trigger are not run.
        names = [r.name for r in report.results]
        assert len(names) == len(set(names)), names
        running = {name for name, s in self.specs.items() if s.runs}
        assert set(names) == running, (sorted(names), sorted(running))
        phases = [r.phase for r in report.results]
        assert phases == sorted(phases, key=lambda p: p is Phase.SHUTDOWN)
        ended = self.ended_names()
        for result in report.results:
            self.check_result(result, report, ended[result.name])
        for name, spec in self.specs.items():
            if not spec.runs:
                assert not spec.waiter.done and self.calls[name] == 0, name

        holds_at_window = [e.holds for e in self.events if isinstance(e, WrapUpTimeUp)]
        if not report.forced:
            assert report.open_holds == (holds_at_window[0] if holds_at_window else ())

    def check_result(self, result: HookResult, report: ShutdownReport, ended: int) -> None:
        spec = self.specs[result.name]
        assert ended == 1, f"{result.name} ended {ended} times"
        assert spec.waiter.result is result, (spec.waiter.result, result)
        assert result.phase is spec.phase and result.order == spec.order
        assert result.late == spec.late
        assert result.status.final
        expected = OUTCOME[spec.kind]
        allowed = {expected}
        if report.forced:
            allowed |= {HookStatus.TIMED_OUT, HookStatus.CANCELLED}
        assert result.status in allowed, f"{result.name}: {result.status}, expected {allowed}"
        calls = self.calls[result.name]
        if result.status in (HookStatus.OK, HookStatus.FAILED):
            assert calls == 1, (result.name, calls)
            assert result.started_at is not None and result.duration is not None
        if calls:
            assert result.started_at is not None, result
        if result.status is HookStatus.FAILED:
            assert isinstance(result.error, HookFailure), result.error
        elif result.status is HookStatus.OK:
            assert result.error is None


# Under the ci profile a failing run is not shrunk: with real time in play each
# failing example costs up to the coordinator's deadline, and the steps of the
# failing run are printed as they are. The long profile shrinks.
SIZE = fuzz_settings(
    ci=25,
    long=400,
    stateful_step_count=40 if LONG else 20,
    phases=list(HypothesisPhase) if LONG else [HypothesisPhase.explicit, HypothesisPhase.generate],
)


@pytest.mark.timeout(0 if LONG else 120)
def test_coordinator_state_machine(anyio_backend: str) -> None:
    """The machine above, on the backend of the ``anyio_backend`` fixture."""
    run_state_machine_as_test(lambda: CoordinatorMachine(anyio_backend), settings=SIZE)
