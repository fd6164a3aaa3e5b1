"""Tests for gracestop._diagnostics: names, the safe directory and files, the
listener inside a coordinator, and request_diagnostics' arguments.

Real signals to real children are in tests/process/test_diagnostics_process.py;
here the signals are sent to this process, whose handlers the coordinator owns
while it runs.
"""

from __future__ import annotations

import logging
import os
import pstats
import signal
import stat
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

import gracestop
from gracestop import ShutdownCoordinator
from gracestop._diagnostics import (
    UnsafeDirectoryError,
    claim_diagnostics,
    default_diagnostics_dir,
    file_name,
    open_safe_directory,
    program_name,
    request_diagnostics,
    write_new_file,
)
from gracestop._signals import claimed_signals

pytestmark = pytest.mark.anyio

USR1 = signal.SIGUSR1
USR2 = signal.SIGUSR2


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# ---------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv0", "expected"),
    [
        ("/srv/app/server.py", "server"),
        ("worker", "worker"),
        ("", "python"),
        ("-c", "python"),
        ("/x/my app;rm -rf.py", "my_app_rm_-rf"),
        ("../..", "python"),
        ("/x/.hidden.py", "hidden"),
        ("a" * 100, "a" * 64),
    ],
)
def test_program_name(argv0: str, expected: str) -> None:
    assert program_name(argv0) == expected


def test_program_name_defaults_to_argv0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/opt/svc/api.py", "--port", "1"])
    assert program_name() == "api"
    assert file_name("tasks", "dump", pid=42, when=0).startswith("api-42-tasks-")
    name = file_name("profile", "txt")
    assert name.startswith(f"api-{os.getpid()}-profile-")
    assert len(name.split("-")[-1]) == len("0123235959.txt")


def test_default_directory() -> None:
    assert default_diagnostics_dir().name == f"gracestop-{os.geteuid()}"
    assert default_diagnostics_dir(1234).name == "gracestop-1234"


# ---------------------------------------------------------------------------
# The safe directory
# ---------------------------------------------------------------------------


def test_missing_directory_is_created_0700(tmp_path: Path) -> None:
    directory = tmp_path / "new"
    os.close(open_safe_directory(directory))
    assert mode(directory) == 0o700
    os.close(open_safe_directory(directory))  # an existing safe one is accepted


def test_missing_parent_is_an_error_not_created(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_safe_directory(tmp_path / "no" / "such")
    assert not (tmp_path / "no").exists()


def test_create_false_does_not_create(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_safe_directory(tmp_path / "absent", create=False)


def test_symlink_directory_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(UnsafeDirectoryError, match=r"is a symlink \(not followed\)"):
        open_safe_directory(link)


def test_dangling_symlink_directory_refused_and_not_created(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    with pytest.raises(UnsafeDirectoryError, match="is a symlink"):
        open_safe_directory(link)
    assert not (tmp_path / "target").exists()


def test_file_in_place_of_directory_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(UnsafeDirectoryError, match="is not a directory"):
        open_safe_directory(path)


@pytest.mark.parametrize("bits", [0o770, 0o707, 0o777, 0o1777])
def test_group_or_world_writable_refused(tmp_path: Path, bits: int) -> None:
    directory = tmp_path / "open"
    directory.mkdir()
    directory.chmod(bits)
    with pytest.raises(UnsafeDirectoryError, match=r"writable by group or others \(mode"):
        open_safe_directory(directory)


def test_directory_of_another_user_refused(tmp_path: Path) -> None:
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o700)
    try:
        os.chown(directory, 65534, -1)
    except PermissionError:
        pytest.skip("not allowed to give a directory to another user")
    with pytest.raises(UnsafeDirectoryError, match=r"owned by uid 65534"):
        open_safe_directory(directory)


def test_directory_owned_by_another_uid_refused_in_any_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ownership check without root: this process pretends to be another uid."""
    directory = tmp_path / "mine"
    directory.mkdir(mode=0o700)
    owner = os.lstat(directory).st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 4242)
    with pytest.raises(
        UnsafeDirectoryError,
        match=rf"directory {directory} is owned by uid {owner}, not by uid {owner + 4242}$",
    ):
        open_safe_directory(directory)


# ---------------------------------------------------------------------------
# Safe files
# ---------------------------------------------------------------------------


def test_new_file_is_0600_and_complete(tmp_path: Path) -> None:
    fd = open_safe_directory(tmp_path / "d")
    try:
        name = write_new_file(fd, "a-1-tasks-0101000000.dump", b"hello" * 1000)
    finally:
        os.close(fd)
    path = tmp_path / "d" / name
    assert name == "a-1-tasks-0101000000.dump"
    assert path.read_bytes() == b"hello" * 1000
    assert mode(path) == 0o600
    assert [p.name for p in (tmp_path / "d").iterdir()] == [name]  # no temporary left


def test_same_name_twice_gets_a_suffix(tmp_path: Path) -> None:
    fd = open_safe_directory(tmp_path / "d")
    try:
        names = [write_new_file(fd, "x.dump", bytes([i])) for i in range(3)]
    finally:
        os.close(fd)
    assert names == ["x.dump", "x-2.dump", "x-3.dump"]
    assert [(tmp_path / "d" / n).read_bytes() for n in names] == [b"\0", b"\1", b"\2"]


def test_symlink_at_the_file_path_is_refused_never_followed(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    fd = open_safe_directory(directory)
    (directory / "x.dump").symlink_to(victim)
    try:
        with pytest.raises(UnsafeDirectoryError, match=r"x\.dump is a symlink \(not followed\)"):
            write_new_file(fd, "x.dump", b"evil", directory=str(directory))
    finally:
        os.close(fd)
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in directory.iterdir()) == ["x.dump"]


def test_other_things_at_the_file_path_are_refused(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    fd = open_safe_directory(directory)
    (directory / "x.dump").mkdir()
    try:
        with pytest.raises(UnsafeDirectoryError, match="is not a regular file"):
            write_new_file(fd, "x.dump", b"data")
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# Inside a coordinator (signals sent to this process)
# ---------------------------------------------------------------------------


async def test_not_enabled_by_default_leaves_the_handlers_alone() -> None:
    before = signal.getsignal(USR1), signal.getsignal(USR2)
    async with ShutdownCoordinator(hooks=gracestop.Hooks()) as coord:
        assert (signal.getsignal(USR1), signal.getsignal(USR2)) == before
        assert USR1 not in claimed_signals()
        coord.shutdown("test")
    assert (signal.getsignal(USR1), signal.getsignal(USR2)) == before


def previous_handler(signum: int, frame: object) -> None:
    """A handler of the application's, to be put back after the block."""


@pytest.mark.parametrize("mode_", ["auto", "handler"])
async def test_claims_and_restores_exactly(tmp_path: Path, mode_: str) -> None:
    old = signal.signal(USR1, previous_handler), signal.signal(USR2, signal.SIG_IGN)
    try:
        async with ShutdownCoordinator(
            hooks=gracestop.Hooks(),
            diagnostics=True,
            diagnostics_dir=tmp_path / "d",
            signal_mode=mode_,  # type: ignore[arg-type]
        ) as coord:
            claimed = claimed_signals()
            assert claimed[USR1] == claimed[USR2] == claimed[signal.SIGTERM]
            assert signal.getsignal(USR1) is not previous_handler
            coord.shutdown("test")
        assert signal.getsignal(USR1) is previous_handler
        assert signal.getsignal(USR2) is signal.SIG_IGN
        assert USR1 not in claimed_signals()
    finally:
        signal.signal(USR1, old[0])
        signal.signal(USR2, old[1])


async def wait_for_file(directory: Path, pattern: str) -> Path:
    with anyio.fail_after(10):
        while True:
            # Not anyio.Path: it needs a worker thread, which a test may have taken.
            found = sorted(directory.glob(pattern)) if directory.is_dir() else []  # noqa: ASYNC240
            if found:
                return Path(found[0])
            await anyio.sleep(0.02)


async def test_dump_and_profile_in_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gracestop")
    directory = tmp_path / "d"

    async def named_sleeper() -> None:
        await anyio.sleep_forever()

    async with (
        ShutdownCoordinator(
            hooks=gracestop.Hooks(), diagnostics=True, diagnostics_dir=directory
        ) as coord,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(named_sleeper, name="in-process-sleeper")
        os.kill(os.getpid(), USR2)  # start a profile...
        os.kill(os.getpid(), USR1)  # ...and a dump during it
        dump = await wait_for_file(directory, "*.dump")
        text = dump.read_text()
        assert "--- task 'in-process-sleeper'" in text
        assert "in named_sleeper" in text
        os.kill(os.getpid(), USR2)
        summary = await wait_for_file(directory, "*.txt")
        assert pstats.Stats(str(summary.with_suffix(".pstats"))).total_calls > 0  # type: ignore[attr-defined]
        tg.cancel_scope.cancel()
        coord.shutdown("test")
    records = [r for r in caplog.records if r.getMessage().startswith("diagnostics written")]
    kinds = [getattr(r, "gracestop_kind", None) for r in records]
    assert kinds == ["dump", "profile", "profile summary"]
    assert getattr(records[0], "gracestop_path", None) == str(dump)
    assert {getattr(r, "gracestop_event", None) for r in records} == {"diagnostics_written"}


async def test_exit_during_a_profile_writes_it(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    async with ShutdownCoordinator(
        hooks=gracestop.Hooks(), diagnostics=True, diagnostics_dir=directory
    ):
        os.kill(os.getpid(), USR2)
        with anyio.fail_after(10):
            while not directory.exists():  # the profile checks the directory first
                await anyio.sleep(0.02)
    # Leaving the block (an "exit" trigger) stopped the profile and wrote it.
    assert len(list(directory.glob("*.pstats"))) == 1
    assert len(list(directory.glob("*.txt"))) == 1


async def test_profile_ends_after_profile_duration(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    async with ShutdownCoordinator(
        hooks=gracestop.Hooks(),
        diagnostics=True,
        diagnostics_dir=directory,
        profile_duration="200ms",
    ) as coord:
        os.kill(os.getpid(), USR2)
        summary = await wait_for_file(directory, "*.txt")
        assert "recorded: 0.2" in summary.read_text()
        coord.shutdown("test")


async def test_a_nested_coordinator_leaves_the_signals_to_its_parent(tmp_path: Path) -> None:
    async with ShutdownCoordinator(
        hooks=gracestop.Hooks(), diagnostics=True, diagnostics_dir=tmp_path
    ) as outer:
        owner = claimed_signals()[USR1]
        async with ShutdownCoordinator(hooks=gracestop.Hooks(), diagnostics=True) as inner:
            assert claimed_signals()[USR1] == owner
            inner.shutdown("inner")
        assert claimed_signals()[USR1] == owner
        outer.shutdown("test")


async def test_another_claim_means_going_without(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gracestop")
    config = gracestop.ShutdownConfig(diagnostics=True, diagnostics_dir=tmp_path)
    async with ShutdownCoordinator(config, hooks=gracestop.Hooks()) as first:
        owner = claimed_signals()[USR1]
        assert claim_diagnostics(config, "another") is None
        assert claimed_signals()[USR1] == owner
        first.shutdown("test")
    assert "diagnostics=True, but signals already claimed by another coordinator" in caplog.text
    assert claim_diagnostics(config.replace(diagnostics=False), "another") is None


def test_off_the_main_thread_goes_without(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gracestop")
    seen: list[bool] = []

    async def main() -> None:
        async with ShutdownCoordinator(
            hooks=gracestop.Hooks(), diagnostics=True, diagnostics_dir=tmp_path
        ) as coord:
            seen.append(USR1 in claimed_signals())
            coord.shutdown("test")

    thread = threading.Thread(target=anyio.run, args=(main,))
    thread.start()
    thread.join(10)
    assert seen == [False]
    assert "diagnostics=True: signals need the main thread; going without" in caplog.text


async def test_unsafe_directory_logs_an_error_and_writes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gracestop")
    directory = tmp_path / "open"
    directory.mkdir()
    directory.chmod(0o777)
    async with ShutdownCoordinator(
        hooks=gracestop.Hooks(), diagnostics=True, diagnostics_dir=directory
    ) as coord:
        os.kill(os.getpid(), USR1)
        os.kill(os.getpid(), USR2)
        with anyio.fail_after(10):
            while "refusing to start a profile" not in caplog.text:
                await anyio.sleep(0.02)
        coord.shutdown("test")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(m.startswith("refusing to write the dump:") for m in errors), errors
    assert list(directory.iterdir()) == []


# ---------------------------------------------------------------------------
# request_diagnostics: arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"pid": "12"}, TypeError, r"^pid must be an int; got str '12'$"),
        ({"pid": True}, TypeError, r"^pid must be an int; got bool True$"),
        ({"pid": 0}, ValueError, r"^pid must be a positive int; got 0$"),
        ({"kind": "heap"}, ValueError, r"^kind must be 'dump' or 'profile'; got 'heap'$"),
        ({"timeout": 0}, ValueError, r"^timeout must be a positive, finite duration; got 0$"),
        ({"timeout": "soon"}, ValueError, r"^timeout must be a duration"),
        ({"duration": -1, "kind": "profile"}, ValueError, r"^duration must be a positive"),
        ({"duration": 1}, ValueError, r"^duration applies to kind='profile' only"),
    ],
)
def test_request_diagnostics_arguments(
    kwargs: dict[str, object], exc: type[Exception], pattern: str
) -> None:
    args: dict[str, object] = {"pid": os.getpid(), "kind": "dump", **kwargs}
    with pytest.raises(exc, match=pattern):
        request_diagnostics(**args)  # type: ignore[arg-type]


def test_profiling_modules_are_imported_only_when_profiling() -> None:
    import subprocess

    code = (
        "import sys, gracestop; "
        "print(sorted({'cProfile', 'pstats', 'tracemalloc', 'tempfile'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_write_refusal_is_logged_and_nothing_is_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from gracestop._diagnostics import _write_files

    caplog.set_level(logging.ERROR, logger="gracestop")
    directory = tmp_path / "d"
    directory.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    (directory / "x.dump").symlink_to(victim)
    assert _write_files(str(directory), [("x.dump", b"data")], "dump") == []
    assert not victim.exists()
    assert caplog.messages == [
        f"refusing to write the dump: {directory}/x.dump is a symlink (not followed); "
        "nothing written"
    ]


def test_a_broken_repr_does_not_cost_the_dump() -> None:
    from gracestop._diagnostics import _await_chain

    class Awaited:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    here = sys._getframe()

    class Coroutine:
        cr_frame = here
        cr_await = Awaited()

    frames, note = _await_chain(Coroutine())
    assert [f.f_code.co_name for f, _ in frames] == ["test_a_broken_repr_does_not_cost_the_dump"]
    assert note == "awaiting <Awaited object>"


# ---------------------------------------------------------------------------
# Robustness: busy worker threads, hanging writes, failing code
# ---------------------------------------------------------------------------


async def test_a_dump_is_written_while_every_default_worker_thread_is_busy(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "d"
    limiter = anyio.to_thread.current_default_thread_limiter()
    # Every token of anyio's default thread limiter borrowed, as by an application
    # whose worker threads are all blocked.
    borrowers = [object() for _ in range(int(limiter.total_tokens))]
    for borrower in borrowers:
        await limiter.acquire_on_behalf_of(borrower)
    try:
        async with ShutdownCoordinator(
            hooks=gracestop.Hooks(), diagnostics=True, diagnostics_dir=directory
        ) as coord:
            assert limiter.available_tokens == 0
            os.kill(os.getpid(), USR1)
            dump = await wait_for_file(directory, "*.dump")
            assert "gracestop task dump" in dump.read_text()
            coord.shutdown("test")
    finally:
        for borrower in borrowers:
            limiter.release_on_behalf_of(borrower)


async def test_a_hanging_write_holds_the_exit_up_for_watchdog_grace_at_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import gracestop._diagnostics as diagnostics_module

    entered = threading.Event()
    release = threading.Event()

    def stuck_render(*args: object) -> bytes:
        entered.set()
        release.wait(60)
        return b"late\n"

    monkeypatch.setattr(diagnostics_module, "_render_dump", stuck_render)
    caplog.set_level(logging.INFO, logger="gracestop")
    try:
        with anyio.fail_after(20):
            async with ShutdownCoordinator(
                hooks=gracestop.Hooks(),
                diagnostics=True,
                diagnostics_dir=tmp_path / "d",
                watchdog_grace=0.2,
            ) as coord:
                os.kill(os.getpid(), USR1)
                while not entered.is_set():
                    await anyio.sleep(0.01)
                os.kill(os.getpid(), USR1)  # queued behind the stuck one
                diagnostics = coord._diagnostics
                assert diagnostics is not None
                while not diagnostics._requests:
                    await anyio.sleep(0.01)
                coord.shutdown("test")
            exited = anyio.current_time()
        assert not release.is_set()  # the write was still stuck when the block exited
    finally:
        release.set()
    assert exited  # reached: the exit did not wait for the write
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "the dump was still being written when the coordinator exited" in "\n".join(messages)
    assert "diagnostics requests not served before the exit, dropped: dump" in messages


async def test_a_failing_dump_is_logged_and_the_next_one_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import gracestop._diagnostics as diagnostics_module

    real_render = diagnostics_module._render_dump
    calls: list[int] = []

    def render_once_broken(*args: Any) -> bytes:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("render bug")
        return real_render(*args)

    monkeypatch.setattr(diagnostics_module, "_render_dump", render_once_broken)
    caplog.set_level(logging.INFO, logger="gracestop")
    directory = tmp_path / "d"
    async with ShutdownCoordinator(
        hooks=gracestop.Hooks(), diagnostics=True, diagnostics_dir=directory
    ) as coord:
        os.kill(os.getpid(), USR1)
        with anyio.fail_after(10):
            while "render bug" not in caplog.text:
                await anyio.sleep(0.01)
        assert coord.state is gracestop.State.RUNNING
        os.kill(os.getpid(), USR1)
        dump = await wait_for_file(directory, "*.dump")
        assert "gracestop task dump" in dump.read_text()
        coord.shutdown("test")
    assert coord.report is not None and coord.report.ok
    (failure,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.getMessage() == "the dump request (SIGUSR1) failed; nothing written"
    assert failure.exc_info is not None and "render bug" in str(failure.exc_info[1])
    assert getattr(failure, "gracestop_diagnostics", None) == "dump"


async def test_a_failing_profile_write_is_logged_and_the_exit_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import gracestop._diagnostics as diagnostics_module

    def broken(*args: object) -> tuple[bytes, bytes]:
        raise RuntimeError("profile render bug")

    monkeypatch.setattr(diagnostics_module, "_render_profile", broken)
    caplog.set_level(logging.INFO, logger="gracestop")
    directory = tmp_path / "d"
    async with ShutdownCoordinator(
        hooks=gracestop.Hooks(), diagnostics=True, diagnostics_dir=directory
    ) as coord:
        os.kill(os.getpid(), USR2)
        with anyio.fail_after(10):
            while "profiling the event-loop thread" not in caplog.text:
                await anyio.sleep(0.01)
        coord.shutdown("test")
    assert coord.report is not None and coord.report.ok
    (failure,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.getMessage() == "writing the profile failed; nothing written"
    assert failure.exc_info is not None and "profile render bug" in str(failure.exc_info[1])
    assert list(directory.glob("*.pstats")) == []


async def test_the_marker_is_kept_while_enabled_and_a_stale_one_is_replaced(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "d"
    directory.mkdir(mode=0o700)
    marker = directory / f".gracestop-{os.getpid()}.diagnostics"
    marker.symlink_to(tmp_path / "elsewhere")  # stale, and hostile: never followed
    async with ShutdownCoordinator(
        hooks=gracestop.Hooks(), diagnostics=True, diagnostics_dir=directory
    ) as coord:
        assert marker.is_file() and not marker.is_symlink()
        assert mode(marker) == 0o600
        coord.shutdown("test")
    assert not marker.exists() and not marker.is_symlink()
    assert not (tmp_path / "elsewhere").exists()
