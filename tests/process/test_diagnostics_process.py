"""SIGUSR1 dumps and SIGUSR2 profiles, with real signals to real children.

The child (``child.py diagnostics BACKEND DIR``) runs a service with
``diagnostics=True``; each test waits for the lines it prints on stdout and the
gracestop log on stderr, never for a bare delay.
"""

from __future__ import annotations

import os
import pstats
import re
import select
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from _harness import BACKENDS, Child, results_by_name

from gracestop import ShutdownError
from gracestop._diagnostics import default_diagnostics_dir, request_diagnostics

pytestmark = pytest.mark.process

Spawn = Callable[..., Child]

backends = pytest.mark.parametrize("backend", BACKENDS)

WRITTEN = r"diagnostics written: {kind} (\S+)$"


def written(child: Child, kind: str, timeout: float = 10.0) -> Path:
    """Wait for the child's log line about a written file; return the path."""
    return Path(child.expect_err(WRITTEN.format(kind=kind), timeout).group(1))


def start(spawn: Spawn, backend: str, where: str) -> Child:
    child = spawn("diagnostics", backend, where)
    child.expect(r"^READY \d+$", timeout=10)
    return child


def stop_cleanly(child: Child) -> None:
    """quit stdin reading, SIGTERM, and check a clean exit with an ok report."""
    child.send_line("quit")
    child.expect(r"^QUIT$")
    child.signal(signal.SIGTERM)
    rc, _out, err = child.wait(timeout=15)
    assert rc == 0, err
    report = child.report()
    assert report["ok"] is True
    assert results_by_name(report)["closer"]["status"] == "ok"
    assert "Traceback" not in err, err


def private_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "diag"
    directory.mkdir(mode=0o700)
    return directory


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# ----------------------------------------------------------------- SIGUSR1


@backends
def test_sigusr1_writes_threads_and_tasks_and_the_service_goes_on(
    spawn: Spawn, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the child's default directory
    child = start(spawn, backend, "default")
    child.signal(signal.SIGUSR1)
    path = written(child, "dump")
    expected_dir = tmp_path / f"gracestop-{os.geteuid()}"
    assert path.parent == expected_dir
    assert mode(expected_dir) == 0o700
    assert mode(path) == 0o600
    assert re.fullmatch(rf"child-{child.pid}-tasks-\d{{10}}\.dump", path.name), path.name
    text = path.read_text()
    assert f"pid: {child.pid}  backend: {backend}" in text
    # Threads, with their names and stacks.
    assert "--- thread 'MainThread'" in text
    assert "--- thread 'diag-thread'" in text
    assert "in diag_thread_body" in text
    # Tasks, by name, with their await stacks down to the innermost coroutine.
    task = text[text.index("--- task 'diag-named-task'") :]
    task = task[: task.index("\n", task.index("in diag_inner_wait") + 1)]
    assert "in diag_waiter" in task
    assert task.index("in diag_waiter") < task.index("in diag_inner_wait")
    assert "--- task 'diag-commands'" in text
    # The service keeps running and answers after the dump.
    child.send_line("ping")
    child.expect(r"^PONG$")
    stop_cleanly(child)


@backends
def test_dumps_in_a_row_are_all_kept(spawn: Spawn, backend: str, tmp_path: Path) -> None:
    directory = private_dir(tmp_path)
    child = start(spawn, backend, str(directory))
    child.signal(signal.SIGUSR1)
    first = written(child, "dump")
    child.signal(signal.SIGUSR1)
    second = written(child, "dump")
    assert first != second
    assert first.exists() and second.exists()
    marker = f".gracestop-{child.pid}.diagnostics"
    assert sorted(p.name for p in directory.iterdir()) == sorted([first.name, second.name, marker])
    assert mode(directory / marker) == 0o600
    stop_cleanly(child)
    assert not (directory / marker).exists()  # removed when the coordinator exits


# ----------------------------------------------------------------- SIGUSR2


@backends
def test_sigusr2_profiles_until_a_second_sigusr2(
    spawn: Spawn, backend: str, tmp_path: Path
) -> None:
    directory = private_dir(tmp_path)
    child = start(spawn, backend, str(directory))
    child.signal(signal.SIGUSR2)
    child.expect_err(r"profiling the event-loop thread for up to 60s")
    child.send_line("spin 30")
    child.expect(r"^SPUN 30$", timeout=20)
    child.signal(signal.SIGUSR2)
    stats_path = written(child, "profile")
    summary = written(child, "profile summary")
    assert summary == stats_path.with_suffix(".txt")
    assert re.fullmatch(rf"child-{child.pid}-profile-\d{{10}}\.pstats", stats_path.name)
    assert mode(stats_path) == 0o600 and mode(summary) == 0o600
    stats = pstats.Stats(str(stats_path))
    functions = {name for (_file, _line, name) in stats.stats}  # type: ignore[attr-defined]
    assert "diag_spin_work" in functions
    text = summary.read_text()
    assert "functions by cumulative time" in text
    assert "diag_spin_work" in text
    assert "top allocations" in text
    child.send_line("ping")
    child.expect(r"^PONG$")
    stop_cleanly(child)


@backends
def test_sigterm_during_a_profile_writes_it_and_shuts_down_cleanly(
    spawn: Spawn, backend: str, tmp_path: Path
) -> None:
    directory = private_dir(tmp_path)
    child = start(spawn, backend, str(directory))
    child.signal(signal.SIGUSR2)
    child.expect_err(r"profiling the event-loop thread")
    child.send_line("spin 5")
    child.expect(r"^SPUN 5$", timeout=20)
    stop_cleanly(child)
    err = child.err.text()
    assert "stopping the profile to write it" in err
    (stats_path,) = directory.glob("*.pstats")
    (summary,) = directory.glob("*.txt")
    assert "diag_spin_work" in summary.read_text()
    assert pstats.Stats(str(stats_path)).total_calls > 0  # type: ignore[attr-defined]


# ----------------------------------------------------------------- refusals


@backends
def test_symlink_in_place_of_the_directory_is_refused(
    spawn: Spawn, backend: str, tmp_path: Path
) -> None:
    target = private_dir(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(target)
    child = start(spawn, backend, str(link))
    child.signal(signal.SIGUSR1)
    child.expect_err(
        rf"ERROR gracestop: refusing to write the dump: diagnostics directory {link} "
        r"is a symlink \(not followed\); nothing written"
    )
    child.signal(signal.SIGUSR2)
    child.expect_err(r"ERROR gracestop: refusing to start a profile: .* is a symlink")
    child.send_line("ping")
    child.expect(r"^PONG$")
    stop_cleanly(child)
    assert list(target.iterdir()) == []
    assert link.is_symlink()


@backends
def test_group_writable_directory_is_refused(spawn: Spawn, backend: str, tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o770)
    child = start(spawn, backend, str(directory))
    child.signal(signal.SIGUSR1)
    child.expect_err(
        r"ERROR gracestop: refusing to write the dump: .* is writable by group or others "
        r"\(mode 0770\); nothing written"
    )
    stop_cleanly(child)
    assert list(directory.iterdir()) == []


@backends
def test_directory_of_another_user_is_refused(spawn: Spawn, backend: str, tmp_path: Path) -> None:
    directory = private_dir(tmp_path)
    try:
        os.chown(directory, 65534, -1)
    except PermissionError:
        pytest.skip("not allowed to give a directory to another user")
    child = start(spawn, backend, str(directory))
    child.signal(signal.SIGUSR1)
    child.expect_err(
        rf"ERROR gracestop: refusing to write the dump: .* is owned by uid 65534, "
        rf"not by uid {os.geteuid()}; nothing written"
    )
    stop_cleanly(child)
    assert list(directory.iterdir()) == []


# ----------------------------------------------------------------- request_diagnostics


@backends
def test_request_diagnostics_dump_and_profile(spawn: Spawn, backend: str, tmp_path: Path) -> None:
    directory = private_dir(tmp_path)
    child = start(spawn, backend, str(directory))
    dump = request_diagnostics(child.pid, "dump", directory=directory, timeout=10)
    assert dump.parent == directory
    assert "--- task 'diag-named-task'" in dump.read_text()
    profile = request_diagnostics(
        child.pid, "profile", directory=str(directory), timeout=10, duration=0.3
    )
    assert profile.suffix == ".pstats"
    assert profile.with_suffix(".txt").exists()
    assert pstats.Stats(str(profile)).total_calls > 0  # type: ignore[attr-defined]
    stop_cleanly(child)


def test_request_diagnostics_default_directory_follows_the_process(
    spawn: Spawn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    child = start(spawn, "asyncio", "default")
    dump = request_diagnostics(child.pid, "dump")
    assert dump.parent == default_diagnostics_dir() == tmp_path / f"gracestop-{os.geteuid()}"
    stop_cleanly(child)


def test_request_diagnostics_times_out_with_a_clear_error(spawn: Spawn, tmp_path: Path) -> None:
    directory = private_dir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    child = start(spawn, "trio", str(directory))
    # A marker where the service does not write (copied there by hand, say).
    (elsewhere / f".gracestop-{child.pid}.diagnostics").touch()
    with pytest.raises(TimeoutError, match=rf"pid {child.pid} wrote no dump file in {elsewhere}"):
        request_diagnostics(child.pid, "dump", directory=elsewhere, timeout=0.5)
    written(child, "dump")  # the child did write it, where it was told to
    stop_cleanly(child)


def test_request_diagnostics_refuses_a_directory_without_the_marker(
    spawn: Spawn, tmp_path: Path
) -> None:
    directory = private_dir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    child = start(spawn, "asyncio", str(directory))
    with pytest.raises(
        ShutdownError,
        match=rf"pid {child.pid} has no gracestop diagnostics marker in {elsewhere} "
        rf"\(no \.gracestop-{child.pid}\.diagnostics\).*not sending SIGUSR1",
    ):
        request_diagnostics(child.pid, "dump", directory=elsewhere, timeout=1)
    stop_cleanly(child)
    assert "diagnostics written" not in child.err.text()  # no signal was sent


def test_request_diagnostics_refuses_a_process_with_its_own_sigusr1_handler(
    tmp_path: Path,
) -> None:
    """A handler for SIGUSR1 (a shell has one) does not make a process a gracestop
    service: without the marker nothing is sent, and the process lives on."""
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGUSR1, lambda *a: print('GOT USR1', flush=True))\n"
        "print('READY', flush=True)\n"
        "sys.stdin.readline()\n"
        "print('BYE', flush=True)\n"
    )
    directory = private_dir(tmp_path)
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as other:
        assert other.stdout is not None and other.stdin is not None
        try:
            ready, _, _ = select.select([other.stdout], [], [], 15)
            assert ready, "the other process did not start within 15s"
            assert other.stdout.readline() == "READY\n"
            for where in (directory, None):
                with pytest.raises(ShutdownError, match=rf"pid {other.pid} has no gracestop"):
                    request_diagnostics(other.pid, "dump", directory=where, timeout=1)
            other.stdin.write("\n")
            other.stdin.flush()
            out, _ = other.communicate(timeout=15)
        finally:
            if other.poll() is None:
                other.kill()
                other.communicate(timeout=15)
    assert other.returncode == 0
    assert out == "BYE\n"  # alive to the end, and never signalled


def test_request_diagnostics_refuses_a_process_without_a_handler(
    spawn: Spawn, tmp_path: Path
) -> None:
    child = start(spawn, "asyncio", "off")
    with pytest.raises(ShutdownError, match=rf"pid {child.pid} has no handler for SIGUSR1"):
        request_diagnostics(child.pid, "dump", directory=tmp_path, timeout=1)
    child.send_line("ping")
    child.expect(r"^PONG$")  # not killed by a SIGUSR1
    stop_cleanly(child)


def test_request_diagnostics_no_such_process() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(10)
    with pytest.raises(ProcessLookupError, match=rf"no process with pid {gone.pid}"):
        request_diagnostics(gone.pid, "dump", timeout=1)


def test_request_diagnostics_refuses_a_symlinked_directory(spawn: Spawn, tmp_path: Path) -> None:
    directory = private_dir(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(directory)
    child = start(spawn, "asyncio", str(directory))
    with pytest.raises(ShutdownError, match=rf"diagnostics directory {link} is a symlink"):
        request_diagnostics(child.pid, "dump", directory=link, timeout=10)
    stop_cleanly(child)


def test_request_diagnostics_permission_error(spawn: Spawn, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the asking process as another user")
    child = start(spawn, "asyncio", str(private_dir(tmp_path)))
    code = (
        "import sys; from gracestop import request_diagnostics\n"
        "try:\n"
        f"    request_diagnostics({child.pid}, 'dump', timeout=1)\n"
        "except PermissionError as exc:\n"
        "    print('PermissionError:', exc)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
            user=65534,
            group=65534,
            cwd="/",
        )
    except PermissionError:
        # The interpreter lives where the other user cannot read it (a home directory).
        pytest.skip("cannot run the interpreter as another user here")
    if "PermissionError:" not in done.stdout and "Permission denied" in done.stderr:
        pytest.skip(f"the interpreter is not readable by another user: {done.stderr[-300:]}")
    assert done.stdout.strip() == (
        f"PermissionError: not allowed to send SIGUSR1 to pid {child.pid}; "
        "run as its user or as root"
    ), done.stderr
    stop_cleanly(child)


def test_request_diagnostics_profile_while_one_runs_returns_it(
    spawn: Spawn, tmp_path: Path
) -> None:
    directory = private_dir(tmp_path)
    child = start(spawn, "trio", str(directory))
    child.signal(signal.SIGUSR2)
    child.expect_err(r"profiling the event-loop thread")
    profile = request_diagnostics(
        child.pid, "profile", directory=directory, timeout=10, duration=0.5
    )
    assert profile.exists()
    # No profile was left running: SIGTERM writes nothing more.
    stop_cleanly(child)
    assert "stopping the profile to write it" not in child.err.text()
    assert list(directory.glob("*.pstats")) == [profile]
