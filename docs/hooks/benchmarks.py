"""mkdocs hook: the benchmark tables of "Guarantees and benchmarks", from results.json.

A page that contains the marker ``<!-- gracestop-benchmarks -->`` gets it replaced by
tables rendered from ``benchmarks/results.json`` (schema ``gracestop-bench/1``, written
by ``benchmarks/run.py``), so the figures on the site are always those of the last run
checked in. A file that is missing, unreadable or of another schema fails the build
with a message that says how to make one, rather than publishing a page without its
numbers.

``render(document)`` is a plain function of the parsed JSON, tested on its own
(``tests/test_docs_benchmarks.py``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MARKER = "<!-- gracestop-benchmarks -->"
ROOT = Path(__file__).resolve().parents[2]
# The schema this page knows how to render: pinned here on purpose, so that a new
# schema written by the runner fails the build rather than rendering wrongly.
SCHEMA = "gracestop-bench/1"


def _load_bench() -> Any:
    """``benchmarks/_bench.py``: the site shows figures as the runner prints them."""
    spec = importlib.util.spec_from_file_location(
        "_gracestop_bench", ROOT / "benchmarks" / "_bench.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module is executed.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_bench = _load_bench()
fmt = _bench.fmt
RESULTS: Path = _bench.RESULTS


class BenchmarkResultsError(ValueError):
    """results.json is missing, unreadable, or not a ``gracestop-bench/1`` document."""


def load(path: Path | None = None) -> dict[str, Any]:
    """Read and check the results file (``RESULTS`` by default).

    Raises :class:`BenchmarkResultsError`, saying what is wrong and how to fix it.
    """
    path = RESULTS if path is None else path
    remedy = "run `make bench` (or `make bench-smoke` for a quick check) to write it"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchmarkResultsError(f"{path} does not exist; {remedy}") from None
    except OSError as exc:
        raise BenchmarkResultsError(f"cannot read {path}: {exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise BenchmarkResultsError(f"{path} is not valid JSON ({exc}); {remedy}") from None
    if not isinstance(document, dict):
        raise BenchmarkResultsError(f"{path} holds a {type(document).__name__}, not an object")
    schema = document.get("schema")
    if schema != SCHEMA:
        raise BenchmarkResultsError(
            f"{path} has schema {schema!r}; this page renders {SCHEMA!r} only; {remedy}"
        )
    return document


def _require(
    mapping: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str
) -> Any:
    value = mapping.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BenchmarkResultsError(f"{where}: {key!r} is missing or not {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _figure(measure: Mapping[str, Any], where: str) -> tuple[str, bool]:
    """The figure shown for one side, and whether it is shown as capped."""
    unit = _require(measure, "unit", str, where)
    median = _require(measure, "median", (int, float), where)
    capped = measure.get("capped") or 0
    cap = measure.get("cap")
    samples = measure.get("samples")
    runs = len(samples) if isinstance(samples, list) else None
    if capped and isinstance(cap, (int, float)) and (runs is None or capped * 2 > runs):
        # Most runs hit the cap: the median is the cap itself, not a measurement.
        return f"> {fmt(cap, unit)}", True
    text = fmt(median, unit)
    if capped and runs:
        text += f" ({capped} of {runs} runs capped)"
    return text, False


def _ratio(row: Mapping[str, Any], a_capped: bool, b_capped: bool) -> str:
    ratio, low, high = row.get("ratio"), row.get("ratio_min"), row.get("ratio_max")
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not math.isfinite(ratio):
        return "-"
    # A capped side makes the ratio a bound: gracestop/other with other capped
    # (really longer) is at most this, with gracestop capped at least this.
    bound = "≤ " if b_capped and not a_capped else "≥ " if a_capped and not b_capped else ""
    text = f"{bound}{ratio:.2f}"
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        text += f" ({low:.2f}-{high:.2f})"
    return text


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _when(created: object) -> str:
    """``2026-11-29T00:55:55Z`` as ``2026-11-29 00:55 UTC``; anything else as it is."""
    text = str(created) if created else "an unknown date"
    if len(text) == 20 and text[10] == "T" and text.endswith("Z"):
        return f"{text[:10]} {text[11:16]} UTC"
    return text


def _header(document: Mapping[str, Any]) -> list[str]:
    mode = document.get("mode")
    machine = document.get("machine")
    lines: list[str] = []
    if mode != "full":
        lines += [
            '!!! warning "Smoke run: not a measurement"',
            f"    These figures come from a `{mode}` run (`make bench-smoke`): a few short"
            " rounds per row, to check that every benchmark runs, on a machine that may"
            " have been busy. Read them as a demonstration, not as measurements;"
            " `make bench` replaces them with a full run.",
            "",
        ]
    about = [f"mode **{mode}**", f"run on {_when(document.get('created'))}"]
    if isinstance(machine, Mapping):
        parts = [
            f"{machine.get('implementation', 'Python')} {machine.get('python', '?')}",
            str(machine.get("platform", "unknown platform")),
        ]
        if machine.get("cpus"):
            parts.append(f"{machine['cpus']} CPUs")
        about.append(", ".join(parts))
    if document.get("gracestop"):
        about.append(f"gracestop {document['gracestop']}")
    lines += ["Figures from `benchmarks/results.json`: " + "; ".join(about) + ".", ""]
    return lines


def render(document: Mapping[str, Any]) -> str:
    """The benchmark section as Markdown: a header, then one table per group of rows.

    Every row shows both figures (medians of paired rounds), the median of the
    per-round ratios gracestop/other with its min-max, and the verdict. Groups keep
    the order of their first row in the file.
    """
    if document.get("schema") != SCHEMA:
        raise BenchmarkResultsError(
            f"schema {document.get('schema')!r}; this page renders {SCHEMA!r} only"
        )
    rows = _require(document, "rows", list, "results.json")
    groups: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise BenchmarkResultsError(f"row {index} is not an object")
        group = _require(row, "group", str, f"row {index}")
        groups.setdefault(group, []).append((index, row))
    lines = _header(document)
    if not groups:
        lines.append("*No benchmark rows in this file yet.*")
        return "\n".join(lines) + "\n"
    for group, members in groups.items():
        lines += _group(group, members)
    return "\n".join(lines).rstrip("\n") + "\n"


def _group(group: str, members: Sequence[tuple[int, Mapping[str, Any]]]) -> list[str]:
    betters = {row.get("better") for _, row in members}
    lines = [f"### {group}", ""]
    if betters in ({"lower"}, {"higher"}):
        lines += [f"{betters.pop().capitalize()} is better.", ""]
    lines += [
        "| case | gracestop | compared with | its figure | ratio (min-max) | verdict |",
        "|---|---:|---|---:|---:|---|",
    ]
    notes: list[str] = []
    for index, row in members:
        where = f"row {index} ({group})"
        case = _require(row, "case", str, where)
        a = _require(row, "gracestop", Mapping, where)
        b = _require(row, "other", Mapping, where)
        a_text, a_capped = _figure(a, f"{where} gracestop")
        b_text, b_capped = _figure(b, f"{where} other")
        verdict = _require(row, "verdict", str, where)
        if row.get("kind") == "baseline":
            verdict += " (baseline)"
        note = row.get("note")
        if isinstance(note, str) and note:
            notes.append(f"{case}: {note}")
        cells = [
            case,
            a_text,
            str(b.get("name", "other")),
            b_text,
            _ratio(row, a_capped, b_capped),
            verdict,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    if notes:
        lines += [f"- {_cell(n)}" for n in notes] + [""]
    return lines


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """mkdocs event: replace the marker with the tables; fail the build if they cannot be made."""
    if MARKER not in markdown:
        return markdown
    from mkdocs.exceptions import PluginError

    try:
        section = render(load())
    except BenchmarkResultsError as exc:
        raise PluginError(f"benchmark tables: {exc}") from None
    return markdown.replace(MARKER, section)
