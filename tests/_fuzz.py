"""Hypothesis profiles for the fuzz tests, chosen by ``GRACESTOP_FUZZ_PROFILE``.

``ci`` (the default) keeps the fuzz tests to a few seconds each and keeps no example
database, so nothing is written to the work tree. ``long`` runs many more examples
and keeps its database under the temporary directory (or ``GRACESTOP_FUZZ_DB``), so
that a failure found there is replayed first on the next run::

    GRACESTOP_FUZZ_PROFILE=long .venv/bin/python -m pytest --timeout=0 \\
        tests/test_fuzz_config.py tests/test_coordinator_state_machine.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

__all__ = ["LONG", "PROFILE", "fuzz_settings"]

PROFILE = os.environ.get("GRACESTOP_FUZZ_PROFILE", "ci").strip().lower() or "ci"
if PROFILE not in ("ci", "long"):
    raise ValueError(f"GRACESTOP_FUZZ_PROFILE must be 'ci' or 'long'; got {PROFILE!r}")
LONG = PROFILE == "long"

settings.register_profile(
    "gracestop-fuzz-ci",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "gracestop-fuzz-long",
    deadline=None,
    database=DirectoryBasedExampleDatabase(
        os.environ.get("GRACESTOP_FUZZ_DB")
        or str(Path(tempfile.gettempdir()) / "gracestop-hypothesis")
    ),
    suppress_health_check=[HealthCheck.too_slow],
)
_BASE = settings.get_profile(f"gracestop-fuzz-{PROFILE}")


def fuzz_settings(ci: int, long: int, **extra: Any) -> settings:
    """Settings of one fuzz test: *ci* examples by default, *long* in the long profile.

    The profile is applied to these tests only: the global hypothesis settings, which
    other test modules rely on, stay as they are.
    """
    return settings(_BASE, max_examples=long if LONG else ci, **extra)
