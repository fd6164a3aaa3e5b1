"""gracestop.run(): exit statuses, in process."""

from __future__ import annotations

import anyio
import pytest

import gracestop
from gracestop import Hooks, ShutdownCoordinator


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run_code(main: object, **kwargs: object) -> object:
    with pytest.raises(SystemExit) as info:
        gracestop.run(main, signals=(), **kwargs)  # type: ignore[arg-type]
    return info.value.code


def test_clean_shutdown_exits_zero(backend: str) -> None:
    hooks = Hooks()
    ran: list[str] = []
    hooks.add_shutdown_listener(lambda: ran.append("closed"))

    async def main(coord: ShutdownCoordinator) -> None:
        coord.shutdown()
        await anyio.sleep_forever()

    assert run_code(main, backend=backend, hooks=hooks) == 0
    assert ran == ["closed"]


def test_main_raising_exits_one_with_traceback_and_hooks_still_run(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    hooks = Hooks()
    ran: list[str] = []
    hooks.add_shutdown_listener(lambda: ran.append("closed"))

    async def main(coord: ShutdownCoordinator) -> None:
        raise LookupError("no such table")

    assert run_code(main, backend=backend, hooks=hooks) == 1
    assert ran == ["closed"]
    assert "LookupError: no such table" in capsys.readouterr().err


def test_failed_hook_exits_one(backend: str) -> None:
    hooks = Hooks()

    @hooks.on_shutdown
    def broken() -> None:
        raise OSError("disk full")

    async def main(coord: ShutdownCoordinator) -> None:
        pass

    assert run_code(main, backend=backend, hooks=hooks) == 1


def test_forced_quit_exits_with_force_exit_code(backend: str) -> None:
    hooks = Hooks()
    hooks.add_wrap_up_listener(anyio.sleep_forever)

    async def main(coord: ShutdownCoordinator) -> None:
        pass

    code = run_code(
        main, backend=backend, hooks=hooks, wait_time=0.2, wrap_up_time=0.1, force_exit_code=7
    )
    assert code == 7


def test_system_exit_from_main_keeps_its_status(backend: str) -> None:
    async def main(coord: ShutdownCoordinator) -> None:
        raise SystemExit(3)

    assert run_code(main, backend=backend, hooks=Hooks()) == 3

    async def with_message(coord: ShutdownCoordinator) -> None:
        raise SystemExit("fatal: bad config")

    assert run_code(with_message, backend=backend, hooks=Hooks()) == 1


def test_keyboard_interrupt_from_a_hook_exits_one(backend: str) -> None:
    hooks = Hooks()

    @hooks.on_wrap_up
    async def interrupted() -> None:
        raise KeyboardInterrupt

    async def main(coord: ShutdownCoordinator) -> None:
        pass

    assert run_code(main, backend=backend, hooks=hooks) == 1


def test_bad_arguments_fail_before_any_loop_starts() -> None:
    async def main(coord: ShutdownCoordinator) -> None:
        raise AssertionError("must not run")

    def sync_main(coord: ShutdownCoordinator) -> None:
        raise AssertionError("must not run")

    with pytest.raises(TypeError, match="main must be an async function"):
        gracestop.run("main")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="main must be an async function"):
        gracestop.run(sync_main)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="backend"):
        gracestop.run(main, backend=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend must be one of asyncio, trio; got 'tornado'"):
        gracestop.run(main, backend="tornado")
    with pytest.raises(ValueError, match="wait_time"):
        gracestop.run(main, wait_time=-1)
    with pytest.raises(TypeError, match="coord"):
        gracestop.exit_code("coord")  # type: ignore[arg-type]


def test_main_raising_during_a_forced_quit_still_prints_its_traceback(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    hooks = Hooks()
    hooks.add_wrap_up_listener(anyio.sleep_forever)

    async def main(coord: ShutdownCoordinator) -> None:
        raise ValueError("bad request")

    code = run_code(
        main, backend=backend, hooks=hooks, wait_time=0.2, wrap_up_time=0.1, force_exit_code=3
    )
    assert code == 3
    assert "ValueError: bad request" in capsys.readouterr().err
