"""gracestop.run(): an entry point like anyio.run that ends the process with a status."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from ._config import _describe
from ._coordinator import ShutdownCoordinator
from ._hooks import Hooks, _is_async_callable
from ._late_signals import LateSignals

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._config import ConfigOverrides
    from .instrumentation import Observer

__all__ = ["exit_code", "run"]

_BACKENDS = ("asyncio", "trio")


def run(
    main: Callable[[ShutdownCoordinator], Awaitable[object]],
    *,
    backend: str = "asyncio",
    backend_options: Mapping[str, Any] | None = None,
    hooks: Hooks | Iterable[Hooks] | None = None,
    observers: Iterable[Observer] | None = None,
    **config: Unpack[ConfigOverrides],
) -> NoReturn:
    """Run ``main(coord)`` inside a `ShutdownCoordinator` and exit the process.

    After a signal, the whole rest of the process is bounded: the watchdog stays
    armed until the event loop has ended, so a task that swallows its
    cancellation, in ``main`` or started outside it, cannot keep the process
    alive past ``wait_time`` + ``watchdog_grace``.

    The exit status is 0 when every hook ended ``OK``; ``force_exit_code`` when the
    quit was forced (deadline or second signal); 1 when a hook failed or timed
    out, or when ``main`` raised (its traceback is printed to stderr). A
    ``SystemExit`` raised by ``main`` keeps its own status once the shutdown has run.

    A signal that comes once the shutdown has finished, while the process is
    exiting, does not change that status: the first one is ignored (with a line
    on stderr), a further one gets the handling it had before ``run()`` (SIGTERM
    ends the process, SIGINT raises ``KeyboardInterrupt``), so that an exit that
    hangs can still be cut short. This handler stays in place until the process
    has exited (a test that catches the ``SystemExit`` keeps it too: it passes
    every signal on after the first late one); during the interpreter's final
    clean-up (after the first ``atexit`` callback) such signals are ignored.

    Args:
        main: an async function taking the coordinator.
        backend: ``"asyncio"`` or ``"trio"``, as for `anyio.run`.
        backend_options: passed to `anyio.run` (``{"use_uvloop": True}``).
        hooks: registries, as for [`ShutdownCoordinator`][gracestop.ShutdownCoordinator].
        observers: observers of shutdown events, as for
            [`ShutdownCoordinator`][gracestop.ShutdownCoordinator].
        **config: [`ShutdownConfig`][gracestop.ShutdownConfig] fields.

    For example:

        async def main(coord: gracestop.ShutdownCoordinator) -> None:
            await serve(coord)

        gracestop.run(main, wait_time=10)
    """
    if not callable(main) or not _is_async_callable(main):
        raise TypeError(
            f"main must be an async function taking the coordinator; got {_describe(main)}"
        )
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str; got {_describe(backend)}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}; got {backend!r}")
    # Built here so that bad configuration fails before the event loop starts.
    coord = ShutdownCoordinator(hooks=hooks, observers=observers, **config)
    # run() owns the event loop: after a signal, the deadline also covers the
    # loop's teardown, where asyncio waits for every task left, even one that
    # ignores its cancellation.
    coord._keep_watchdog = True
    late = LateSignals(coord)

    async def _main() -> None:
        # Before the coordinator claims the signals, so that it puts this back.
        late.install()
        async with coord:
            await main(coord)

    error: BaseException | None = None
    try:
        anyio.run(_main, backend=backend, backend_options=dict(backend_options or {}))
    except SystemExit as exc:
        error = exc
    except BaseException as exc:  # main raised: report it, then exit with 1
        error = exc
    finally:
        coord._stop_watchdog(loop_ended=True)
        late.loop_closed()
    code = exit_code(coord, error)
    late.register_at_exit()
    sys.exit(code)


def exit_code(coord: ShutdownCoordinator, error: BaseException | None = None) -> int:
    """The process status [`run`][gracestop.run] uses for a finished coordinator.

    ``error`` is what escaped the ``async with`` block, if anything; when it did
    not come from a hook, its traceback is printed to stderr.
    """
    if not isinstance(coord, ShutdownCoordinator):
        raise TypeError(f"coord must be a ShutdownCoordinator; got {type(coord).__name__}")
    report = coord.report
    hook_errors = {id(r.error) for r in report.results} if report is not None else set[int]()
    main_error = error is not None and id(error) not in hook_errors
    if main_error and not isinstance(error, SystemExit):
        traceback.print_exception(error)
    if report is not None and report.forced:
        return coord.config.force_exit_code
    if isinstance(error, SystemExit) and main_error:
        code = error.code
        if code is None or isinstance(code, int):
            return int(code or 0) if report is None or report.ok else 1
        print(code, file=sys.stderr)
        return 1
    if main_error or report is None or not report.ok:
        return 1
    return 0
