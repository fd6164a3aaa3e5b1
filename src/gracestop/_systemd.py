"""sd_notify: tell systemd that the service is ready, stopping, and alive.

systemd passes a unix datagram socket in ``NOTIFY_SOCKET`` to services with
``Type=notify`` (a path, or an abstract name starting with ``@``). Each message
is one datagram of newline-separated ``KEY=value`` assignments. No library is
needed: the protocol is one ``sendto``.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
from collections.abc import Mapping

import anyio

from ._report import _count
from .instrumentation import (
    CoordinatorEntered,
    Event,
    ForcedQuit,
    PhaseStarted,
    Progress,
    ShutdownFinished,
    ShutdownTriggered,
    _names,
    _secs,
)

__all__ = ["EXIT_MARGIN", "SystemdNotifier"]

logger = logging.getLogger("gracestop")

EXIT_MARGIN = 1.0
"""Seconds added to every ``EXTEND_TIMEOUT_USEC`` beyond the force-quit deadline and the watchdog's
grace: the time an interpreter needs to exit once it is told to.
"""

# STATUS= is shown by `systemctl status` on one line: keep it short.
_STATUS_NAMES = 5
MAX_VALUE = 512
"""Longest value sent in one assignment; longer ones are cut, ending with "..."."""
# Newlines would start new assignments (an exception message could send READY=1
# or MAINPID=): every run of whitespace or control characters becomes one space.
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


def clean_value(value: str) -> str:
    """*value* made safe for one ``KEY=value`` line: whitespace and control
    characters collapsed to single spaces, at most `MAX_VALUE` characters."""
    text = _UNSAFE.sub(" ", value).strip()
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def notify_address(value: str) -> str | None:
    """The socket address named by ``NOTIFY_SOCKET``, or ``None`` if unsupported.

    ``@name`` is an abstract socket (Linux), written with a leading NUL byte.
    """
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``WATCHDOG_USEC``, when it is
    set for this process (``WATCHDOG_PID`` unset or equal to our pid)."""
    raw = environ.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        logger.warning("WATCHDOG_USEC=%r is not a number of microseconds; no watchdog pings", raw)
        return None
    if usec <= 0:
        logger.warning("WATCHDOG_USEC=%r is not positive; no watchdog pings", raw)
        return None
    return usec / 2 / 1e6


def _usec(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1e6))


class SystemdNotifier:
    """Sends sd_notify messages for a coordinator's events, and watchdog pings.

    Used as an observer: ``READY=1`` on entering (unless *ready_on_enter* is
    false: then `ready` sends it), ``STOPPING=1`` with
    ``EXTEND_TIMEOUT_USEC`` at the trigger (the time left until the process ends
    at the latest: ``wait_time`` + ``watchdog_grace`` + `EXIT_MARGIN`), again
    with every progress line, and ``STATUS=`` lines for each stage and the summary.
    Sending never raises: a socket that is gone is logged once, then ignored.
    Every value is passed through `clean_value`.
    """

    __slots__ = (
        "_address",
        "_closed",
        "_failed",
        "_grace",
        "_ready_on_enter",
        "_ready_sent",
        "_sock",
        "watchdog_interval",
    )

    def __init__(
        self,
        address: str,
        *,
        grace: float = 0.0,
        watchdog_interval: float | None = None,
        ready_on_enter: bool = True,
    ) -> None:
        self._address = address
        self._grace = grace
        self.watchdog_interval = watchdog_interval
        self._ready_on_enter = ready_on_enter
        self._ready_sent = False
        self._failed = False
        self._closed = False
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        grace: float = 0.0,
        ready_on_enter: bool = True,
    ) -> SystemdNotifier | None:
        """A notifier for ``NOTIFY_SOCKET``, or ``None`` when it is unset or unsupported."""
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET")
        if not value:
            return None
        address = notify_address(value)
        if address is None:
            logger.warning(
                "NOTIFY_SOCKET=%r is not a unix socket path or @name; not notifying", value
            )
            return None
        return cls(
            address,
            grace=grace,
            watchdog_interval=watchdog_interval(env),
            ready_on_enter=ready_on_enter,
        )

    def send(self, *assignments: str) -> bool:
        """Send the assignments as one datagram; False (logged once) if it failed
        or the notifier is closed."""
        if self._closed:
            return False
        lines: list[str] = []
        for assignment in assignments:
            key, _, value = assignment.partition("=")
            lines.append(f"{key}={clean_value(value)}")
        message = "\n".join(lines).encode("utf-8", "replace")
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                # Never block the event loop: a full socket buffer drops the message.
                sock.setblocking(False)
                self._sock = sock
            self._sock.sendto(message, self._address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                logger.warning(
                    "could not notify systemd at %r (%s); further failures are not logged",
                    self._address.replace("\0", "@"),
                    exc,
                    extra={"gracestop_event": "systemd"},
                )
            return False
        return True

    def ready(self) -> None:
        """Send ``READY=1`` once; later calls do nothing."""
        if not self._ready_sent:
            self._ready_sent = True
            self.send("READY=1", "STATUS=running")

    def close(self) -> None:
        """Close the socket; later messages are dropped."""
        self._closed = True
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _extend(self, time_left: float) -> str:
        return f"EXTEND_TIMEOUT_USEC={_usec(max(0.0, time_left) + self._grace + EXIT_MARGIN)}"

    def __call__(self, event: Event) -> None:
        """Send what systemd needs to know about *event*."""
        match event:
            case CoordinatorEntered():
                if self._ready_on_enter:
                    self.ready()
                else:
                    self.send("STATUS=starting; waiting for the service to be ready")
            case ShutdownTriggered(trigger=trigger, wait_time=wait_time):
                self.send(
                    "STOPPING=1",
                    self._extend(wait_time),
                    f"STATUS={trigger.describe()}, shutting down; force quit in {_secs(wait_time)}",
                )
            case PhaseStarted(phase="drain", limit=limit):
                self.send(f"STATUS=draining for {_secs(limit)}")
            case PhaseStarted(phase=phase, hooks=hooks):
                label = "wrap-up" if phase == "wrap_up" else "shutdown"
                self.send(f"STATUS={label} phase: {_count(hooks, 'hook')}")
            case Progress(pending=pending, holds=holds, time_left=time_left):
                what = [*pending, *(f"hold {h}" for h in holds)]
                self.send(
                    self._extend(time_left),
                    f"STATUS=waiting for {_names(what, limit=_STATUS_NAMES)}; "
                    f"force quit in {_secs(max(0.0, time_left))}",
                )
            case ForcedQuit(by=by, pending=pending):
                self.send(
                    f"STATUS=forcing the quit ({by}); "
                    f"cut short: {_names(pending, limit=_STATUS_NAMES) or 'nothing'}"
                )
            case ShutdownFinished(report=report):
                self.send(f"STATUS={report.summary()}")
            case _:
                pass

    async def ping_watchdog(self) -> None:
        """Send ``WATCHDOG=1`` every `watchdog_interval` seconds, forever.

        A loop that is blocked sends nothing: then systemd's ``WatchdogSec``
        ends the process, which is the point.
        """
        interval = self.watchdog_interval
        if interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await anyio.sleep(interval)
