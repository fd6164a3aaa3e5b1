"""What the peer programs share: printing, the stubborn task, gracestop's settings."""

from __future__ import annotations

import asyncio
from typing import Any

import gracestop


def say(text: str) -> None:
    """One line on stdout at once: the parent follows the program by these."""
    print(text, flush=True)


async def stubborn() -> None:
    """Work that swallows its cancellation and goes on, as a careless
    ``except BaseException`` (or a library that catches too much) does."""
    told = False
    while True:
        try:
            await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            if not told:
                told = True
                say("CANCEL swallowed")


def settings(args: list[str]) -> dict[str, Any]:
    """gracestop's settings from ``field=value`` arguments (``wait_time=1.5s``),
    validated; no argument leaves gracestop's defaults."""
    given = dict(arg.split("=", 1) for arg in args)
    config = gracestop.ShutdownConfig.from_mapping(given)
    return {name: getattr(config, name) for name in given}


def peer_option(args: list[str], name: str) -> float | None:
    """The peer's own setting ``name`` from a ``name=seconds`` argument
    (``timeout_task_shutdown=6``); None (the peer's default) if not given."""
    value: float | None = None
    for arg in args:
        key, _, text = arg.partition("=")
        if key != name:
            raise ValueError(f"unknown peer setting {key!r}: only {name!r} is taken")
        value = float(text)
    return value
