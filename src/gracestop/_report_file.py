"""Writing the JSON report to a file, atomically, where tools can pick it up."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._report import ShutdownReport

__all__ = ["REPORT_FILE_MODE", "write_report_file"]

logger = logging.getLogger("gracestop")

#: Permissions of a written report file: readable by log shippers running as
#: another user, writable by the service only.
REPORT_FILE_MODE = 0o644


def write_report_file(path: str, report: ShutdownReport, *, when: str = "") -> bool:
    """Write ``report.to_json(indent=2)`` to *path*; return whether it worked.

    The document goes to a temporary file in the same directory, is flushed to
    disk, and then renamed over *path* (``os.replace``), so a reader sees either
    the previous file or the whole new one, never a partial write. A failure is
    logged at ERROR with the path and swallowed: a shutdown never fails because
    its report could not be written.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp: str | None = None
    try:
        data = (report.to_json(indent=2) + "\n").encode("utf-8")
        import tempfile  # here, not at the top: import gracestop stays cheap

        fd, tmp = tempfile.mkstemp(
            dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
        )
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
            os.fchmod(file.fileno(), REPORT_FILE_MODE)
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
