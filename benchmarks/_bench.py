"""What every benchmark shares: paired A/B rounds, comparison rows, the table and results.json.

A benchmark measures gracestop (``a``) against a comparison (``b``) in the same run,
alternating which goes first in each round, and reports the ratio of the two. Absolute
times on a shared machine are noise; the ratio of figures taken side by side is not.

Each module in ``benchmarks/`` exposes ``run(smoke: bool) -> list[Row]``; ``run.py``
collects the rows, prints one table and writes ``benchmarks/results.json``
(schema ``gracestop-bench/1``, read by the documentation's "Guarantees and benchmarks"
page).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SCHEMA = "gracestop-bench/1"
RESULTS = Path(__file__).with_name("results.json")

#: A ratio within this fraction of 1.0 counts as level: a 5 % difference is within the
#: noise of a shared two-core machine.
LEVEL = 0.05

Better = Literal["lower", "higher"]
Kind = Literal["peer", "baseline"]
Verdict = Literal["ahead", "level", "behind"]
VERDICTS: tuple[Verdict, ...] = ("ahead", "level", "behind")


@dataclass
class Measure:
    """The samples of one side of a comparison, one per round.

    ``capped`` counts the samples that hit the benchmark's cap (a peer that did not
    exit within 15 s, say): they are recorded at the cap value, and the table shows
    the figure as ``> cap``.
    """

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    capped: int = 0
    cap: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "samples": self.samples,
            "capped": self.capped,
            "cap": self.cap,
        }


@dataclass
class Row:
    """One line of the table: gracestop (``a``) against a peer or a baseline (``b``).

    ``kind`` is ``"peer"`` when ``b`` is what a user would otherwise pick (aiorun,
    plain uvicorn, aiohttp ``run_app``): gracestop must be ahead of or level with it.
    ``"baseline"`` rows compare with the bare mechanism underneath (an anyio task
    group, a counter) and show what gracestop's bookkeeping costs.
    """

    group: str
    case: str
    a: Measure
    b: Measure
    better: Better
    kind: Kind
    note: str = ""

    def ratios(self) -> list[float]:
        """Per-round ratios ``a / b``.

        A round where both are 0 (no failed request on either side) counts as 1.0;
        one where only ``b`` is 0 as infinite, so that it weighs against gracestop
        when lower is better rather than vanishing from the figure.
        """
        ratios: list[float] = []
        for x, y in zip(self.a.samples, self.b.samples, strict=True):
            if y > 0:
                ratios.append(x / y)
            else:
                ratios.append(1.0 if x == 0 else math.inf)
        return ratios

    @property
    def ratio(self) -> float | None:
        ratios = self.ratios()
        return statistics.median(ratios) if ratios else None

    @property
    def verdict(self) -> Verdict:
        """Ahead, level or behind, read from the paired ratio shown beside it.

        The ratio is the median of the per-round ratios; where no round gives one
        (``b`` was 0 in every round, as with 0 failed requests), the medians are
        compared instead.
        """
        ratio = self.ratio
        if ratio is None:
            a, b = self.a.median, self.b.median
            if math.isclose(a, b, abs_tol=1e-12):
                return "level"
            ahead = a < b if self.better == "lower" else a > b
            return "ahead" if ahead else "behind"
        if abs(ratio - 1) <= LEVEL:
            return "level"
        ahead = ratio < 1 if self.better == "lower" else ratio > 1
        return "ahead" if ahead else "behind"

    def to_json(self) -> dict[str, Any]:
        ratios = [r for r in self.ratios() if math.isfinite(r)]
        ratio = self.ratio
        return {
            "group": self.group,
            "case": self.case,
            "kind": self.kind,
            "better": self.better,
            "gracestop": self.a.to_json(),
            "other": self.b.to_json(),
            # JSON has no infinity: an infinite ratio is written as null.
            "ratio": ratio if ratio is not None and math.isfinite(ratio) else None,
            "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None,
            "verdict": self.verdict,
            "note": self.note,
        }


def alternate(rounds: int, variants: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run each variant once per round, rotating which goes first; return the samples."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for n in range(rounds):
        order = names[n % len(names) :] + names[: n % len(names)]
        for name in order:
            samples[name].append(variants[name]())
    return samples


def fmt(value: float, unit: str) -> str:
    """Format ``value`` in ``unit`` (``s`` values scale down to ms and µs)."""
    if unit == "s":
        if value >= 1:
            return f"{value:.2f} s"
        if value >= 1e-3:
            return f"{value * 1e3:.2f} ms"
        return f"{value * 1e6:.2f} µs"
    if value >= 100 or value == int(value):
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}"


def show(measure: Measure) -> str:
    text = fmt(measure.median, measure.unit)
    if measure.cap is not None and measure.capped * 2 > len(measure.samples):
        return f"> {fmt(measure.cap, measure.unit)}"
    return text


def table(rows: Sequence[Row]) -> str:
    """The comparison table, one line per row, under a line naming each group."""
    header = ("case", "gracestop", "compared with", "", "ratio (min-max)", "verdict")
    lines: list[tuple[str, ...] | str] = []
    group = None
    for row in rows:
        if row.group != group:
            group = row.group
            lines.append(f"[{group}]")
        ratios = row.ratios()
        ratio = (
            f"{row.ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            if row.ratio is not None and math.isfinite(row.ratio)
            else "-"
        )
        verdict = row.verdict if row.kind == "peer" else f"{row.verdict} (baseline)"
        lines.append(("  " + row.case, show(row.a), row.b.name, show(row.b), ratio, verdict))
    cells = [header, *(line for line in lines if isinstance(line, tuple))]
    widths = [max(len(cell[i]) for cell in cells) for i in range(len(header))]

    def join(cell: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip()

    out = [join(header), "  ".join("-" * w for w in widths)]
    out += [line if isinstance(line, str) else join(line) for line in lines]
    return "\n".join(out)


def summary(rows: Sequence[Row]) -> str:
    """One line: how gracestop fared against the peers (baseline rows left out)."""
    peers = [row for row in rows if row.kind == "peer"]
    counts = {verdict: sum(row.verdict == verdict for row in peers) for verdict in VERDICTS}
    behind = [f"{row.group}: {row.case}" for row in peers if row.verdict == "behind"]
    text = (
        f"against the peers: {counts['ahead']} ahead, {counts['level']} level, "
        f"{counts['behind']} behind (of {len(peers)} rows)"
    )
    return text + "".join(f"\n  behind: {name}" for name in behind)


def cli(run: Callable[[bool], list[Row]], doc: str | None) -> None:
    """The command line of one benchmark module: ``python benchmarks/NAME.py [--smoke]``.

    Prints the module's rows as a table, then each row's note; ``run.py`` runs them
    all and writes the JSON.
    """
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="run briefly")
    args = parser.parse_args()
    rows = run(args.smoke)
    print(table(rows))
    for row in rows:
        if row.note:
            print(f"- {row.group} / {row.case}: {row.note}")


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def write_results(rows: Sequence[Row], *, smoke: bool, path: Path = RESULTS) -> None:
    """Write ``rows`` to ``path`` as results.json (atomically)."""
    from gracestop import __version__

    document = {
        "schema": SCHEMA,
        "mode": "smoke" if smoke else "full",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "gracestop": __version__,
        "machine": machine(),
        "argv": sys.argv[1:],
        "rows": [row.to_json() for row in rows],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
