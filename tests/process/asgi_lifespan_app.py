"""A FastAPI app wrapped by ``gracestop.asgi.graceful``, served by the uvicorn command line.

Run by ``test_asgi_lifespan.py`` as ``python -m uvicorn asgi_lifespan_app:app``. It
prints a line at each step the test waits for or checks.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request

import gracestop
from gracestop.asgi import graceful

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s: %(message)s")


def say(line: str) -> None:
    print(line, flush=True)


hooks = gracestop.Hooks()


@hooks.on_wrap_up
async def flush() -> None:
    say("wrap-up hook ran")


@hooks.on_shutdown
async def close_db() -> None:
    say("shutdown hook ran")


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    say("app lifespan startup")
    yield
    say("app lifespan shutdown")


api = FastAPI(lifespan=lifespan)


@api.get("/work")
async def work() -> dict[str, str]:
    return {"work": "done"}


@api.get("/slow")
async def slow(request: Request) -> dict[str, str]:
    coord: gracestop.ShutdownCoordinator = request.state.gracestop
    say("slow request started")
    # In flight across the signal: it ends only after the shutdown has begun.
    await coord.triggered()
    await anyio.sleep(0.5)
    say("slow request done")
    return {"slow": "done"}


app = graceful(
    api,
    hooks=hooks,
    drain_delay=float(os.environ.get("APP_DRAIN_DELAY", "3")),
    wrap_up_time=5,
    wait_time=25,
)
