"""The documentation's claims point at things that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# `tests/...py` or `tests/...py::test_name`, as the pages name the tests behind a claim.
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")
PAGES = ["guarantees.md", "why-holds.md", "why-watchdog.md"]


def references(page: str) -> list[tuple[str, str | None]]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return [(path, name or None) for path, name in REFERENCE.findall(text)]


@pytest.mark.parametrize("page", PAGES)
def test_every_test_a_page_names_exists(page: str) -> None:
    missing = []
    for path, name in references(page):
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
        elif name and not re.search(
            rf"^(async )?def {name}\(", file.read_text(encoding="utf-8"), re.M
        ):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/{page} names tests that do not exist: {missing}"


def test_every_guarantee_names_its_tests() -> None:
    text = (DOCS / "guarantees.md").read_text(encoding="utf-8")
    guarantees = re.split(r"^### ", text.split("## Benchmarks")[0], flags=re.M)[1:]
    assert len(guarantees) >= 8
    for section in guarantees:
        title = section.splitlines()[0]
        assert REFERENCE.search(section), f"guarantee {title!r} names no test"
