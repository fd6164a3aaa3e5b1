"""Observers: the events a shutdown emits, their isolation, and the built-in observers."""

from __future__ import annotations

import configparser
import inspect
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
import structlog
from prometheus_client import CollectorRegistry

from gracestop import Hooks, HookStatus, Phase, ShutdownConfig, ShutdownCoordinator
from gracestop import instrumentation as gi
from gracestop._systemd import EXIT_MARGIN

pytestmark = pytest.mark.anyio

E = TypeVar("E")


class Recorder:
    """Keeps every event; wakes waiters when an event of a given type arrives."""

    def __init__(self) -> None:
        self.events: list[gi.Event] = []
        self.arrived: dict[type, anyio.Event] = {}

    def __call__(self, event: gi.Event) -> None:
        self.events.append(event)
        waiting = self.arrived.pop(type(event), None)
        if waiting is not None:
            waiting.set()

    async def wait_for(self, kind: type, timeout: float = 5) -> None:
        if any(isinstance(e, kind) for e in self.events):
            return
        self.arrived[kind] = waiting = anyio.Event()
        with anyio.fail_after(timeout):
            await waiting.wait()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def story(self) -> list[tuple[str, ...]]:
        """The events as (kind, name/phase[, status]) tuples, without holds and progress."""
        lines: list[tuple[str, ...]] = []
        for event in self.events:
            match event:
                case gi.HookStarted(name=name, late=late):
                    lines.append(("hook_started", name, "late" if late else ""))
                case gi.HookEnded(name=name, status=status):
                    lines.append(("hook_ended", name, status.value))
                case gi.PhaseStarted(phase=phase) | gi.PhaseEnded(phase=phase):
                    lines.append((event.event_kind, phase))
                case gi.ShutdownTriggered(trigger=trigger):
                    lines.append(("triggered", trigger.kind))
                case gi.Progress():
                    pass
                case _:
                    lines.append((event.event_kind,))
        return lines


def scenario_hooks(coord: ShutdownCoordinator, late_name: str = "late") -> None:
    """An OK hook that registers a late one, a failing hook and a timed-out hook,
    one after the other (distinct orders), then a shutdown hook."""

    async def late() -> None:
        await anyio.lowlevel.checkpoint()

    @coord.on_wrap_up(name="ok", order=0)
    async def ok() -> None:
        coord.add_shutdown_listener(late, name=late_name, order=1)

    @coord.on_wrap_up(name="boom", order=1)
    async def boom() -> None:
        raise ValueError("boom")

    @coord.on_wrap_up(name="slow", order=2, timeout=0.05)
    async def slow() -> None:
        await anyio.sleep_forever()

    @coord.on_shutdown(name="close")
    def close() -> None:
        pass


EXPECTED_STORY = [
    ("entered",),
    ("triggered", "manual"),
    ("phase_started", "wrap_up"),
    ("hook_started", "ok", ""),
    ("hook_ended", "ok", "ok"),
    ("hook_started", "boom", ""),
    ("hook_ended", "boom", "failed"),
    ("hook_started", "slow", ""),
    ("hook_ended", "slow", "timed_out"),
    # The wrap-up phase ended on its own: it ends before the shutdown phase starts.
    ("phase_ended", "wrap_up"),
    ("phase_started", "shutdown"),
    ("hook_started", "close", ""),
    ("hook_ended", "close", "ok"),
    ("hook_started", "late", "late"),
    ("hook_ended", "late", "ok"),
    ("phase_ended", "shutdown"),
    ("finished",),
]


def quiet(**overrides: Any) -> dict[str, Any]:
    return {"hooks": Hooks(), "signals": (), "progress_interval": 30, "wait_time": 5, **overrides}


async def test_events_arrive_in_order() -> None:
    recorder = Recorder()
    async with ShutdownCoordinator(observers=[recorder], **quiet()) as coord:
        scenario_hooks(coord)
        coord.shutdown("deploy")
    assert recorder.story() == EXPECTED_STORY
    ended = {e.name: e for e in recorder.of(gi.HookEnded)}
    assert isinstance(ended["boom"].error, ValueError)
    assert isinstance(ended["slow"].error, TimeoutError)
    assert (ended["slow"].duration or 0) >= 0.05
    assert ended["late"].late and ended["late"].phase is Phase.SHUTDOWN
    triggered = recorder.of(gi.ShutdownTriggered)[0]
    assert triggered.wait_time == 5
    started = {e.phase: e for e in recorder.of(gi.PhaseStarted)}
    assert (started["wrap_up"].hooks, started["wrap_up"].limit) == (3, 1.0)
    finished = recorder.of(gi.ShutdownFinished)[0]
    assert finished.report is coord.report


async def test_a_failing_observer_breaks_nothing_and_is_logged_once_per_event_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="gracestop")

    def broken(event: gi.Event) -> None:
        raise RuntimeError(f"observer bug on {event.event_kind}")

    recorder = Recorder()
    async with ShutdownCoordinator(observers=[broken, recorder], **quiet()) as coord:
        scenario_hooks(coord)
        coord.shutdown("deploy")
    assert recorder.story() == EXPECTED_STORY
    assert coord.report is not None
    statuses = {r.name: r.status for r in coord.report.results}
    assert statuses == {
        "ok": HookStatus.OK,
        "boom": HookStatus.FAILED,
        "slow": HookStatus.TIMED_OUT,
        "close": HookStatus.OK,
        "late": HookStatus.OK,
    }
    failures = [r for r in caplog.records if "observer" in r.getMessage()]
    kinds = [r.gracestop_event for r in failures]  # type: ignore[attr-defined]
    # Five hook_ended events, one log line for them; one line per other kind.
    assert sorted(kinds) == sorted({k[0] for k in EXPECTED_STORY})
    hook_ended = next(r for r in failures if r.gracestop_event == "hook_ended")  # type: ignore[attr-defined]
    assert "broken" in hook_ended.getMessage()
    assert hook_ended.exc_info is not None
    assert "observer bug on hook_ended" in str(hook_ended.exc_info[1])


@pytest.fixture
def no_global_change() -> Iterator[None]:
    before = gi.get_observers()
    yield
    gi.set_observers(before)


async def test_a_coordinators_own_observers_are_added_to_the_global_ones(
    no_global_change: None,
) -> None:
    assert [type(o) for o in gi.get_observers()] == [gi.LoggingObserver]
    everywhere, mine = Recorder(), Recorder()
    with gi.set_observers([everywhere]):
        assert gi.get_observers() == (everywhere,)
        async with ShutdownCoordinator(**quiet()):
            pass
        async with ShutdownCoordinator(observers=[mine], **quiet()):
            pass
    assert [type(o) for o in gi.get_observers()] == [gi.LoggingObserver]
    # The global observer saw both coordinators; its own saw the second one only.
    assert everywhere.story() == mine.story() + mine.story()
    assert [k[0] for k in mine.story()] == [
        "entered",
        "triggered",
        "phase_started",
        "phase_ended",
        "phase_started",
        "phase_ended",
        "finished",
    ]
    assert mine.of(gi.ShutdownTriggered)[0].trigger.kind == "exit"
    # A plain call sets them for good (restored by the fixture).
    gi.set_observers([mine])
    assert gi.get_observers() == (mine,)


async def test_no_global_observers_means_silence(
    caplog: pytest.LogCaptureFixture, no_global_change: None
) -> None:
    caplog.set_level(logging.DEBUG, logger="gracestop")
    with gi.set_observers([]):
        async with ShutdownCoordinator(observers=[], **quiet()) as coord:
            async with coord.hold("request"):
                coord.shutdown()
    assert coord.report is not None and coord.report.ok
    assert caplog.records == []


async def test_own_observers_keep_the_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    """Failures are logged with their tracebacks whatever observers a coordinator adds."""
    caplog.set_level(logging.INFO, logger="gracestop")
    mine = Recorder()
    async with ShutdownCoordinator(observers=[mine], **quiet()) as coord:

        @coord.on_shutdown
        def broken() -> None:
            raise RuntimeError("disk full")

        coord.shutdown()
    (failure,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert failure.getMessage().startswith("shutdown hook broken failed")
    assert failure.exc_info is not None and "disk full" in str(failure.exc_info[1])
    assert mine.of(gi.HookEnded)[0].status is HookStatus.FAILED


@pytest.mark.parametrize(
    ("value", "shown"),
    [(5, "int 5"), ("obs", "str 'obs'"), ([print, 3], "int 3"), ([None], "NoneType None")],
)
def test_bad_observers_are_refused(value: object, shown: str, no_global_change: None) -> None:
    with pytest.raises(TypeError, match=f"observers must .*; got {shown}"):
        ShutdownCoordinator(observers=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=f"observers must .*; got {shown}"):
        gi.set_observers(value)  # type: ignore[arg-type]
    assert [type(o) for o in gi.get_observers()] == [gi.LoggingObserver]


def test_emit_sends_diagnostics_events(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gracestop")
    recorder = Recorder()
    event = gi.DiagnosticsWritten(path="/tmp/dump.txt", kind="dump")
    gi.emit(event, [recorder])
    assert recorder.events == [event]
    gi.emit(event)  # the global observers: the logging one
    assert "diagnostics written: dump /tmp/dump.txt" in caplog.text
    with pytest.raises(TypeError, match=r"event must be a gracestop\.instrumentation event"):
        gi.emit("dump", [recorder])  # type: ignore[arg-type]


def test_observer_protocol_and_event_types() -> None:
    assert isinstance(Recorder(), gi.Observer)
    assert isinstance(gi.LoggingObserver(), gi.Observer)
    event = gi.HookStarted("x", Phase.WRAP_UP)
    with pytest.raises(AttributeError):
        event.name = "y"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")  # slotted
    with pytest.raises(TypeError, match=r"logger must be a logging\.Logger or None; got str"):
        gi.LoggingObserver("gracestop")  # type: ignore[arg-type]


def test_importing_gracestop_loads_neither_structlog_nor_prometheus() -> None:
    code = (
        "import sys, gracestop, gracestop.instrumentation; "
        "print(sorted({'structlog', 'prometheus_client'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------ logging observer


async def test_logging_observer_lines_and_structured_extra(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gracestop")
    release = anyio.Event()

    def on_progress(event: gi.Event) -> None:
        if isinstance(event, gi.Progress) and any(
            p.startswith("shutdown hook waits-for-progress (running") for p in event.pending
        ):
            release.set()

    observers: list[gi.Observer] = [gi.LoggingObserver(), on_progress]
    async with ShutdownCoordinator(observers=observers, **quiet(progress_interval=0.02)) as coord:
        scenario_hooks(coord)

        @coord.on_shutdown(name="waits-for-progress")
        async def waits() -> None:
            with anyio.fail_after(5):
                await release.wait()

        coord.shutdown("deploy")
    by_text = {r.getMessage(): r for r in caplog.records}
    messages = list(by_text)
    trigger = by_text["shutdown requested (deploy), shutting down; force quit in 5s"]
    assert trigger.levelno == logging.INFO
    assert trigger.gracestop_event == "triggered"  # type: ignore[attr-defined]
    assert trigger.gracestop_trigger == "manual"  # type: ignore[attr-defined]
    assert "wrap-up phase: 3 hooks, up to 1s" in messages
    assert "shutdown phase: 3 hooks" in messages  # the late hook joined it
    assert "coordinator entered; signals: none" in messages
    failed = next(
        r for r in caplog.records if r.getMessage().startswith("wrap_up hook boom failed")
    )
    assert failed.levelno == logging.WARNING
    assert failed.exc_info is not None and isinstance(failed.exc_info[1], ValueError)
    assert failed.gracestop_hook == "boom"  # type: ignore[attr-defined]
    assert failed.gracestop_phase == "wrap_up"  # type: ignore[attr-defined]
    assert failed.gracestop_status == "failed"  # type: ignore[attr-defined]
    timed_out = next(r for r in caplog.records if "hook slow timed out after" in r.getMessage())
    assert timed_out.levelno == logging.WARNING
    assert any(m == "late shutdown hook late started" for m in messages)
    assert any(m.startswith("wrap_up hook ok ended after") for m in messages)
    progress = next(r for r in caplog.records if "waits-for-progress (running" in r.getMessage())
    assert "shutdown hook waits-for-progress (running" in progress.getMessage()
    assert progress.gracestop_event == "progress"  # type: ignore[attr-defined]
    summary = caplog.records[-1]
    assert summary.getMessage().startswith("shutdown with failures in")
    assert summary.gracestop_event == "finished"  # type: ignore[attr-defined]


async def test_logging_observer_to_another_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="myservice.shutdown")
    observer = gi.LoggingObserver(logging.getLogger("myservice.shutdown"))
    assert "myservice.shutdown" in repr(observer)
    async with ShutdownCoordinator(observers=[observer], **quiet()) as coord:
        coord.shutdown()
    assert {r.name for r in caplog.records} == {"myservice.shutdown"}
    assert caplog.records[-1].getMessage().startswith("shutdown ok in")


async def test_second_signal_events(restore_usr_handlers: object) -> None:
    recorder = Recorder()
    async with ShutdownCoordinator(
        hooks=Hooks(), signals=["USR1"], observers=[recorder], hard_exit=False, wait_time=20
    ) as coord:

        @coord.on_wrap_up(name="stuck")
        async def stuck() -> None:
            await anyio.sleep_forever()

        async with coord.hold("request"):
            coord.shutdown("deploy")
            os.kill(os.getpid(), signal.SIGUSR1)
            await recorder.wait_for(gi.SignalReceived)
            os.kill(os.getpid(), signal.SIGUSR1)
            await recorder.wait_for(gi.ForcedQuit)
    received = recorder.of(gi.SignalReceived)
    assert [(e.signal, e.action) for e in received] == [
        (signal.SIGUSR1, "deadline"),
        (signal.SIGUSR1, "force"),
    ]
    forced = recorder.of(gi.ForcedQuit)
    assert len(forced) == 1
    assert forced[0].by == "signal"
    assert forced[0].signal is signal.SIGUSR1
    pending = forced[0].pending
    assert any(p.startswith("wrap_up hook stuck (running") for p in pending), pending
    assert "hold request" in pending
    assert coord.report is not None and coord.report.forced_by == "signal"


@pytest.fixture
def restore_usr_handlers() -> Iterator[None]:
    saved = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, saved)


async def test_deadline_forced_quit_names_what_was_cut_short() -> None:
    recorder = Recorder()
    async with ShutdownCoordinator(
        observers=[recorder], **quiet(wait_time=0.3, wrap_up_time=0.05)
    ) as coord:

        @coord.on_wrap_up(name="stuck")
        async def stuck() -> None:
            await anyio.sleep_forever()

        @coord.on_shutdown(name="blocker")
        async def blocker() -> None:
            await anyio.sleep_forever()

        @coord.on_shutdown(name="later", order=1)
        def later() -> None:
            pass

        coord.shutdown()
    (forced,) = recorder.of(gi.ForcedQuit)
    assert forced.by == "deadline"
    # The running hooks in the order they were cancelled (backend-dependent).
    assert sorted(forced.pending) == [
        "shutdown hook blocker",
        "shutdown hook later (not started)",
        "wrap_up hook stuck",
    ]
    (time_up,) = recorder.of(gi.WrapUpTimeUp)
    assert time_up.hooks == ("stuck",)
    never = [e for e in recorder.of(gi.HookEnded) if e.duration is None]
    assert [(e.name, e.status) for e in never] == [("later", HookStatus.CANCELLED)]


async def test_drain_is_a_stage() -> None:
    recorder = Recorder()
    async with ShutdownCoordinator(observers=[recorder], **quiet(drain_delay=0.01)) as coord:
        coord.shutdown()
    assert recorder.story()[2:4] == [("phase_started", "drain"), ("phase_ended", "drain")]
    assert recorder.of(gi.PhaseStarted)[0].limit == 0.01


# ------------------------------------------------------------------ structlog


async def test_structlog_observer() -> None:
    with structlog.testing.capture_logs() as logs:
        observer = gi.StructlogObserver()
        async with ShutdownCoordinator(observers=[observer], **quiet()) as coord:
            scenario_hooks(coord)
            async with coord.hold("request"):
                coord.shutdown("deploy")
    events = [entry["event"] for entry in logs]
    assert events[:3] == ["gracestop.entered", "gracestop.triggered", "gracestop.phase_started"]
    assert events[-1] == "gracestop.finished"
    triggered = logs[1]
    assert triggered["trigger"] == "manual"
    assert triggered["reason"] == "deploy"
    assert triggered["log_level"] == "info"
    boom = next(e for e in logs if e["event"] == "gracestop.hook_ended" and e["hook"] == "boom")
    assert boom["log_level"] == "warning"
    assert boom["status"] == "failed"
    assert isinstance(boom["exc_info"], ValueError)
    slow = next(e for e in logs if e["event"] == "gracestop.hook_ended" and e["hook"] == "slow")
    assert "timed out" in slow["error"]
    finished = logs[-1]
    assert finished["ok"] is False
    assert coord.report is not None
    assert finished["summary"] == coord.report.summary()
    assert "gracestop.holds_changed" not in events


# ------------------------------------------------------------------ prometheus


async def test_prometheus_observer() -> None:
    registry = CollectorRegistry()
    observer = gi.PrometheusObserver(registry=registry)
    value = registry.get_sample_value
    async with ShutdownCoordinator(observers=[observer], **quiet()) as coord:
        scenario_hooks(coord)
        async with coord.hold("a"):
            async with coord.hold("b"):
                assert value("gracestop_open_holds") == 2
            assert value("gracestop_open_holds") == 1
            coord.shutdown("deploy")
    assert value("gracestop_open_holds") == 0
    assert value("gracestop_shutdowns_total", {"trigger": "manual"}) == 1
    assert value("gracestop_shutdown_duration_seconds_count") == 1
    assert coord.report is not None
    assert value("gracestop_shutdown_duration_seconds_sum") == pytest.approx(
        coord.report.duration, abs=0.05
    )
    ok = {"phase": "wrap_up", "status": "ok"}
    assert value("gracestop_hook_duration_seconds_count", ok) == 1
    failed = {"phase": "wrap_up", "status": "failed"}
    assert value("gracestop_hook_duration_seconds_count", failed) == 1
    timed_out = {"phase": "wrap_up", "status": "timed_out"}
    assert (value("gracestop_hook_duration_seconds_sum", timed_out) or 0) >= 0.05
    shutdown_ok = {"phase": "shutdown", "status": "ok"}
    assert value("gracestop_hook_duration_seconds_count", shutdown_ok) == 2


def test_prometheus_observer_namespace_and_registry_checks() -> None:
    registry = CollectorRegistry()
    gi.PrometheusObserver(registry=registry, namespace="svc")
    assert registry.get_sample_value("svc_open_holds") == 0
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        gi.PrometheusObserver(registry=registry, namespace="svc")
    with pytest.raises(ValueError, match="namespace must be a non-empty str; got ''"):
        gi.PrometheusObserver(registry=registry, namespace="")


def test_gracestop_run_passes_observers_on() -> None:
    code = (
        "import gracestop\n"
        "def show(event):\n"
        "    print('EVENT', event.event_kind, flush=True)\n"
        "async def main(coord):\n"
        "    coord.shutdown('done')\n"
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='LOG %(message)s')\n"
        "gracestop.run(main, observers=[show], signals=())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=False
    )
    assert proc.returncode == 0, proc.stderr
    kinds = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("EVENT")]
    assert kinds[0] == "entered" and kinds[1] == "triggered" and kinds[-1] == "finished"
    # Added to the logging observer, which still writes its lines.
    assert "LOG shutdown ok in" in proc.stderr


def test_every_public_name_of_the_module_is_documented() -> None:
    for name in gi.__all__:
        obj = getattr(gi, name)
        if name in {"Event", "Stage"}:  # type aliases: documented in the module
            continue
        assert inspect.getdoc(obj), f"{name} has no docstring"
    public = {n for n in vars(gi) if not n.startswith("_")}
    imported = {
        "annotations",
        "logging",
        "signal",
        "dataclass",
        "TYPE_CHECKING",
        "Any",
        "ClassVar",
        "Literal",
        "Protocol",
        "TypeAlias",
        "runtime_checkable",
        "cast",
        "Iterable",
        "Callable",
        "HookStatus",
        "Phase",
        "ShutdownReport",
        "Trigger",
        "logger",
    }
    assert public - imported <= set(gi.__all__)


# ------------------------------------------------------------------ the documentation

DOCS = Path(__file__).resolve().parent.parent / "docs"


def code_blocks(page: str, language: str) -> list[str]:
    text = (DOCS / page).read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.parametrize("index", range(4))
def test_instrumentation_page_snippets_run(index: int) -> None:
    blocks = code_blocks("instrumentation.md", "python")
    assert len(blocks) == 4
    proc = subprocess.run(
        [sys.executable, "-c", blocks[index]],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = {
        0: "",
        1: "shutdown requested (deploy); 5.5s to go\nhook close-db: ok after",
        2: "event='gracestop.triggered'",
        3: "1.0",
    }[index]
    assert expected in proc.stdout, proc.stdout


def test_systemd_page_unit_file_leaves_room_for_wait_time() -> None:
    (unit_text,) = code_blocks("systemd.md", "ini")
    unit = configparser.ConfigParser(strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(unit_text)
    service = unit["Service"]
    assert service["Type"] == "notify"
    wait_time = ShutdownConfig.from_env(
        environ=dict([service["Environment"].split("=", 1)])
    ).wait_time
    grace = ShutdownConfig().watchdog_grace
    assert float(service["TimeoutStopSec"]) >= wait_time + grace + EXIT_MARGIN


@pytest.mark.parametrize(
    ("module", "make", "hint"),
    [
        ("structlog", gi.StructlogObserver, "gracestop[structlog]"),
        ("prometheus_client", gi.PrometheusObserver, "gracestop[prometheus]"),
    ],
)
def test_optional_dependencies_missing(
    module: str, make: type, hint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=re.escape(hint)):
        make()


async def test_observers_run_on_the_loop_thread_and_never_under_the_lock() -> None:
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    lock_free: list[bool] = []
    coord: ShutdownCoordinator | None = None

    def lock_is_free() -> None:
        assert coord is not None
        got = coord._lock.acquire(timeout=2)
        lock_free.append(got)
        if got:
            coord._lock.release()

    def observer(event: gi.Event) -> None:
        threads.add(threading.get_ident())
        # Another thread must be able to take the coordinator's lock right now.
        checker = threading.Thread(target=lock_is_free)
        checker.start()
        checker.join(5)

    recorder = Recorder()
    coord = ShutdownCoordinator(observers=[observer, recorder], **quiet())
    async with coord:

        def from_a_worker_thread() -> None:
            with coord.hold("in a thread"):
                coord.shutdown("from a thread")

        await anyio.to_thread.run_sync(from_a_worker_thread)
    assert threads == {loop_thread}
    assert lock_free and all(lock_free)
    assert recorder.of(gi.ShutdownTriggered)[0].trigger.reason == "from a thread"


async def test_prometheus_open_holds_sum_over_running_coordinators() -> None:
    registry = CollectorRegistry()
    observer = gi.PrometheusObserver(registry=registry)

    def open_holds() -> float | None:
        return registry.get_sample_value("gracestop_open_holds")

    async with ShutdownCoordinator(observers=[observer], **quiet()) as first:
        async with ShutdownCoordinator(observers=[observer], **quiet()) as second:
            # The nested coordinator is itself a hold of the outer one until it
            # has finished.
            assert open_holds() == 1
            with first.hold("a"), first.hold("b"), second.hold("c"):
                # Each coordinator counts its own; the gauge adds them up.
                assert open_holds() == 4
                # Read at scrape time, from any thread.
                assert await anyio.to_thread.run_sync(open_holds) == 4
            with second.hold("d"):
                assert open_holds() == 2
                second.shutdown()
                await second.finished()
                assert open_holds() == 0  # a finished coordinator no longer counts
        with first.hold("e"):
            assert open_holds() == 1
        first.shutdown()
    assert open_holds() == 0


async def test_entered_event_gives_an_open_hold_counter() -> None:
    recorder = Recorder()
    async with ShutdownCoordinator(observers=[recorder], **quiet()) as coord:
        (entered,) = recorder.of(gi.CoordinatorEntered)
        assert entered.open_holds is not None and entered.open_holds() == 0
        with coord.hold("x"):
            assert entered.open_holds() == 1
        coord.shutdown()
    (finished,) = recorder.of(gi.ShutdownFinished)
    assert finished.coordinator_id == entered.coordinator_id > 0


async def test_phases_overlap_only_when_the_wrap_up_time_runs_out() -> None:
    recorder = Recorder()
    async with ShutdownCoordinator(
        observers=[recorder], **quiet(wrap_up_time=0.05, wait_time=10)
    ) as coord:
        finish = anyio.Event()

        @coord.on_wrap_up(name="slow")
        async def slow() -> None:
            await finish.wait()

        @coord.on_shutdown(name="close")
        async def close() -> None:
            finish.set()  # the wrap-up hook ends once the shutdown phase runs

        coord.shutdown()
    kinds = [e[0] for e in recorder.story()]
    up = kinds.index("wrap_up_time_up")
    started = recorder.story().index(("phase_started", "shutdown"))
    ended = recorder.story().index(("phase_ended", "wrap_up"))
    assert up < started < ended
