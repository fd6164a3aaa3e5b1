"""A background service without HTTP, under aiorun or under gracestop.

    python background_worker.py SIDE SITUATION [SETTING...]

``SIDE`` is ``aiorun`` (``aiorun.run(main(), shutdown_callback=...)``, its
defaults, or ``timeout_task_shutdown=SECONDS`` if given) or ``gracestop``
(``gracestop.run(main)`` with a hook; gracestop's defaults, or the ``field=value``
settings given, such as ``wait_time=1.5s``).
``SITUATION`` is what goes wrong at the shutdown:

- ``blocking``: the cleanup blocks the event loop (``time.sleep(60)``);
- ``stubborn``: a background task swallows its cancellation and keeps going.

The program prints ``READY`` once it runs; the parent then sends SIGTERM and
times the exit.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiorun
import anyio
from _peers import peer_option, say, settings, stubborn

import gracestop


def with_aiorun(situation: str, config: list[str]) -> None:
    async def cleanup(loop: asyncio.AbstractEventLoop) -> None:
        say("CLEANUP start")
        time.sleep(60)  # noqa: ASYNC251 - blocking the loop is the point

    tasks: list[asyncio.Task[None]] = []

    async def main() -> None:
        if situation == "stubborn":
            tasks.append(asyncio.get_running_loop().create_task(stubborn()))
        say("READY")

    callback = cleanup if situation == "blocking" else None
    timeout = peer_option(config, "timeout_task_shutdown")
    if timeout is None:
        aiorun.run(main(), shutdown_callback=callback)
    else:
        aiorun.run(main(), shutdown_callback=callback, timeout_task_shutdown=timeout)


def with_gracestop(situation: str, config: list[str]) -> None:
    async def main(coord: gracestop.ShutdownCoordinator) -> None:
        if situation == "blocking":

            @coord.on_shutdown
            async def cleanup() -> None:
                say("CLEANUP start")
                time.sleep(60)  # noqa: ASYNC251 - blocking the loop is the point

        async with anyio.create_task_group() as tg:
            if situation == "stubborn":
                tg.start_soon(stubborn)
            say("READY")
            await anyio.sleep_forever()

    gracestop.run(main, hooks=gracestop.Hooks(), **settings(config))


if __name__ == "__main__":
    side, situation = sys.argv[1], sys.argv[2]
    if side == "aiorun":
        with_aiorun(situation, sys.argv[3:])
    else:
        with_gracestop(situation, sys.argv[3:])
