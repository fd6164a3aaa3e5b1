"""Child program for the real-signal tests: ``child.py SCENARIO BACKEND [VARIANT]``.

Each scenario prints lines the parent synchronises on (``READY``, ``HOOK-START x``,
...) and ends with ``REPORT {json}``, the coordinator's report. The gracestop log
goes to stderr.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

import gracestop
from gracestop import ShutdownCoordinator

Scenario = Callable[[str, str], None]
SCENARIOS: dict[str, Scenario] = {}


def scenario(func: Scenario) -> Scenario:
    SCENARIOS[func.__name__] = func
    return func


def out(*parts: object) -> None:
    print(*parts, flush=True)


def print_report(coord: ShutdownCoordinator) -> None:
    assert coord.report is not None
    out("REPORT " + json.dumps(coord.report.to_dict()))


def run_with_report(
    main: Callable[[ShutdownCoordinator], Awaitable[object]],
    backend: str,
    *,
    report_at_exit: bool = True,
    **config: Any,
) -> None:
    """gracestop.run(main), printing the report at exit (run() ends the process)."""
    box: dict[str, ShutdownCoordinator] = {}

    async def wrapped(coord: ShutdownCoordinator) -> None:
        box["coord"] = coord
        await main(coord)

    def at_exit() -> None:
        coord = box.get("coord")
        if report_at_exit and coord is not None and coord.report is not None:
            print_report(coord)

    atexit.register(at_exit)
    gracestop.run(wrapped, backend=backend, hooks=gracestop.Hooks(), **config)


def add_two_phases(coord: ShutdownCoordinator) -> None:
    @coord.on_wrap_up(name="wrap_up")
    async def wrap_up() -> None:
        await anyio.lowlevel.checkpoint()
        out("HOOK wrap_up")

    @coord.on_shutdown(name="shutdown")
    async def shutdown() -> None:
        await anyio.lowlevel.checkpoint()
        out("HOOK shutdown")


# --------------------------------------------------------------------- scenarios


@scenario
def phases(backend: str, mode: str) -> None:
    """Both phases after a signal; ``mode`` is the signal_mode."""

    async def main() -> None:
        async with ShutdownCoordinator(
            hooks=gracestop.Hooks(), signal_mode=mode or "auto", wait_time=5
        ) as coord:
            add_two_phases(coord)
            out("READY", ",".join(s.name for s in coord.signals))
            await anyio.sleep_forever()
        print_report(coord)

    anyio.run(main, backend=backend)
    out("EXITED")


@scenario
def seed(backend: str, variant: str) -> None:
    """go-zero's scenario: a 2 s wrap-up listener, a server, SIGTERM in the middle."""

    async def flush() -> None:
        out("HOOK-START flush")
        await anyio.sleep(2)
        out("FLUSHED")

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.send(b"hello\n")

    async def main() -> None:
        async with ShutdownCoordinator(
            hooks=gracestop.Hooks(), wait_time=5, wrap_up_time=3
        ) as coord:
            waiter = coord.add_wrap_up_listener(flush)
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            async with anyio.create_task_group() as server:
                server.start_soon(listener.serve, handle)
                out("PORT", port)
                out("READY")
                trigger = await coord.triggered()
                out("TRIGGERED", trigger.kind, trigger.signal.name if trigger.signal else None)
                server.cancel_scope.cancel()
            await listener.aclose()
            out("SERVER-STOPPED")
            result = await waiter()
            out("WAITER", result.status.value)
        print_report(coord)

    anyio.run(main, backend=backend)
    out("EXITED")


@scenario
def blocking(backend: str, variant: str) -> None:
    """An async hook that blocks the loop: only the watchdog can end the process."""

    async def main(coord: ShutdownCoordinator) -> None:
        @coord.on_wrap_up(name="blocker")
        async def blocker() -> None:
            out("HOOK-START blocker")
            time.sleep(60)  # blocks the loop: the point of the scenario
            out("HOOK-END blocker")

        out("READY")
        await anyio.sleep_forever()

    run_with_report(main, backend, wait_time=1, wrap_up_time=0.5, force_exit_code=3)


async def wait_for_go() -> None:
    """Wait for the parent to write ``go`` on stdin."""
    line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    if line.strip() != "go":
        raise RuntimeError(f"expected 'go' on stdin, got {line!r}")


@scenario
def slow(backend: str, variant: str) -> None:
    """A slow wrap-up hook; ``variant`` is ``force``, ``ignore`` or ``handler``
    (``force`` with the signal.signal fallback)."""
    second = "ignore" if variant == "ignore" else "force"
    mode = "handler" if variant == "handler" else "auto"

    async def main(coord: ShutdownCoordinator) -> None:
        @coord.on_wrap_up(name="slow")
        async def slow_hook() -> None:
            out("HOOK-START slow")
            if second == "ignore":
                await wait_for_go()  # ends when the parent says, not on a timer
            else:
                await anyio.sleep(30)
            out("HOOK-END slow")

        @coord.on_shutdown(name="closer")
        async def closer() -> None:
            out("HOOK closer")

        out("READY")
        await anyio.sleep_forever()

    run_with_report(
        main,
        backend,
        wait_time=20,
        wrap_up_time=20,
        second_signal=second,
        signal_mode=mode,
        force_exit_code=4,
    )


@scenario
def startup(backend: str, variant: str) -> None:
    """A signal during a long startup, before any hook is registered."""

    async def main() -> None:
        async with ShutdownCoordinator(hooks=gracestop.Hooks(), wait_time=5) as coord:
            out("READY")
            try:
                await anyio.sleep(30)  # the "startup"
            except anyio.get_cancelled_exc_class():
                out("STARTUP-CANCELLED")
                raise
            out("AFTER-STARTUP")
            add_two_phases(coord)
            await anyio.sleep_forever()
        print_report(coord)

    anyio.run(main, backend=backend)
    out("EXITED")


@scenario
def late(backend: str, variant: str) -> None:
    """Hooks registered during the shutdown: from a wrap-up hook and from the body."""

    async def main() -> None:
        async with ShutdownCoordinator(hooks=gracestop.Hooks(), wait_time=5) as coord:

            async def late_wrap_up() -> None:
                await anyio.lowlevel.checkpoint()
                out("HOOK late_wrap_up")

            async def late_shutdown() -> None:
                await anyio.lowlevel.checkpoint()
                out("HOOK late_shutdown")

            @coord.on_wrap_up(name="registrar")
            async def registrar() -> None:
                out("HOOK registrar")
                waiter = coord.add_wrap_up_listener(late_wrap_up, name="late_wrap_up")
                result = await waiter()
                out("LATE-WRAP-UP-WAITER", result.status.value)

            out("READY")
            await coord.triggered()
            waiter = coord.add_shutdown_listener(late_shutdown, name="late_shutdown")
            out("REGISTERED late_shutdown")
            result = await waiter()
            out("LATE-SHUTDOWN-WAITER", result.status.value)
            await anyio.sleep_forever()
        print_report(coord)

    anyio.run(main, backend=backend)
    out("EXITED")


@scenario
def failing(backend: str, variant: str) -> None:
    """A hook that raises: the others run, run() exits 1."""

    async def main(coord: ShutdownCoordinator) -> None:
        @coord.on_wrap_up(name="boom")
        async def boom() -> None:
            await anyio.lowlevel.checkpoint()
            out("HOOK boom")
            raise ValueError("boom went the hook")

        @coord.on_wrap_up(name="other")
        async def other() -> None:
            await anyio.sleep(0.05)
            out("HOOK other")

        @coord.on_shutdown(name="closer")
        async def closer() -> None:
            out("HOOK closer")

        out("READY")
        await anyio.sleep_forever()

    run_with_report(main, backend, wait_time=5)


@scenario
def restore(backend: str, variant: str) -> None:
    """The handler in place before the block is back after it, and receives signals.

    ``variant``: ``py`` (a Python handler on SIGTERM), ``ign`` (SIG_IGN on
    SIGTERM), ``int`` (default_int_handler on SIGINT), ``py-signal`` (a Python
    handler on SIGTERM and the coordinator triggered by a real SIGTERM).
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        out("PREV-HANDLER", signal.Signals(signum).name)

    sig = signal.SIGINT if variant == "int" else signal.SIGTERM
    previous: Any = {
        "py": handler,
        "py-signal": handler,
        "ign": signal.SIG_IGN,
        "int": signal.default_int_handler,
    }[variant]
    signal.signal(sig, previous)

    async def main() -> None:
        async with ShutdownCoordinator(hooks=gracestop.Hooks(), wait_time=5) as coord:
            add_two_phases(coord)
            out("INSIDE", signal.getsignal(sig) is previous)
            if variant == "py-signal":
                out("READY")
            else:
                coord.shutdown("test")
            await anyio.sleep_forever()
        print_report(coord)

    anyio.run(main, backend=backend)
    current = signal.getsignal(sig)
    out("RESTORED", current is previous, repr(current))
    try:  # the parent sends the signal once it has read OK
        out("OK")
        line = sys.stdin.readline()
    except KeyboardInterrupt:
        out("KEYBOARD-INTERRUPT")
        return
    out("ALIVE", line.strip())


@scenario
def late_signal(backend: str, variant: str) -> None:
    """Signals that arrive while the coordinator's block is exiting, after STOPPED.

    A probe task beside the block sends the process a real ``variant`` signal
    (TERM or INT) at each of its checkpoints from the moment the coordinator
    has stopped until the block has exited, recording the disposition it saw.
    Each must reach the coordinator (ignored, logged) or the restored previous
    handler; none may meet SIG_DFL, which would end the process.
    """
    sig = signal.Signals["SIG" + variant]
    received: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)

    signal.signal(sig, handler)
    dispositions: list[str] = []

    async def probe(coord: ShutdownCoordinator, done: anyio.Event) -> None:
        while coord.state is not gracestop.State.STOPPED:
            await anyio.lowlevel.checkpoint()
        sent = 0
        while not done.is_set():
            current = signal.getsignal(sig)
            name = getattr(current, "__qualname__", None) or repr(current)
            if not dispositions or dispositions[-1] != name:
                dispositions.append(name)
                out("DISPOSITION", name)
            os.kill(os.getpid(), sig)
            sent += 1
            await anyio.lowlevel.checkpoint()
        out("LATE-SIGNALS-SENT", sent)

    async def main() -> None:
        done = anyio.Event()
        coord = ShutdownCoordinator(hooks=gracestop.Hooks(), wait_time=5)
        async with anyio.create_task_group() as tg:
            tg.start_soon(probe, coord, done)
            async with coord:
                add_two_phases(coord)
                coord.shutdown("test")
                await anyio.sleep_forever()
            done.set()
        print_report(coord)

    anyio.run(main, backend=backend)
    out("RESTORED", signal.getsignal(sig) is handler)
    out("SURVIVED", len(received))


@scenario
def enter_signal(backend: str, variant: str) -> None:
    """A signal that arrives while the coordinator is being entered.

    A probe task sends the process a real SIGTERM at its first checkpoint after
    the coordinator has replaced the SIGTERM handler but before it is RUNNING.
    The signal must not be lost: the shutdown must be triggered by it.
    """
    original = signal.getsignal(signal.SIGTERM)

    async def probe(coord: ShutdownCoordinator) -> None:
        while coord.state is gracestop.State.IDLE:
            if signal.getsignal(signal.SIGTERM) is not original:
                out("SENT-WHILE-ENTERING")
                os.kill(os.getpid(), signal.SIGTERM)
                return
            await anyio.lowlevel.checkpoint()
        out("PROBE-MISSED-THE-ENTRY")

    async def main() -> None:
        coord = ShutdownCoordinator(hooks=gracestop.Hooks(), wait_time=5)
        async with anyio.create_task_group() as tg:
            tg.start_soon(probe, coord)
            async with coord:
                add_two_phases(coord)
                out("ENTERED")
                # A bound for the failing case only: a correct coordinator is
                # triggered at once by the signal already received.
                with anyio.move_on_after(1):
                    await coord.triggered()
                if coord.trigger is None:
                    out("NOT-TRIGGERED")
                    coord.shutdown("the signal was lost")
                await anyio.sleep_forever()
        print_report(coord)

    anyio.run(main, backend=backend)
    out("EXITED")


@scenario
def stuck_thread(backend: str, variant: str) -> None:
    """A sync hook stuck in a worker thread past the deadline (the thread is abandoned)."""

    async def main(coord: ShutdownCoordinator) -> None:
        @coord.on_wrap_up(name="stuck")
        def stuck() -> None:
            out("HOOK-START stuck")
            time.sleep(60)
            out("HOOK-END stuck")

        out("READY")
        try:
            await anyio.sleep_forever()
        finally:
            if coord.report is not None:
                print_report(coord)

    # The report is printed from main: at exit, the interpreter first waits for
    # the (non-daemon) worker thread, and the watchdog ends it before atexit runs.
    run_with_report(
        main, backend, report_at_exit=False, wait_time=1, wrap_up_time=0.5, force_exit_code=6
    )


@scenario
def claims(backend: str, variant: str) -> None:
    """Two coordinators at once: explicit signals raise, default signals go without."""

    async def main() -> None:
        async with ShutdownCoordinator(hooks=gracestop.Hooks(), wait_time=5) as outer:
            add_two_phases(outer)
            out("OUTER-SIGNALS", ",".join(s.name for s in outer.signals))
            try:
                async with ShutdownCoordinator(hooks=gracestop.Hooks(), signals=["TERM"]):
                    out("EXPLICIT entered")
            except gracestop.ShutdownError as exc:
                out("EXPLICIT ShutdownError", str(exc))
            async with ShutdownCoordinator(hooks=gracestop.Hooks(), wait_time=5) as inner:
                out("INNER-SIGNALS", ",".join(s.name for s in inner.signals) or "none")
                inner.shutdown("inner done")
            assert inner.report is not None
            out("INNER-REPORT", inner.report.trigger.kind, inner.report.ok)
            out("OUTER-STATE", outer.state.value, outer.trigger is None)
            out("AFTER-INNER", signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)
            out("READY")
            await anyio.sleep_forever()
        print_report(outer)

    anyio.run(main, backend=backend)
    out("EXITED")


@scenario
def manual_signal(backend: str, variant: str) -> None:
    """A manual trigger, then signals during the shutdown (``variant``: one or two)."""

    async def main(coord: ShutdownCoordinator) -> None:
        @coord.on_wrap_up(name="slow")
        async def slow_hook() -> None:
            out("HOOK-START slow")
            if variant == "one":
                await wait_for_go()  # ends when the parent says, not on a timer
            else:
                await anyio.sleep(30)
            out("HOOK-END slow")

        coord.shutdown("deploy")
        await anyio.sleep_forever()

    run_with_report(main, backend, wait_time=20, wrap_up_time=20, force_exit_code=4)


@scenario
def run_clean(backend: str, variant: str) -> None:
    async def main(coord: ShutdownCoordinator) -> None:
        add_two_phases(coord)
        out("READY")
        await anyio.sleep_forever()

    run_with_report(main, backend, wait_time=5)


@scenario
def run_raises(backend: str, variant: str) -> None:
    async def main(coord: ShutdownCoordinator) -> None:
        add_two_phases(coord)
        out("READY")
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("main failed on purpose")

    run_with_report(main, backend, wait_time=5)


@scenario
def run_deadline(backend: str, variant: str) -> None:
    async def main(coord: ShutdownCoordinator) -> None:
        @coord.on_wrap_up(name="sleepy")
        async def sleepy() -> None:
            out("HOOK-START sleepy")
            await anyio.sleep(30)
            out("HOOK-END sleepy")

        @coord.on_shutdown(name="closer")
        async def closer() -> None:
            out("HOOK closer")

        out("READY")
        await anyio.sleep_forever()

    run_with_report(main, backend, wait_time=1, wrap_up_time=0.5, force_exit_code=5)


@scenario
def stubborn(backend: str, variant: str) -> None:
    """A task that swallows its cancellation and keeps going: in the block's body
    (``variant`` ``body``) or outside the block (``loop``: an asyncio task, a trio
    system task), where only the event loop's teardown waits for it."""

    async def swallow() -> None:
        told = False
        while True:
            try:
                await anyio.sleep(3600)
            except anyio.get_cancelled_exc_class():
                if not told:
                    told = True
                    out("SWALLOWED")

    async def main(coord: ShutdownCoordinator) -> None:
        @coord.on_shutdown(name="closer")
        async def closer() -> None:
            out("HOOK closer")

        if variant == "body":
            async with anyio.create_task_group() as tg:
                tg.start_soon(swallow)
                out("READY")
                await anyio.sleep_forever()
        elif backend == "trio":
            import trio.lowlevel

            trio.lowlevel.spawn_system_task(swallow)
        else:
            import asyncio

            tasks.append(asyncio.ensure_future(swallow()))
        out("READY")
        await anyio.sleep_forever()

    tasks: list[object] = []
    run_with_report(main, backend, wait_time=1, wrap_up_time=0.5, force_exit_code=7)


@scenario
def body_cleanup(backend: str, variant: str) -> None:
    """Your own ``async with`` (not run()): after the shutdown has finished, the body
    does a shielded cleanup that ends past ``wait_time + watchdog_grace`` after the
    signal. The coordinator has finished by then; what the body does is its own."""

    async def main() -> None:
        async with ShutdownCoordinator(
            hooks=gracestop.Hooks(), wait_time=1, wrap_up_time=1, force_exit_code=7
        ) as coord:

            @coord.on_wrap_up(name="flush")
            async def flush() -> None:
                await anyio.sleep(0.8)  # within wait_time

            try:
                out("READY")
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    out("CLEANUP-START")
                    await anyio.sleep(1.5)  # a pool closing, after the hooks
                    out("CLEANUP-END")
        print_report(coord)

    anyio.run(main, backend=backend)
    out("EXITED-NORMALLY")


def diag_spin_work(rounds: int) -> int:
    """Busy work on the loop thread, for the profile to find by name."""
    return sum(sum(range(20_000)) for _ in range(rounds))


def diag_thread_body(stop: threading.Event) -> None:
    stop.wait(60)


@scenario
def diagnostics(backend: str, variant: str) -> None:
    """A service with ``diagnostics=True`` writing to the directory ``variant``
    (``default``: the default directory; ``off``: diagnostics not enabled).

    It has a named task awaiting a named coroutine and a named thread, and obeys
    commands on stdin: ``ping`` (prints ``PONG``), ``spin N`` (runs
    ``diag_spin_work`` on the loop thread, prints ``SPUN N``), ``quit`` (stops
    reading stdin, prints ``QUIT``).
    """
    stop_thread = threading.Event()
    thread = threading.Thread(
        target=diag_thread_body, args=(stop_thread,), name="diag-thread", daemon=True
    )
    thread.start()

    async def diag_inner_wait(event: anyio.Event) -> None:
        await event.wait()

    async def diag_waiter(event: anyio.Event) -> None:
        await diag_inner_wait(event)

    async def commands() -> None:
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            word, _, arg = line.strip().partition(" ")
            if word == "ping":
                out("PONG")
            elif word == "spin":
                diag_spin_work(int(arg))
                out("SPUN", arg)
            else:
                out("QUIT")
                return

    async def main(coord: ShutdownCoordinator) -> None:
        @coord.on_shutdown(name="closer")
        async def closer() -> None:
            stop_thread.set()
            out("HOOK closer")

        event = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(diag_waiter, event, name="diag-named-task")
            tg.start_soon(commands, name="diag-commands")
            out("READY", os.getpid())
            await coord.triggered()
            event.set()
            tg.cancel_scope.cancel()

    options: dict[str, Any] = {"diagnostics": variant != "off"}
    if variant not in ("default", "off"):
        options["diagnostics_dir"] = variant
    run_with_report(main, backend, wait_time=10, **options)


@scenario
def report_file(backend: str, variant: str) -> None:
    """Settings from the environment (``GRACESTOP_REPORT_FILE``); one hook ends OK,
    one fails. ``variant`` ``blocking``: a wrap-up hook blocks the loop, so the
    watchdog ends the process and writes the report first. ``plain``: the config
    is not read from the environment; the coordinator reads the variable itself."""
    config = (
        gracestop.ShutdownConfig() if variant == "plain" else gracestop.ShutdownConfig.from_env()
    )

    async def main() -> None:
        async with ShutdownCoordinator(
            config, hooks=gracestop.Hooks(), wait_time=1, wrap_up_time=0.5, force_exit_code=3
        ) as coord:

            @coord.on_wrap_up(name="flush")
            async def flush() -> None:
                await anyio.lowlevel.checkpoint()
                if variant == "blocking":
                    out("HOOK-START flush")
                    time.sleep(60)  # blocks the loop: the point of the variant

            @coord.on_shutdown(name="close-db")
            async def close_db() -> None:
                raise ValueError("database is gone")

            out("READY", coord.config.report_file or os.environ["GRACESTOP_REPORT_FILE"])
            await anyio.sleep_forever()
        print_report(coord)

    anyio.run(main, backend=backend)
    out("EXITED")


@scenario
def systemd(backend: str, variant: str) -> None:
    """sd_notify to ``NOTIFY_SOCKET``: a wrap-up hook that ends when the parent says,
    with progress lines (and STATUS messages) while it runs."""

    async def main() -> None:
        async with ShutdownCoordinator(
            hooks=gracestop.Hooks(), wait_time=10, wrap_up_time=10, progress_interval=0.05
        ) as coord:

            @coord.on_wrap_up(name="flush")
            async def flush() -> None:
                out("HOOK-START flush")
                await wait_for_go()
                out("HOOK-END flush")

            out("READY")
            await anyio.sleep_forever()
        print_report(coord)

    anyio.run(main, backend=backend)
    out("EXITED")


@scenario
def exiting(backend: str, variant: str) -> None:
    """gracestop.run() after the shutdown: the process waits for the parent's ``go``
    while it exits, ``variant`` says where (``run``: as run()'s SystemExit goes
    up, ``atexit``: in an atexit callback, the interpreter's last clean-up)."""

    def hold(where: str) -> None:
        out("EXITING", where)
        line = sys.stdin.readline()
        out("GO", line.strip())

    if variant == "atexit":
        # Registered before run(): atexit runs it after run()'s own callback.
        atexit.register(hold, "atexit")

    async def main(coord: ShutdownCoordinator) -> None:
        add_two_phases(coord)
        out("READY")
        await anyio.sleep_forever()

    try:
        gracestop.run(main, backend=backend, hooks=gracestop.Hooks(), wait_time=5)
    finally:
        if variant == "run":
            hold("run")


def entry() -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    name, backend, *rest = sys.argv[1:]
    SCENARIOS[name](backend, rest[0] if rest else "")


if __name__ == "__main__":
    entry()
