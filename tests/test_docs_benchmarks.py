"""The mkdocs hook that renders benchmarks/results.json into "Guarantees and benchmarks"."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HOOK = Path(__file__).resolve().parent.parent / "docs" / "hooks" / "benchmarks.py"


def _load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gracestop_docs_benchmarks_hook", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


hook = _load_hook()


def measure(name: str, samples: list[float], *, unit: str = "s", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "unit": unit,
        "median": sorted(samples)[len(samples) // 2],
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
        "capped": 0,
        "cap": None,
        **extra,
    }


def row(
    group: str, case: str, a: dict[str, Any], b: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "group": group,
        "case": case,
        "kind": "peer",
        "better": "lower",
        "gracestop": a,
        "other": b,
        "ratio": 0.5,
        "ratio_min": 0.25,
        "ratio_max": 0.75,
        "verdict": "ahead",
        "note": "",
        **extra,
    }


def document(rows: list[dict[str, Any]], *, mode: str = "full") -> dict[str, Any]:
    return {
        "schema": "gracestop-bench/1",
        "mode": mode,
        "created": "2026-11-29T00:55:55Z",
        "gracestop": "1.2.3",
        "machine": {
            "python": "3.12.1",
            "implementation": "CPython",
            "platform": "Linux-x86_64",
            "cpus": 8,
        },
        "argv": [],
        "rows": rows,
    }


def table_lines(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]


def test_a_full_run_names_its_date_machine_and_version_and_has_no_smoke_warning() -> None:
    rows = [row("exit", "aiorun", measure("gracestop", [1.0]), measure("aiorun", [2.0]))]
    out = hook.render(document(rows))
    assert "Smoke run" not in out
    assert "mode **full**" in out
    assert "2026-11-29 00:55 UTC" in out
    assert "CPython 3.12.1, Linux-x86_64, 8 CPUs" in out
    assert "gracestop 1.2.3" in out


def test_a_smoke_run_is_labelled_as_not_a_measurement() -> None:
    rows = [row("exit", "aiorun", measure("gracestop", [1.0]), measure("aiorun", [2.0]))]
    out = hook.render(document(rows, mode="smoke"))
    assert out.startswith('!!! warning "Smoke run: not a measurement"')
    assert "mode **smoke**" in out


def test_each_row_shows_both_figures_the_ratio_with_its_range_and_the_verdict() -> None:
    a = measure("gracestop", [0.0005, 0.0007, 0.0009])
    b = measure("bare anyio receiver", [0.0001, 0.0002, 0.0003])
    rows = [
        row(
            "signal -> first hook",
            "trio",
            a,
            b,
            kind="baseline",
            verdict="behind",
            ratio=3.5,
            ratio_min=3.0,
            ratio_max=5.0,
        ),
    ]
    out = hook.render(document(rows))
    assert "### signal -> first hook" in out
    assert "Lower is better." in out
    assert table_lines(out) == [
        "| case | gracestop | compared with | its figure | ratio (min-max) | verdict |",
        "| trio | 700.00 µs | bare anyio receiver | 200.00 µs | 3.50 (3.00-5.00) "
        "| behind (baseline) |",
    ]


def test_rows_are_grouped_in_the_order_of_their_first_appearance() -> None:
    g, o = measure("gracestop", [1.0]), measure("peer", [2.0])
    rows = [row("B", "one", g, o), row("A", "two", g, o), row("B", "three", g, o)]
    out = hook.render(document(rows))
    assert out.index("### B") < out.index("### A")
    cases = [line.split(" | ")[0] for line in table_lines(out) if not line.startswith("| case")]
    assert cases == ["| one", "| three", "| two"]


def test_a_side_capped_in_most_runs_shows_the_cap_and_the_ratio_as_a_bound() -> None:
    g = measure("gracestop", [1.2, 1.3, 1.4])
    peer = measure("aiorun", [15.0, 15.0, 15.0], capped=3, cap=15.0)
    out = hook.render(document([row("exit", "blocking hook", g, peer, ratio=0.087)]))
    (line,) = table_lines(out)[1:]
    assert "| 1.30 s | aiorun | > 15.00 s | ≤ 0.09 (0.25-0.75) | ahead |" in line


def test_gracestop_capped_makes_the_ratio_a_lower_bound() -> None:
    g = measure("gracestop", [3.0, 3.0, 3.0], capped=2, cap=3.0)
    peer = measure("peer", [1.0, 1.0, 1.0])
    out = hook.render(document([row("exit", "x", g, peer, ratio=3.0, verdict="behind")]))
    assert "| > 3.00 s | peer | 1.00 s | ≥ 3.00 (0.25-0.75) | behind |" in out


def test_a_side_capped_in_a_minority_of_runs_shows_its_median_and_how_many() -> None:
    peer = measure("uvicorn", [2.0, 4.0, 15.0], capped=1, cap=15.0)
    out = hook.render(document([row("exit", "stream", measure("gracestop", [1.0]), peer)]))
    assert "| uvicorn | 4.00 s (1 of 3 runs capped) | 0.50 (0.25-0.75) |" in out


def test_other_units_notes_missing_ratios_and_pipes_in_text() -> None:
    g = measure("gracestop", [0.0, 0.0], unit="requests")
    peer = measure("plain | uvicorn", [201.0, 210.0], unit="requests")
    rows = [
        row(
            "failed requests",
            "drain",
            g,
            peer,
            ratio=None,
            ratio_min=None,
            ratio_max=None,
            note="9 clients, 1 s of load after SIGTERM",
        ),
    ]
    out = hook.render(document(rows))
    assert "| drain | 0 requests | plain \\| uvicorn | 210 requests | - | ahead |" in out
    assert "- drain: 9 clients, 1 s of load after SIGTERM" in out


def test_higher_is_better_is_said() -> None:
    g, o = measure("gracestop", [900.0], unit="req/s"), measure("bare", [1000.0], unit="req/s")
    out = hook.render(document([row("throughput", "asgi", g, o, better="higher")]))
    assert "Higher is better." in out
    assert "| 900 req/s | bare | 1,000 req/s |" in out


def test_a_file_without_rows_says_so() -> None:
    out = hook.render(document([]))
    assert "No benchmark rows" in out


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("not a list", "'rows' is missing or not list"),
        (["not an object"], "row 0 is not an object"),
        ([{"case": "x"}], "row 0: 'group' is missing or not str"),
        ([{"group": "g", "case": "x", "gracestop": {}, "other": {}}], "'unit' is missing"),
    ],
)
def test_a_malformed_document_fails_with_the_row_and_key(rows: Any, message: str) -> None:
    doc = document([])
    doc["rows"] = rows
    with pytest.raises(hook.BenchmarkResultsError, match=message.replace("(", r"\(")):
        hook.render(doc)


def test_load_reads_a_results_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document([])), encoding="utf-8")
    assert hook.load(path)["schema"] == "gracestop-bench/1"


def test_load_refuses_a_missing_file_saying_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(hook.BenchmarkResultsError, match=r"does not exist; run `make bench`"):
        hook.load(tmp_path / "results.json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema": "gracestop-bench/2", "rows": []}', "has schema 'gracestop-bench/2'"),
        ('{"rows": []}', "has schema None"),
        ("[1, 2]", "holds a list, not an object"),
        ("{not json", "is not valid JSON"),
    ],
)
def test_load_refuses_another_schema_or_broken_json(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "results.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(hook.BenchmarkResultsError, match=message):
        hook.load(path)


def test_the_page_hook_replaces_the_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "results.json"
    rows = [row("exit", "aiorun", measure("gracestop", [1.0]), measure("aiorun", [2.0]))]
    path.write_text(json.dumps(document(rows)), encoding="utf-8")
    monkeypatch.setattr(hook, "RESULTS", path)
    page = f"# Benchmarks\n\n{hook.MARKER}\n\nAfter.\n"
    out = hook.on_page_markdown(page, page=None, config=None, files=None)
    assert hook.MARKER not in out
    assert "| aiorun | 1.00 s | aiorun | 2.00 s | 0.50 (0.25-0.75) | ahead |" in out
    assert out.endswith("\n\nAfter.\n")
    # A page without the marker is left alone, and the file is not even read.
    monkeypatch.setattr(hook, "RESULTS", tmp_path / "missing.json")
    assert hook.on_page_markdown("# Other\n", page=None, config=None, files=None) == "# Other\n"


def test_the_page_hook_fails_the_build_when_the_file_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mkdocs.exceptions import PluginError

    monkeypatch.setattr(hook, "RESULTS", tmp_path / "results.json")
    with pytest.raises(PluginError, match=r"benchmark tables: .*results\.json does not exist"):
        hook.on_page_markdown(hook.MARKER, page=None, config=None, files=None)


def test_the_checked_in_results_render() -> None:
    # Whatever rows the repository holds right now: the file parses and every row renders.
    results = hook.load()
    out = hook.render(results)
    assert len(table_lines(out)) >= len(results["rows"])
