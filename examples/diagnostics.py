"""A service you can look into while it runs: SIGUSR1 dumps, SIGUSR2 profiles.

Three named tasks poll "upstreams" and one of them is slow. Ask the running
process where its tasks are waiting, or where its event loop spends its time:

    python examples/diagnostics.py               # prints its pid, Ctrl-C to stop
    kill -USR1 <pid>                             # a task dump, path in the log
    kill -USR2 <pid>; sleep 5; kill -USR2 <pid>  # a 5 s profile (.pstats + .txt)

    python examples/diagnostics.py --demo        # asks itself for both, prints them

The files go to ``<tempdir>/gracestop-<uid>`` (mode 0700, files 0600) unless
``--dir`` says otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import pstats

import anyio

import gracestop

log = logging.getLogger("example")


def checksum(payload: bytes) -> int:
    """Some CPU work on the loop thread, for the profile to show."""
    total = 0
    for byte in payload:
        total = (total * 31 + byte) % 1_000_003
    return total


async def poll(every: float) -> None:
    """Poll an upstream forever (here: wait, then checksum a payload)."""
    payload = os.urandom(20_000)
    while True:
        await anyio.sleep(every)
        checksum(payload)


async def ask_myself(directory: str | None) -> None:
    """The --demo: a dump and a one-second profile, read back and summarised."""
    await anyio.sleep(0.5)
    dump = await anyio.to_thread.run_sync(
        lambda: gracestop.request_diagnostics(os.getpid(), "dump", directory=directory)
    )
    text = await anyio.Path(dump).read_text()
    tasks = [line.strip() for line in text.splitlines() if line.lstrip().startswith("--- task")]
    print(f"dump {dump}:", *tasks, sep="\n  ")
    profile = await anyio.to_thread.run_sync(
        lambda: gracestop.request_diagnostics(
            os.getpid(), "profile", directory=directory, duration=1.0
        )
    )
    stats = pstats.Stats(str(profile))
    calls = {name: data[0] for (_f, _l, name), data in stats.stats.items()}  # type: ignore[attr-defined]
    print(f"profile {profile}: checksum called {calls.get('checksum', 0)} times")


async def main(coord: gracestop.ShutdownCoordinator, demo: bool, directory: str | None) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(poll, 0.05, name="poll fast-upstream")
        tg.start_soon(poll, 0.5, name="poll slow-upstream")
        print(f"READY pid {os.getpid()}: kill -USR1 {os.getpid()} for a dump", flush=True)
        if demo:
            await ask_myself(directory)
            coord.shutdown("demo over")
        await coord.triggered()
        tg.cancel_scope.cancel()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", action="store_true", help="ask itself for a dump and profile")
    parser.add_argument("--dir", default=None, help="diagnostics directory")
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    async def run_main(coord: gracestop.ShutdownCoordinator) -> None:
        await main(coord, args.demo, args.dir)

    gracestop.run(
        run_main,
        backend=args.backend,
        diagnostics=True,
        diagnostics_dir=args.dir,
        hooks=gracestop.Hooks(),
    )


if __name__ == "__main__":
    cli()
