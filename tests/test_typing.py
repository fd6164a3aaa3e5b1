"""The typing contract: the py.typed marker, and the type-checked API file that pytest
must neither collect nor import (mypy and pyright check it in ``make typecheck``)."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

API_FILE = Path(__file__).parent / "typing" / "api.py"

# Collects the folder in a fresh interpreter, then exits 10 if the file was imported,
# else with pytest's status (5: no tests collected).
_COLLECT = """
import sys
from pathlib import Path

import pytest

status = pytest.main(["--collect-only", "-q", sys.argv[1]])
target = Path(sys.argv[2]).resolve()
imported = [
    name
    for name, module in list(sys.modules.items())
    if getattr(module, "__file__", None) and Path(module.__file__).resolve() == target
]
print("imported:", imported)
sys.exit(10 if imported else int(status))
"""


def test_package_is_marked_typed() -> None:
    marker = resources.files("gracestop").joinpath("py.typed")
    assert marker.is_file()


def test_api_file_is_neither_collected_nor_imported() -> None:
    assert API_FILE.is_file()
    proc = subprocess.run(
        [sys.executable, "-c", _COLLECT, str(API_FILE.parent), str(API_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 5, output
    assert "no tests collected" in proc.stdout, output
    assert "imported: []" in proc.stdout, output
