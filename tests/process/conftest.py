"""Fixtures for the real-signal subprocess tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from _harness import Child


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    """Start children with ``spawn(scenario, backend, *extra)``; all are killed at teardown."""
    children: list[Child] = []

    def start(scenario: str, backend: str, *extra: str) -> Child:
        child = Child(scenario, backend, *extra)
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()
