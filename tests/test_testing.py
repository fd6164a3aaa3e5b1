"""gracestop.testing: the testing mode, open_coordinator, shut_down and the pytest
plugin (run by pytester in a fresh pytest process)."""

from __future__ import annotations

import inspect
import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

import gracestop
from gracestop import Hooks, ShutdownConfig, ShutdownCoordinator, ShutdownError, State
from gracestop._testing import restore_state, swap_state
from gracestop.testing import (
    ENV_VAR,
    TESTING_DEFAULTS,
    current_settings,
    is_testing,
    open_coordinator,
    set_testing,
    shut_down,
)

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def clean_testing_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts undecided, without GRACESTOP_TESTING, and leaves no trace."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    previous = swap_state(None, TESTING_DEFAULTS)
    yield
    restore_state(previous)


def build(config: ShutdownConfig | None = None, **overrides: object) -> ShutdownConfig:
    return ShutdownCoordinator(config, hooks=Hooks(), **overrides).config  # type: ignore[arg-type]


# ------------------------------------------------------------------ set_testing


def test_testing_mode_is_off_by_default() -> None:
    assert not is_testing()
    assert build() == ShutdownConfig()


def test_set_testing_as_a_plain_call() -> None:
    set_testing(True)
    assert is_testing()
    cfg = build()
    assert cfg == ShutdownConfig(
        drain_delay=0, wrap_up_time=0.5, wait_time=2, signals=(), hard_exit=False,
        progress_interval=60, systemd_notify=False,
    )  # fmt: skip
    set_testing(False)
    assert not is_testing()
    assert build() == ShutdownConfig()


def test_set_testing_as_a_context_manager_restores_and_nests() -> None:
    with set_testing(True, wait_time=1):
        assert build().wait_time == 1.0
        with set_testing(True, wait_time=3):
            assert build().wait_time == 3.0
            with set_testing(False):
                assert not is_testing()
                assert build().wait_time == 5.5
            assert build().wait_time == 3.0
        assert build().wait_time == 1.0
        assert current_settings()["wait_time"] == 1.0
    assert not is_testing()
    assert current_settings() == TESTING_DEFAULTS


def test_set_testing_restores_even_after_an_error() -> None:
    with pytest.raises(KeyError), set_testing(True):
        raise KeyError("boom")
    assert not is_testing()


def test_values_the_code_sets_are_kept() -> None:
    with set_testing(True):
        cfg = build(wait_time=10, signals=["TERM"])
        assert (cfg.wait_time, cfg.signals, cfg.drain_delay) == (10.0, (15,), 0.0)
        cfg = build(ShutdownConfig(drain_delay=0.25, hard_exit=True))
        assert (cfg.drain_delay, cfg.hard_exit, cfg.wait_time) == (0.25, True, 2.0)


def test_timings_that_do_not_fit_the_testing_ones_are_kept_whole() -> None:
    with set_testing(True):
        # wrap_up_time 3 does not fit in the testing wait_time (2 s): the code's
        # own timings stay, the rest (signals, watchdog) is still for tests.
        cfg = build(wrap_up_time=3)
        assert (cfg.wrap_up_time, cfg.wait_time, cfg.drain_delay) == (3.0, 5.5, 0.0)
        assert cfg.signals == ()
        assert cfg.hard_exit is False


def test_set_time_to_force_quit_still_works_in_testing_mode() -> None:
    with set_testing(True):
        coord = ShutdownCoordinator(hooks=Hooks())
        coord.set_time_to_force_quit("700ms")
        assert coord.config.wait_time == 0.7


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("yes", True), ("0", False), ("", False)]
)
def test_environment_variable_turns_testing_mode_on(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv(ENV_VAR, value)
    assert is_testing() is expected
    assert (build().wait_time == 2.0) is expected
    # A decision made in code wins over the environment.
    with set_testing(not expected):
        assert is_testing() is not expected


def test_testing_mode_from_the_environment_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import gracestop._testing as testing_state

    monkeypatch.setattr(testing_state, "_env_warned", False)
    with set_testing(True):
        build()
    assert caplog.records == []  # turned on in code: the test knows
    monkeypatch.setenv(ENV_VAR, "1")
    build()
    build()
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage().startswith(
        "testing mode is on (GRACESTOP_TESTING is set): coordinators take no signals, "
        "arm no watchdog"
    )


def test_report_file_is_left_alone_and_systemd_is_off(tmp_path: Path) -> None:
    with set_testing(True):
        assert build().report_file is None
        assert build(report_file=tmp_path / "r.json").report_file == str(tmp_path / "r.json")
        assert build().systemd_notify is False
        assert build(systemd_notify=True).systemd_notify is True


def test_a_bad_environment_variable_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "maybe")
    with pytest.raises(ValueError, match=r"^GRACESTOP_TESTING must be 1/true/yes/on .*'maybe'"):
        ShutdownCoordinator(hooks=Hooks())
    # from_env leaves the variable to testing mode.
    assert ShutdownConfig.from_env(environ={ENV_VAR: "1"}) == ShutdownConfig()


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "pattern"),
    [
        (("yes",), {}, TypeError, "testing must be True or False; got str 'yes'"),
        ((True,), {"wait_tme": 1}, gracestop.UnknownFieldError, "unknown field 'wait_tme'"),
        ((True,), {"wait_time": -1}, ValueError, "wait_time must be a positive"),
        ((True,), {"wrap_up_time": 5}, ValueError, "drain_delay + wrap_up_time must not exceed"),
    ],
)
def test_set_testing_refuses_bad_input(
    args: tuple[object, ...], kwargs: dict[str, object], exc: type[Exception], pattern: str
) -> None:
    with pytest.raises(exc, match=pattern.replace("+", r"\+")):
        set_testing(*args, **kwargs)  # type: ignore[arg-type]
    assert not is_testing()  # nothing changed


# ------------------------------------------------------------------ open_coordinator, shut_down


async def test_open_coordinator_runs_a_test_coordinator() -> None:
    async with open_coordinator() as coord:
        assert coord.state is State.RUNNING
        assert coord.signals == ()  # the test runner keeps SIGINT
        assert coord._watchdog is None  # nothing can os._exit the test process
        assert coord.config.wait_time == 2.0
        assert is_testing()  # on for the block, for the code under test

        @coord.on_shutdown(name="close")
        async def close() -> None:
            pass

        report = await shut_down(coord, "done")
        # The test goes on: only the coordinator's own task was cancelled.
        await anyio.lowlevel.checkpoint()
        assert report.ok
        assert report.trigger.reason == "done"
        assert coord.state is State.STOPPED
        assert await shut_down(coord) is report  # idempotent
    assert not is_testing()  # back as it was


async def test_open_coordinator_shuts_down_on_exit_and_keeps_a_chosen_state() -> None:
    hooks = Hooks()
    ran: list[str] = []

    @hooks.on_wrap_up
    async def flush() -> None:
        ran.append("flush")

    with set_testing(True, wait_time=3):
        async with open_coordinator(hooks=hooks) as coord:
            assert coord.config.wait_time == 3.0
        assert is_testing()
    assert ran == ["flush"]
    assert coord.report is not None
    assert coord.report.trigger.reason == "test finished"


async def test_open_coordinator_shuts_down_when_the_test_fails() -> None:
    with pytest.raises(AssertionError, match="the test failed"):
        async with open_coordinator() as coord:
            raise AssertionError("the test failed")
    assert coord.state is State.STOPPED


async def test_open_coordinator_under_an_outer_cancellation() -> None:
    with anyio.CancelScope() as scope:
        async with open_coordinator() as coord:
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    # The coordinator's task is cancelled with the test and open_coordinator shuts
    # it down on the way out: whichever comes first is the trigger.
    assert coord.state is State.STOPPED
    assert coord.report is not None
    trigger = coord.report.trigger
    assert (trigger.kind, trigger.reason) in {
        ("cancelled", "cancelled from outside"),
        ("manual", "test finished"),
    }


async def test_shut_down_inside_the_coordinators_own_block() -> None:
    with set_testing(True):
        async with ShutdownCoordinator(hooks=Hooks()) as coord:
            report = await shut_down(coord)
            assert report.ok  # returned before the block's body is cancelled
    assert coord.report is report


async def test_shut_down_gives_up_after_its_timeout_naming_what_is_pending() -> None:
    release = anyio.Event()
    async with open_coordinator(wait_time=5) as coord:

        @coord.on_shutdown(name="waits-for-release")
        async def waits() -> None:
            await release.wait()

        pattern = r"within 0\.5s .*waits-for-release \((running|not started)"
        with pytest.raises(TimeoutError, match=pattern):
            await shut_down(coord, timeout=0.5)
        release.set()
    assert coord.report is not None and coord.report.ok


async def test_shut_down_refuses_bad_input() -> None:
    with pytest.raises(TypeError, match="coord must be a ShutdownCoordinator; got str"):
        await shut_down("coord")  # type: ignore[arg-type]
    with pytest.raises(ShutdownError, match="needs an entered coordinator"):
        await shut_down(ShutdownCoordinator(hooks=Hooks()))
    async with open_coordinator() as coord:
        with pytest.raises(ValueError, match="timeout must be None or a positive"):
            await shut_down(coord, timeout=0)
        with pytest.raises(TypeError, match="reason must be a str"):
            await shut_down(coord, 42)  # type: ignore[arg-type]
        await shut_down(coord)
        with pytest.raises(TypeError, match="reason must be a str"):
            await shut_down(coord, 42)  # type: ignore[arg-type]


# ------------------------------------------------------------------ the pytest plugin


PYTEST_INI = """
[pytest]
addopts = -p no:cacheprovider
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

CONFTEST = """
import pytest

pytest_plugins = ["gracestop.testing"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param
"""


def run_inner(pytester: pytest.Pytester, test_code: str, conftest: str = CONFTEST) -> None:
    pytester.makeini(PYTEST_INI)
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_inner=textwrap.dedent(test_code))


@pytest.mark.process
def test_the_fixture_in_a_users_test_suite(pytester: pytest.Pytester) -> None:
    run_inner(
        pytester,
        """
        import anyio
        import pytest

        import gracestop
        from gracestop.testing import is_testing, shut_down

        pytestmark = pytest.mark.anyio
        seen = []


        async def test_shut_down_returns_the_report(gracestop_coordinator, anyio_backend):
            coord = gracestop_coordinator
            assert coord.state is gracestop.State.RUNNING
            assert coord.signals == ()
            assert is_testing()
            closed = []
            coord.add_shutdown_listener(lambda: closed.append(anyio_backend))
            report = await shut_down(coord)
            await anyio.sleep(0)  # the test itself is not cancelled
            assert report.ok and closed == [anyio_backend]


        async def test_left_running(gracestop_coordinator):
            seen.append(gracestop_coordinator)


        def test_teardown_shut_it_down():
            assert [c.state for c in seen] == [gracestop.State.STOPPED] * 2
            assert {c.report.trigger.reason for c in seen} == {"test finished"}
            assert not is_testing()


        def test_testing_fixture(gracestop_testing):
            assert is_testing()
            assert gracestop.ShutdownCoordinator().config.hard_exit is False
        """,
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [
            "*test_shut_down_returns_the_report?asyncio? PASSED*",
            "*test_shut_down_returns_the_report?trio? PASSED*",
        ]
    )


@pytest.mark.process
def test_the_fixture_takes_options_from_an_overridden_fixture(pytester: pytest.Pytester) -> None:
    run_inner(
        pytester,
        """
        import pytest

        import gracestop
        from gracestop.testing import shut_down

        pytestmark = pytest.mark.anyio
        hooks = gracestop.Hooks()
        order = []


        @hooks.on_wrap_up
        async def flush():
            order.append("flush")


        @pytest.fixture
        def gracestop_options():
            return {"hooks": hooks, "wait_time": 1}


        async def test_options(gracestop_coordinator):
            assert gracestop_coordinator.config.wait_time == 1.0
            report = await shut_down(gracestop_coordinator)
            assert [r.name for r in report.results] == ["flush"]
        """,
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)


def test_plugin_fixtures_are_documented() -> None:
    from gracestop import testing

    for name in ("gracestop_coordinator", "gracestop_testing", "gracestop_options"):
        assert getattr(testing, name).__doc__, name
    for name in testing.__all__:
        obj = getattr(testing, name)
        if callable(obj):
            assert inspect.getdoc(obj), name
    assert inspect.getdoc(testing._RestoreTesting.__exit__)


def test_docs_show_the_example_that_the_suite_runs() -> None:
    root = Path(__file__).resolve().parent.parent
    docs = (root / "docs" / "testing.md").read_text(encoding="utf-8")
    for name in ("conftest.py", "test_my_hooks.py"):
        code = (root / "examples" / "testing_app" / name).read_text(encoding="utf-8")
        body = code.split('"""', 2)[2].strip()  # the code after the module docstring
        assert body in docs, f"docs/testing.md does not show examples/testing_app/{name}"
