"""The child of ``signal_latency.py``: prints the clock when its first "hook" starts.

    python signal_child.py VARIANT BACKEND LOOP

``VARIANT`` is ``bare`` (an anyio signal receiver, the hook written inline) or
``gracestop`` (a ``ShutdownCoordinator`` with one wrap-up hook); ``BACKEND`` is
``asyncio`` or ``trio``; ``LOOP`` is ``uvloop`` or ``default``. The program prints
``READY`` once SIGTERM is handled, then ``HOOK <time.monotonic()>`` when the hook
starts (one clock for every process on Linux), and ends.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

import anyio
from _peers import say

import gracestop


async def bare() -> None:
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        say("READY")
        async for _ in signals:
            say(f"HOOK {time.monotonic()!r}")  # the "hook"
            return


async def with_gracestop() -> None:
    hooks = gracestop.Hooks()

    @hooks.on_wrap_up
    async def first() -> None:
        say(f"HOOK {time.monotonic()!r}")

    async with gracestop.ShutdownCoordinator(hooks=hooks, signals=["TERM"]):
        say("READY")
        await anyio.sleep_forever()


def main(argv: list[str]) -> None:
    variant, backend, loop = argv
    options: dict[str, Any] = {"use_uvloop": True} if loop == "uvloop" else {}
    anyio.run(
        bare if variant == "bare" else with_gracestop, backend=backend, backend_options=options
    )


if __name__ == "__main__":
    main(sys.argv[1:])
