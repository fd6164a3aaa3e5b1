"""The application's top-level conftest.py: gracestop's fixtures, and both backends."""

from __future__ import annotations

import pytest

pytest_plugins = ["gracestop.testing"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
