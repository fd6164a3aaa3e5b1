"""The example FastAPI app served by ``gracestop.hypercorn.serve`` on either backend.

``python -m apps BACKEND [example options]``: the same app, database and printed
lines as ``examples/fastapi_app.py`` (which serves it with uvicorn), so the
serving tests check both servers against one story.
"""

from __future__ import annotations

import functools
import sys

import anyio
from examples.fastapi_app import (
    DEFAULTS,
    Database,
    config_from_env,
    create_app,
    parse,
    print_outcome,
    say,
)

import gracestop
import gracestop.hypercorn


async def main(argv: list[str]) -> int:
    args = parse(argv)
    overrides = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    db = Database(args.db)
    async with gracestop.ShutdownCoordinator(
        config_from_env(), hooks=gracestop.Hooks(), **overrides
    ) as coord:

        @coord.on_shutdown(name="close-db")
        def close_db() -> None:
            db.close()
            say("DB closed")

        async with anyio.create_task_group() as tg:
            serve = functools.partial(
                gracestop.hypercorn.serve,
                create_app(db, slow_seconds=args.slow),
                coord,
                bind=f"{args.host}:{args.port}",
            )
            (_, port), *_ = await tg.start(serve)
            say(f"LISTENING {port}")
    print_outcome(coord, db, args.json_report)
    return gracestop.exit_code(coord)


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[2:], backend=sys.argv[1]))
