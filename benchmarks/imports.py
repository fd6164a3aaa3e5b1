"""Import cost: ``import gracestop`` against ``import anyio``, each in a fresh interpreter.

Every sample starts a new interpreter (this one, ``sys.executable``) that reads
``time.perf_counter()``, imports the module, reads the clock again and prints the
difference; the interpreter's own start-up is outside the window. The two
variants alternate within each round; one unmeasured import of each comes first,
so that both read compiled bytecode from ``__pycache__`` afterwards.

gracestop imports anyio (its only runtime dependency), so its figure includes
anyio's: the ratio shows what gracestop adds on top of the library it is built on
(``kind="baseline"``); the second row compares with ``import anyio, asyncio``,
what a service on anyio's asyncio backend loads anyway, since anyio imports
asyncio only once it runs. Integrations (uvicorn, aiohttp, ...) are never imported by
``import gracestop``.

    python benchmarks/imports.py [--smoke]
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from functools import partial

sys.path.insert(0, os.path.dirname(__file__))

from _bench import Measure, Row, alternate, cli

CHILD = """
import sys, time
started = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
print(repr(time.perf_counter() - started))
"""


def one(*modules: str) -> float:
    """Import ``modules`` in a fresh interpreter; return how long the imports took."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *modules],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"import {', '.join(modules)} failed:\n{done.stdout}{done.stderr}")
    return float(done.stdout.strip())


def run(smoke: bool) -> list[Row]:
    """Two rows: import gracestop against import anyio, and against anyio with asyncio."""
    rounds = 3 if smoke else 21
    variants: dict[str, Callable[[], float]] = {
        "gracestop": partial(one, "gracestop"),
        "anyio": partial(one, "anyio"),
        "anyio+asyncio": partial(one, "anyio", "asyncio"),
    }
    for variant in variants.values():
        variant()
    samples = alternate(rounds, variants)
    return [
        Row(
            group="import cost (fresh interpreter)",
            case="import gracestop",
            a=Measure("gracestop", "s", samples["gracestop"]),
            b=Measure("import anyio", "s", samples["anyio"]),
            better="lower",
            kind="baseline",
            note="gracestop imports anyio: its time includes anyio's",
        ),
        Row(
            group="import cost (fresh interpreter)",
            case="import gracestop",
            a=Measure("gracestop", "s", samples["gracestop"]),
            b=Measure("import anyio, asyncio", "s", samples["anyio+asyncio"]),
            better="lower",
            kind="baseline",
            note=(
                "what an anyio service on asyncio loads anyway (anyio imports asyncio "
                "lazily, at anyio.run); gracestop imports both"
            ),
        ),
    ]


if __name__ == "__main__":
    cli(run, __doc__)
