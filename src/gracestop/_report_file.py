"""Writing the JSON report to a file, atomically, where tools can pick it up."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._report import ShutdownReport

__all__ = ["REPORT_FILE_ENV", "write_report_file"]

logger = logging.getLogger("gracestop")

REPORT_FILE_ENV = "GRACESTOP_REPORT_FILE"
"""The variable naming the report file when the config has no ``report_file``."""

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def write_report_file(path: str, report: ShutdownReport, *, when: str = "") -> bool:
    """Write ``report.to_json(indent=2)`` to *path*; return whether it worked.

    The document goes to a temporary file in the same directory, is flushed to
    disk, and then renamed over *path* (``os.replace``), so a reader sees either
    the previous file or the whole new one, never a partial write. The file is
    created with mode ``0666`` less the process's umask, like any file the
    service creates (the report holds exception messages: a umask of ``077``
    keeps it private). A failure is
    logged at ERROR with the path and swallowed: a shutdown never fails because
    its report could not be written.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp: str | None = None
    try:
        data = (report.to_json(indent=2) + "\n").encode("utf-8")
        fd, tmp = _create_temp(directory, os.path.basename(path))
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        tmp = None
        _sync_directory(directory)
    except Exception as exc:
        logger.error(
            "could not write the shutdown report%s to %s: %s",
            when,
            path,
            exc,
            extra={"gracestop_report_file": path},
        )
        return False
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    logger.debug("shutdown report written to %s", path)
    return True


def _create_temp(directory: str, base: str) -> tuple[int, str]:
    """A new private temporary file beside the target. Mode 0666 lets the kernel
    apply the umask, which reading it (``os.umask`` sets it too) could not do
    safely while other threads create files."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
    for _ in range(100):
        name = os.path.join(directory, f".{base}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:  # pragma: no cover - 32 random bits taken
            continue
    raise FileExistsError(f"no free temporary name for {base} in {directory}")  # pragma: no cover


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable; not every platform or file system can."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - a directory we just wrote into
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse fsync on directories
        pass
    finally:
        os.close(fd)
