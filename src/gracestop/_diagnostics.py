"""Diagnostics on signals: SIGUSR1 writes a task dump, SIGUSR2 records a profile.

go-zero's ``proc`` writes a goroutine dump on SIGUSR1 and records profiles on
SIGUSR2. Here SIGUSR1 writes every thread's stack and every task's await stack,
and SIGUSR2 starts (a second one stops) a ``cProfile`` + ``tracemalloc``
recording of the event-loop thread. Both are opt-in (``diagnostics=True``).

The files go to a directory that must be safe on a shared host: a real
directory (never a symlink), owned by this user and writable by nobody else.
Files are created under a private temporary name with ``O_EXCL | O_NOFOLLOW``,
mode 0600, then hard-linked to their final name, which never replaces or
follows anything already there; a file therefore appears only once complete.

While diagnostics are enabled the directory also holds an empty marker file,
``.gracestop-<pid>.diagnostics``: `request_diagnostics` sends a signal only
to a process whose marker it finds, because a handler for SIGUSR1 alone does not
prove the process is a gracestop service (shells have one too).

The files are rendered and written in a daemon thread of their own, never in
anyio's shared worker threads: an application that has every worker thread
blocked still gets its dump, and a write that hangs (a stuck network file
system) holds up the coordinator's exit for ``watchdog_grace`` at most.
"""

from __future__ import annotations

import asyncio
import errno
import io
import itertools
import logging
import marshal
import os
import re
import signal
import stat
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

import anyio
from anyio.abc import TaskStatus

from ._config import ShutdownConfig, _describe, check_duration
from ._report import ShutdownError
from ._signals import SignalListener, loop_caller

if TYPE_CHECKING:
    # Imported where used: profiling modules are not needed by a process that
    # never profiles, and ``import gracestop`` stays light.
    import cProfile
    import tracemalloc

__all__ = [
    "DiagnosticsKind",
    "UnsafeDirectoryError",
    "claim_diagnostics",
    "default_diagnostics_dir",
    "request_diagnostics",
]

logger = logging.getLogger("gracestop")

DiagnosticsKind = Literal["dump", "profile"]

SUMMARY_ROWS = 40
"""How many entries the ``.txt`` profile summary lists in each table."""

_DUMP_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR1", None)
_PROFILE_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR2", None)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_temp_names = itertools.count(1)


def marker_name(pid: int) -> str:
    """The name of the marker file a service with diagnostics keeps in its directory."""
    return f".gracestop-{pid}.diagnostics"


class UnsafeDirectoryError(OSError):
    """The diagnostics directory, or a file in it, failed a safety check.

    Raised instead of writing anything: a symlink, a directory owned by another
    user or writable by group or others could let another local user redirect or
    read what the process writes.
    """


# ---------------------------------------------------------------------------
# Names and the safe directory
# ---------------------------------------------------------------------------


def default_diagnostics_dir(uid: int | None = None) -> Path:
    """``<tempfile.gettempdir()>/gracestop-<uid>``, the directory used when
    ``diagnostics_dir`` is ``None`` (*uid* defaults to the effective uid)."""
    import tempfile

    if uid is None:
        uid = os.geteuid()
    return Path(tempfile.gettempdir()) / f"gracestop-{uid}"


def program_name(argv0: str | None = None) -> str:
    """The basename of ``sys.argv[0]`` without extension, reduced to safe
    characters, or ``"python"`` when there is none."""
    raw = (sys.argv[0] if sys.argv else "") if argv0 is None else argv0
    if raw in ("-c", "-m"):  # python -c CODE: no program file
        return "python"
    stem = os.path.splitext(os.path.basename(raw))[0]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip(".-")
    return name[:64] or "python"


def file_name(
    kind: str, extension: str, *, pid: int | None = None, when: float | None = None
) -> str:
    """``<program>-<pid>-<kind>-<MMDDhhmmss>.<extension>``, go-zero's naming."""
    stamp = time.strftime("%m%d%H%M%S", time.localtime(when))
    return f"{program_name()}-{os.getpid() if pid is None else pid}-{kind}-{stamp}.{extension}"


def _check_directory_stat(path: str, st: os.stat_result, uid: int | None) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeDirectoryError(f"diagnostics directory {path} is a symlink (not followed)")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeDirectoryError(f"diagnostics directory {path} is not a directory")
    if uid is not None and st.st_uid != uid:
        raise UnsafeDirectoryError(
            f"diagnostics directory {path} is owned by uid {st.st_uid}, not by uid {uid}"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirectoryError(
            f"diagnostics directory {path} is writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o})"
        )


def open_safe_directory(path: str | os.PathLike[str], *, create: bool = True) -> int:
    """Open the diagnostics directory and return its descriptor, after checking it.

    A missing directory is created with mode 0700 (its parent must exist). The
    directory must be a real directory, not a symlink, owned by the effective
    uid and not writable by group or others. The checks are made with
    ``os.lstat`` and again on the open descriptor, so a directory swapped for a
    symlink in between is refused too.

    Raises:
        UnsafeDirectoryError: a check failed.
        OSError: the directory could not be created or opened.
    """
    text = os.fspath(path)
    uid = os.geteuid()
    if create:
        try:
            os.mkdir(text, 0o700)
        except FileExistsError:
            pass
    _check_directory_stat(text, os.lstat(text), uid)
    try:
        fd = os.open(text, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeDirectoryError(
                f"diagnostics directory {text} was replaced while it was checked"
            ) from None
        raise
    try:
        _check_directory_stat(text, os.fstat(fd), uid)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_new_file(dir_fd: int, name: str, data: bytes, *, directory: str = "") -> str:
    """Write *data* to a new file *name* in the directory open as *dir_fd*.

    The data goes to a private temporary file (``O_CREAT | O_EXCL | O_NOFOLLOW``,
    mode 0600), which is then hard-linked to *name*: the file appears complete
    or not at all, and nothing already at the path is replaced or followed. If
    a regular file has the name already (two dumps in one second), ``-2``,
    ``-3``, ... is added before the extension; a symlink there is refused.

    Returns:
        the name the file got.

    Raises:
        UnsafeDirectoryError: a symlink or something other than a regular file
            is in the way.
    """
    temp = f".{name}.{os.getpid()}-{next(_temp_names)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
    fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        stem, dot, extension = name.rpartition(".")
        for attempt in itertools.count(1):
            final = name if attempt == 1 else f"{stem}-{attempt}{dot}{extension}"
            try:
                os.link(temp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                return final
            except FileExistsError:
                existing = os.lstat(final, dir_fd=dir_fd)
                if not stat.S_ISREG(existing.st_mode):
                    what = "a symlink" if stat.S_ISLNK(existing.st_mode) else "not a regular file"
                    raise UnsafeDirectoryError(
                        f"{os.path.join(directory, final)} is {what} (not followed)"
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        try:
            os.unlink(temp, dir_fd=dir_fd)
        except OSError:  # pragma: no cover - already gone
            pass


def _write_files(directory: str, files: list[tuple[str, bytes]], kind: str) -> list[Path]:
    """Write each (name, data) into the checked directory; log a refusal as ERROR."""

    def refuse(exc: OSError) -> None:
        logger.error(
            "refusing to write the %s: %s; nothing written",
            kind,
            exc,
            extra={"gracestop_diagnostics": kind},
        )

    try:
        dir_fd = open_safe_directory(directory)
    except OSError as exc:
        refuse(exc)
        return []
    written: list[Path] = []
    try:
        for name, data in files:
            try:
                final = write_new_file(dir_fd, name, data, directory=directory)
            except OSError as exc:
                refuse(exc)
                break
            written.append(Path(directory) / final)
    finally:
        os.close(dir_fd)
    return written


def _written(path: Path, kind: str) -> None:
    """A diagnostics file was written: logged when no coordinator's observers are told."""
    logger.info(
        "diagnostics written: %s %s",
        kind,
        path,
        extra={"gracestop_path": str(path), "gracestop_kind": kind},
    )


# ---------------------------------------------------------------------------
# The task dump
# ---------------------------------------------------------------------------

_FrameList = list[tuple[FrameType, int]]


@dataclass
class _Stack:
    title: str
    frames: _FrameList
    note: str = ""
    depth: int = 0


def _stack_text(stack: _Stack) -> str:
    indent = "    " * stack.depth
    lines = [f"{indent}--- {stack.title}"]
    summary = _extract(stack.frames)
    if summary:
        lines.extend(
            indent + line for chunk in summary.format() for line in chunk.rstrip("\n").split("\n")
        )
    else:
        lines.append(f"{indent}  (no frames)")
    if stack.note:
        lines.append(f"{indent}  {stack.note}")
    return "\n".join(lines)


def _extract(frames: _FrameList) -> traceback.StackSummary:
    return traceback.StackSummary.extract(iter(frames), lookup_lines=True)


def _frame_chain(frame: FrameType | None) -> _FrameList:
    """A thread's stack, outermost call first."""
    chain: _FrameList = []
    while frame is not None:
        chain.append((frame, frame.f_lineno))
        frame = frame.f_back
    chain.reverse()
    return chain


def _await_chain(coro: object) -> tuple[_FrameList, str]:
    """The frames of a coroutine and of what it awaits, outermost first, and
    what the innermost one waits on (a future, say)."""
    frames: _FrameList = []
    seen: set[int] = set()
    current: object = coro
    while current is not None and id(current) not in seen:
        frame = None
        for attr in ("cr_frame", "gi_frame", "ag_frame"):
            frame = getattr(current, attr, None)
            if frame is not None:
                break
        if frame is None:
            break
        seen.add(id(current))
        frames.append((frame, frame.f_lineno))
        following = None
        for attr in ("cr_await", "gi_yieldfrom", "ag_await"):
            following = getattr(current, attr, None)
            if following is not None:
                break
        current = following
    note = ""
    if current is not None and id(current) not in seen:
        note = "awaiting " + _short_repr(current)
    return frames, note


def _short_repr(obj: object) -> str:
    try:
        shown = repr(obj)
    except Exception:  # a broken __repr__ must not cost the dump
        shown = f"<{type(obj).__name__} object>"
    return shown if len(shown) <= 200 else shown[:197] + "..."


def _thread_stacks() -> list[_Stack]:
    names = {t.ident: t for t in threading.enumerate()}
    stacks: list[_Stack] = []
    for ident, frame in sorted(sys._current_frames().items()):
        thread = names.get(ident)
        label = thread.name if thread is not None else "(unknown)"
        flags = ", daemon" if thread is not None and thread.daemon else ""
        stacks.append(_Stack(f"thread {label!r} (ident {ident}{flags})", _frame_chain(frame)))
    return stacks


def _asyncio_task_stacks(loop: asyncio.AbstractEventLoop) -> list[_Stack]:
    stacks: list[_Stack] = []
    for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
        frames, note = _await_chain(task.get_coro())
        # What the task is blocked on: more telling than the future's iterator.
        waiter = getattr(task, "_fut_waiter", None)
        if waiter is not None:
            note = "awaiting " + _short_repr(waiter)
        state = "done" if task.done() else "pending"
        stacks.append(_Stack(f"task {task.get_name()!r} ({state})", frames, note))
    return stacks


def _trio_task_stacks() -> list[_Stack]:
    import trio

    stacks: list[_Stack] = []

    def walk(task: Any, depth: int) -> None:
        frames: _FrameList = [(f, n) for f, n in task.iter_await_frames()]
        stacks.append(_Stack(f"task {task.name!r}", frames, depth=depth))
        for nursery in task.child_nurseries:
            for child in sorted(nursery.child_tasks, key=lambda t: t.name):
                walk(child, depth + 1)

    walk(trio.lowlevel.current_root_task(), 0)
    return stacks


def _collect_dump() -> tuple[str, list[_Stack], list[_Stack]]:
    """Stacks of every thread and every task, taken on the event-loop thread."""
    threads = _thread_stacks()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "trio", threads, _trio_task_stacks()
    return "asyncio", threads, _asyncio_task_stacks(loop)


def _render_dump(backend: str, threads: list[_Stack], tasks: list[_Stack]) -> bytes:
    head = (
        f"gracestop task dump\n"
        f"program: {program_name()}  pid: {os.getpid()}  backend: {backend}\n"
        f"time: {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
        f"python: {sys.version.split()[0]}\n"
    )
    parts = [head, f"=== threads ({len(threads)}) ==="]
    parts += [_stack_text(s) for s in threads]
    parts.append(f"\n=== tasks ({len(tasks)}), outermost frame first ===")
    parts += [_stack_text(s) for s in tasks]
    return ("\n".join(parts) + "\n").encode("utf-8", "backslashreplace")


# ---------------------------------------------------------------------------
# The profile
# ---------------------------------------------------------------------------


class _Profile:
    """A cProfile + tracemalloc recording of the event-loop thread."""

    def __init__(self) -> None:
        import cProfile
        import tracemalloc

        self.started = time.monotonic()
        self.stop = anyio.Event()
        self.profiler = cProfile.Profile()
        # First, as it may refuse (Python 3.12+: another profiler is active).
        self.profiler.enable()
        # Tracing that the application started itself is left running at the end.
        self.own_tracemalloc = not tracemalloc.is_tracing()
        if self.own_tracemalloc:
            tracemalloc.start()

    def finish(self) -> tuple[float, tracemalloc.Snapshot | None]:
        """Stop recording (on the loop thread, where cProfile was enabled)."""
        import tracemalloc

        self.profiler.disable()
        snapshot = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
        if self.own_tracemalloc:
            tracemalloc.stop()
        return time.monotonic() - self.started, snapshot


def _render_profile(
    profiler: cProfile.Profile, seconds: float, snapshot: tracemalloc.Snapshot | None
) -> tuple[bytes, bytes]:
    """The ``.pstats`` data (what ``pstats.Stats.dump_stats`` writes) and the summary."""
    import pstats
    import tracemalloc

    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    # The table that dump_stats writes; typeshed's pstats stub does not declare it.
    pstats_data = marshal.dumps(vars(stats)["stats"])
    out.write(
        f"gracestop profile\nprogram: {program_name()}  pid: {os.getpid()}  "
        f"recorded: {seconds:.3f}s of the event-loop thread\n"
        "\n=== functions by cumulative time ===\n"
    )
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(SUMMARY_ROWS)
    out.write("\n=== functions by own time ===\n")
    stats.sort_stats(pstats.SortKey.TIME).print_stats(SUMMARY_ROWS)
    out.write("\n=== top allocations (tracemalloc, by line, still allocated at the end) ===\n")
    if snapshot is None:
        out.write("(tracemalloc was not tracing)\n")
    else:
        top = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)]).statistics(
            "lineno"
        )
        for entry in top[:SUMMARY_ROWS]:
            out.write(f"{entry}\n")
        total = sum(entry.size for entry in top)
        out.write(f"total: {total / 1024:.1f} KiB in {len(top)} lines\n")
    return pstats_data, out.getvalue().encode("utf-8", "backslashreplace")


# ---------------------------------------------------------------------------
# The listener
# ---------------------------------------------------------------------------


class Diagnostics:
    """SIGUSR1/SIGUSR2 for one coordinator: claimed, served by a task, released."""

    def __init__(
        self,
        config: ShutdownConfig,
        owner: str,
        on_written: Callable[[Path, str], None] = _written,
    ) -> None:
        assert _DUMP_SIGNAL is not None and _PROFILE_SIGNAL is not None
        self._written = on_written
        self.directory = config.diagnostics_dir or str(default_diagnostics_dir())
        self.profile_duration = config.profile_duration
        self._listener = SignalListener(
            (_DUMP_SIGNAL, _PROFILE_SIGNAL), config.signal_mode, self._on_signal, owner
        )
        self._requests: list[signal.Signals] = []
        self._wake: anyio.Event | None = None
        self._profile: _Profile | None = None
        self._call: Callable[[Callable[[], object]], None] | None = None
        # Shielded waits for writes in progress, and when they must give up.
        self._writing: set[anyio.CancelScope] = set()
        self._give_up_at: float | None = None
        self._marker_dir_fd: int | None = None

    def claim(self) -> None:
        """Claim SIGUSR1 and SIGUSR2 (``ShutdownError`` if another coordinator has
        them) and put the marker file in the directory."""
        self._wake = anyio.Event()
        self._call = loop_caller()
        self._listener.claim()
        self._place_marker()

    def release(self) -> None:
        """Restore the previous handlers of SIGUSR1 and SIGUSR2; remove the marker."""
        self._listener.release()
        dir_fd, self._marker_dir_fd = self._marker_dir_fd, None
        if dir_fd is not None:
            try:
                os.unlink(marker_name(os.getpid()), dir_fd=dir_fd)
            except OSError as exc:
                logger.warning(
                    "could not remove the diagnostics marker %s: %s",
                    os.path.join(self.directory, marker_name(os.getpid())),
                    exc,
                    extra={"gracestop_diagnostics": "marker"},
                )
            finally:
                os.close(dir_fd)

    def _place_marker(self) -> None:
        """Create ``.gracestop-<pid>.diagnostics`` (mode 0600, never following a
        symlink); one left by a dead process that had this pid is replaced."""
        name = marker_name(os.getpid())
        try:
            dir_fd = open_safe_directory(self.directory)
        except OSError as exc:
            logger.error(
                "diagnostics directory %s is unusable: %s; the signals are served, "
                "but request_diagnostics will refuse this process",
                self.directory,
                exc,
                extra={"gracestop_diagnostics": "marker"},
            )
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
        try:
            try:
                fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
            except FileExistsError:
                # Only a process with this pid writes this name: it is stale.
                # unlink removes a symlink itself and never follows it.
                os.unlink(name, dir_fd=dir_fd)
                fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
            os.close(fd)
        except OSError as exc:
            os.close(dir_fd)
            logger.error(
                "could not create the diagnostics marker %s: %s; the signals are served, "
                "but request_diagnostics will refuse this process",
                os.path.join(self.directory, name),
                exc,
                extra={"gracestop_diagnostics": "marker"},
            )
            return
        self._marker_dir_fd = dir_fd

    def stop(self, grace: float) -> None:
        """The coordinator is exiting: writes in progress get *grace* seconds more,
        requests not served yet are dropped (and logged)."""
        self._give_up_at = anyio.current_time() + grace
        for scope in self._writing:
            scope.deadline = min(scope.deadline, self._give_up_at)
        if self._requests:
            names = ", ".join(
                "dump" if sig == _DUMP_SIGNAL else "profile" for sig in self._requests
            )
            self._requests.clear()
            logger.warning(
                "diagnostics requests not served before the exit, dropped: %s",
                names,
                extra={"gracestop_diagnostics": "dropped"},
            )

    async def _in_thread(self, work: Callable[[], list[Path]], kind: str) -> list[Path]:
        """Run *work* in a daemon thread of its own and wait for it, shielded from
        cancellation until `stop`'s grace is over; then it is left to finish
        on its own (the daemon thread never holds up the interpreter's exit)."""
        assert self._call is not None
        call = self._call
        done = anyio.Event()
        outcome: list[list[Path] | BaseException] = []

        def target() -> None:
            try:
                outcome.append(work())
            except BaseException as exc:  # handed to the loop thread, raised there
                outcome.append(exc)
            finally:
                call(done.set)

        threading.Thread(target=target, name=f"gracestop diagnostics {kind}", daemon=True).start()
        with anyio.CancelScope(shield=True) as scope:
            if self._give_up_at is not None:
                scope.deadline = self._give_up_at
            self._writing.add(scope)
            try:
                await done.wait()
            finally:
                self._writing.discard(scope)
        if not outcome:
            logger.error(
                "the %s was still being written when the coordinator exited; not waiting "
                "longer (watchdog_grace): the file may be missing",
                kind,
                extra={"gracestop_diagnostics": kind},
            )
            return []
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _on_signal(self, sig: signal.Signals) -> None:
        """On the loop thread: queue the request for the serving task."""
        self._requests.append(sig)
        if self._wake is not None:
            self._wake.set()

    async def run(
        self,
        triggered: anyio.Event,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Receive the signals and serve them until cancelled."""
        async with anyio.create_task_group() as tg:
            await tg.start(self._listener.run, name="gracestop diagnostics signals")
            tg.start_soon(self._stop_profile_on, triggered, name="gracestop diagnostics trigger")
            task_status.started()
            while True:
                while not self._requests:
                    assert self._wake is not None
                    await self._wake.wait()
                    self._wake = anyio.Event()
                sig = self._requests.pop(0)
                kind = "dump" if sig == _DUMP_SIGNAL else "profile"
                try:
                    if sig == _DUMP_SIGNAL:
                        await self.dump()
                    elif self._profile is not None:
                        self._profile.stop.set()
                    else:
                        self._start_profile(tg)
                except Exception:
                    # A diagnostics bug must never take the service down with it.
                    logger.exception(
                        "the %s request (%s) failed; nothing written",
                        kind,
                        sig.name,
                        extra={"gracestop_diagnostics": kind},
                    )

    async def _stop_profile_on(self, triggered: anyio.Event) -> None:
        await triggered.wait()
        if self._profile is not None:
            logger.info("shutdown triggered: stopping the profile to write it")
            self._profile.stop.set()

    async def dump(self) -> list[Path]:
        """Write a dump of every thread and task; returns the path written (if any)."""
        backend, threads, tasks = _collect_dump()
        name = file_name("tasks", "dump")

        def write() -> list[Path]:
            return _write_files(
                self.directory, [(name, _render_dump(backend, threads, tasks))], "dump"
            )

        paths = await self._in_thread(write, "dump")
        for path in paths:
            self._written(path, "dump")
        return paths

    def _start_profile(self, tg: anyio.abc.TaskGroup) -> None:
        try:
            os.close(open_safe_directory(self.directory))
        except OSError as exc:
            logger.error(
                "refusing to start a profile: %s; nothing recorded",
                exc,
                extra={"gracestop_diagnostics": "profile"},
            )
            return
        try:
            profile = _Profile()
        except ValueError as exc:  # pragma: no cover - Python 3.12+, another profiler active
            logger.error("refusing to start a profile: %s; nothing recorded", exc)
            return
        self._profile = profile
        logger.info(
            "profiling the event-loop thread for up to %gs; send SIGUSR2 again to stop early",
            self.profile_duration,
        )
        tg.start_soon(self._record, profile, name="gracestop diagnostics profile")

    async def _record(self, profile: _Profile) -> None:
        try:
            with anyio.move_on_after(self.profile_duration):
                await profile.stop.wait()
        finally:
            # Also on cancellation (the coordinator exiting): the profile is written.
            self._profile = None
            try:
                await self._write_profile(profile)
            except Exception:
                logger.exception(
                    "writing the profile failed; nothing written",
                    extra={"gracestop_diagnostics": "profile"},
                )

    async def _write_profile(self, profile: _Profile) -> None:
        seconds, snapshot = profile.finish()
        name = file_name("profile", "pstats")

        def write() -> list[Path]:
            data, text = _render_profile(profile.profiler, seconds, snapshot)
            paths = _write_files(self.directory, [(name, data)], "profile")
            # The .txt second, under the name the .pstats got: a reader
            # waiting for the .txt finds the .pstats complete beside it.
            if paths:
                summary = paths[0].with_suffix(".txt").name
                paths += _write_files(self.directory, [(summary, text)], "profile")
            return paths

        paths = await self._in_thread(write, "profile")
        for path in paths:
            self._written(path, "profile" if path.suffix == ".pstats" else "profile summary")


def claim_diagnostics(
    config: ShutdownConfig,
    owner: str,
    *,
    nested: bool = False,
    on_written: Callable[[Path, str], None] = _written,
) -> Diagnostics | None:
    """A claimed `Diagnostics` when the config asks for it and this
    coordinator may have SIGUSR1/SIGUSR2, else ``None`` (with the reason logged).
    ``on_written(path, kind)`` is told of every file written."""
    if not config.diagnostics:
        return None
    if _DUMP_SIGNAL is None or _PROFILE_SIGNAL is None:  # pragma: no cover - Windows
        logger.warning("diagnostics=True: this platform has no SIGUSR1/SIGUSR2; going without")
        return None
    if threading.current_thread() is not threading.main_thread():
        logger.warning("diagnostics=True: signals need the main thread; going without")
        return None
    if nested:
        logger.debug("diagnostics: the enclosing coordinator is in charge of the signals")
        return None
    diagnostics = Diagnostics(config, owner, on_written)
    try:
        diagnostics.claim()
    except ShutdownError as exc:
        logger.warning("diagnostics=True, but %s; going without", exc)
        return None
    return diagnostics


# ---------------------------------------------------------------------------
# Asking a running process
# ---------------------------------------------------------------------------

_POLL_INTERVAL = 0.05


def _process_uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _catches(pid: int, sig: signal.Signals) -> bool | None:
    """Whether *pid* has a handler for *sig* (Linux ``/proc``), None if unknown."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (int(sig) - 1) & 1)
    except (OSError, ValueError):
        return None
    return None  # pragma: no cover - every Linux status file has SigCgt


def _matching(directory: Path, pattern: re.Pattern[str]) -> set[str]:
    try:
        return {entry for entry in os.listdir(directory) if pattern.fullmatch(entry)}
    except FileNotFoundError:
        return set()


def _send(pid: int, sig: signal.Signals, *, probe: bool = False) -> None:
    try:
        os.kill(pid, 0 if probe else sig)
    except ProcessLookupError:
        raise ProcessLookupError(f"no process with pid {pid}") from None
    except PermissionError:
        raise PermissionError(
            f"not allowed to send {sig.name} to pid {pid}; run as its user or as root"
        ) from None


def request_diagnostics(
    pid: int,
    kind: DiagnosticsKind,
    *,
    directory: str | os.PathLike[str] | None = None,
    timeout: float = 10.0,
    duration: float | None = None,
) -> Path:
    """Ask the process *pid* for a task dump or a profile and return the file's path.

    The process must run a coordinator with ``diagnostics=True``. For ``"dump"``
    this sends SIGUSR1 and waits for the new ``.dump`` file. For ``"profile"`` it
    sends SIGUSR2; with *duration* it sends a second SIGUSR2 after that many
    seconds to end the profile early, else the profile runs for the service's
    ``profile_duration``. It then waits for the ``.pstats`` file and its ``.txt``
    summary and returns the ``.pstats`` path (the summary is the same path with
    ``.txt``). If a profile was already running, the first SIGUSR2 ends it and
    that profile is the one returned (no second signal is sent then).

    *directory* is where the service writes (its ``diagnostics_dir``); by default
    ``<tempdir>/gracestop-<uid of pid>``, which matches the service's default when
    both see the same ``TMPDIR``. *timeout* bounds the wait for the file, counted
    after the second SIGUSR2 when *duration* is given, else from the first signal
    (then it must cover the service's ``profile_duration``).

    The signal is sent only when *directory* holds the process's marker file
    (``.gracestop-<pid>.diagnostics``, kept there while its diagnostics are on):
    SIGUSR1's default action ends a process, and a process with a handler of its
    own (a shell) is not a gracestop service either. On Linux a process without a
    handler for the signal is refused first, with a message saying so.

    Raises:
        ProcessLookupError: no process *pid*.
        PermissionError: not allowed to signal it.
        ShutdownError: the process does not handle the signal, or its marker is
            not in *directory* (no gracestop diagnostics writing there; nothing
            is sent then), or the directory is unsafe.
        TimeoutError: no new file within *timeout*.
        TypeError, ValueError: a bad argument (the message names it).

    For example:

        path = request_diagnostics(1234, "dump")
        print(path.read_text())
        stats = pstats.Stats(str(request_diagnostics(1234, "profile", duration=5)))
    """
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"pid must be an int; got {_describe(pid)}")
    if pid <= 0:
        raise ValueError(f"pid must be a positive int; got {pid!r}")
    if kind not in ("dump", "profile"):
        raise ValueError(f"kind must be 'dump' or 'profile'; got {kind!r}")
    wait = check_duration(timeout, "timeout", allow_zero=False)
    profile_for = (
        None if duration is None else check_duration(duration, "duration", allow_zero=False)
    )
    if profile_for is not None and kind != "profile":
        raise ValueError(f"duration applies to kind='profile' only; got kind={kind!r}")
    sig = _DUMP_SIGNAL if kind == "dump" else _PROFILE_SIGNAL
    if sig is None:  # pragma: no cover - Windows
        raise ShutdownError("diagnostics signals need SIGUSR1/SIGUSR2, which this platform lacks")
    if directory is None:
        uid = _process_uid(pid)
        folder = default_diagnostics_dir(uid)
    else:
        folder = Path(os.fspath(directory))
    # Signal 0 checks the process exists and may be signalled, and sends nothing.
    _send(pid, sig, probe=True)
    if _catches(pid, sig) is False:
        raise ShutdownError(
            f"pid {pid} has no handler for {sig.name}: it does not run gracestop with "
            f"diagnostics=True; not sending {sig.name}, which would end it"
        )
    marker = folder / marker_name(pid)
    try:
        found_marker = stat.S_ISREG(os.lstat(marker).st_mode)
    except OSError:
        found_marker = False
    if not found_marker:
        raise ShutdownError(
            f"pid {pid} has no gracestop diagnostics marker in {folder} (no {marker.name}): "
            f"it does not run gracestop with diagnostics=True writing there; "
            f"not sending {sig.name}, which could end it"
        )
    if kind == "dump":
        pattern = re.compile(rf".+-{pid}-tasks-[0-9]{{10}}(?:-[0-9]+)?\.dump")
    else:
        pattern = re.compile(rf".+-{pid}-profile-[0-9]{{10}}(?:-[0-9]+)?\.txt")
    before = _matching(folder, pattern)
    _send(pid, sig)
    if profile_for is not None:
        time.sleep(profile_for)
        # A profile that was already running ended at our first signal: a
        # second one would start another, left running behind us.
        if not _matching(folder, pattern) - before:
            _send(pid, sig)
    end = time.monotonic() + wait
    while True:
        new = _matching(folder, pattern) - before
        if new:
            try:
                _check_directory_stat(str(folder), os.lstat(folder), None)
            except UnsafeDirectoryError as exc:
                raise ShutdownError(str(exc)) from None
            newest = max(new, key=lambda n: (os.lstat(folder / n).st_mtime_ns, n))
            found = folder / newest
            return found.with_suffix(".pstats") if kind == "profile" else found
        if time.monotonic() >= end:
            raise TimeoutError(
                f"pid {pid} wrote no {kind} file in {folder} within {_seconds(wait)}; "
                "is diagnostics=True set, and is this its diagnostics_dir?"
            )
        time.sleep(_POLL_INTERVAL)


def _seconds(value: float) -> str:
    return f"{value:g}s"
