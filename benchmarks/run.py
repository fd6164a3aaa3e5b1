"""Run the benchmarks, print one comparison table, write benchmarks/results.json.

    python benchmarks/run.py [--smoke] [--only NAME ...] [--output PATH] [--check]

``--smoke`` runs every benchmark briefly (a check that they run, not a measurement).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _bench import RESULTS, Row, summary, table, write_results

#: The benchmark modules, in the order of the table. Each has ``run(smoke) -> list[Row]``.
MODULES = [
    "signal_latency",
    "hooks",
    "holds",
    "imports",
    "asgi_rps",
    "exit_time",
    "drain_failures",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="run each benchmark briefly")
    parser.add_argument("--only", nargs="+", choices=MODULES, metavar="NAME", help="run these")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument(
        "--check", action="store_true", help="exit with 1 if gracestop is behind a peer on a row"
    )
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for name in args.only or MODULES:
        started = time.monotonic()
        module = importlib.import_module(name)
        produced: list[Row] = module.run(args.smoke)
        rows += produced
        print(
            f"{name}: {len(produced)} rows in {time.monotonic() - started:.1f} s", file=sys.stderr
        )
    print(table(rows))
    print()
    print(summary(rows))
    write_results(rows, smoke=args.smoke, path=args.output)
    print(f"written to {args.output}")
    behind = any(row.kind == "peer" and row.verdict == "behind" for row in rows)
    return 1 if args.check and behind else 0


if __name__ == "__main__":
    sys.exit(main())
