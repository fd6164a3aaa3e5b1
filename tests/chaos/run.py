"""Run the chaos test many times and print the counts: ``make chaos N=500``.

    python tests/chaos/run.py --iterations 500 --parallel 2 [--seed BASE]
    python tests/chaos/run.py --replay SEED --backend trio --variant force

Iteration ``i`` uses seed ``BASE + i``; the backend alternates (asyncio, trio), and
so does the variant every two iterations (``term``: one SIGTERM; ``force``: a
second signal follows). A failed iteration prints its seed, the command that
replays it and the service's whole output; the run ends with status 1 if any
iteration failed.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _chaos import BACKENDS, VARIANTS, Outcome, Plan, Totals, plan_for, run_iteration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--iterations", type=int, default=500)
    parser.add_argument("-j", "--parallel", type=int, default=2, help="iterations at a time")
    parser.add_argument("--seed", type=int, help="base seed (default: a random one)")
    parser.add_argument("--replay", type=int, metavar="SEED", help="run one iteration again")
    parser.add_argument("--backend", choices=BACKENDS, default="asyncio")
    parser.add_argument("--variant", choices=VARIANTS, default="term")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.parallel < 1:
        parser.error("--iterations and --parallel must be at least 1")

    if args.replay is not None:
        plans = [Plan.draw(args.replay, args.backend, args.variant)]
    else:
        base = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
        print(f"chaos: {args.iterations} iterations, base seed {base}", flush=True)
        plans = [plan_for(base, i) for i in range(args.iterations)]

    totals = Totals()
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="gracestop-chaos-") as tmp:

        def one(plan: Plan) -> None:
            outcome: Outcome = run_iteration(plan, Path(tmp))
            with lock:
                totals.add(outcome)
                if outcome.problems():
                    print(f"\nFAILED {outcome.failure_message()}\n", flush=True)
                else:
                    print(".", end="", flush=True)
                    if totals.iterations % 50 == 0:
                        print(f" {totals.iterations}", flush=True)

        with ThreadPoolExecutor(args.parallel) as pool:
            # list(): an exception in an iteration is raised here, not lost.
            list(pool.map(one, plans))
    print()
    print(totals.render())
    return 1 if totals.failed else 0


if __name__ == "__main__":
    sys.exit(main())
