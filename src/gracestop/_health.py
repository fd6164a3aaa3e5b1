"""What the readiness and liveness probes answer, shared by every way of serving them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._config import _describe
from ._report import State

if TYPE_CHECKING:
    from ._coordinator import ShutdownCoordinator

__all__ = ["ProbeAnswer", "check_path", "liveness", "method_not_allowed", "not_found", "readiness"]


@dataclass(frozen=True)
class ProbeAnswer:
    """A probe's HTTP status and its short JSON body."""

    status: int
    body: bytes

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """Content type, length and no caching: a probe answer is only true now."""
        return [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode("ascii")),
            (b"cache-control", b"no-store"),
        ]


def _answer(code: int, **fields: str) -> ProbeAnswer:
    return ProbeAnswer(code, json.dumps(fields, separators=(",", ":")).encode("ascii"))


def readiness(coord: ShutdownCoordinator) -> ProbeAnswer:
    """200 while the coordinator is ``RUNNING``; 503 before it runs and from the trigger on."""
    state = coord.state
    if coord.ready:
        return _answer(200, status="ready", state=state.value)
    return _answer(503, status="not ready", state=state.value)


def liveness(coord: ShutdownCoordinator) -> ProbeAnswer:
    """200 until the coordinator has stopped (the shutdown is alive too); 503 after."""
    state = coord.state
    if state is State.STOPPED:
        return _answer(503, status="stopped", state=state.value)
    return _answer(200, status="alive", state=state.value)


def not_found() -> ProbeAnswer:
    """The answer for a path that is not a probe."""
    return _answer(404, status="not found")


def method_not_allowed() -> ProbeAnswer:
    """The answer for a probe asked with another method than GET or HEAD."""
    return _answer(405, status="method not allowed")


def check_path(name: str, value: object) -> str | None:
    """Validate a probe path parameter: ``None`` (probe off) or a str starting with "/"."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None; got {_describe(value)}")
    if not value.startswith("/"):
        raise ValueError(f'{name} must start with "/"; got {value!r}')
    if any(c in value for c in "?# \t\r\n"):
        raise ValueError(
            f"{name} must be a plain path (no query, fragment or spaces); got {value!r}"
        )
    return value
