"""The harness that runs the code of the docs (the top-level ``conftest.py``).

Each test writes a small page into a fresh directory beside a copy of that
``conftest.py`` and runs ``pytest`` on it in a child process: the page's blocks
must run on both backends, a service block must get a real SIGTERM, and a block
or a service that goes wrong must fail the run, saying why.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.process

CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"
HARNESS = Path(__file__).resolve().parent / "process" / "_harness.py"
INI = """\
[pytest]
addopts = -p no:cacheprovider -ra
testpaths = docs
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
timeout = 60
"""

GOOD_PAGE = """\
# A page

<!-- invisible-code-block: python
import anyio
import sniffio

import gracestop
-->

```python
async def main() -> None:
    async with gracestop.ShutdownCoordinator(signals=()) as coord:
        coord.shutdown("deploy")
    print("program on", sniffio.current_async_library())

anyio.run(main)
```

```python
async with gracestop.ShutdownCoordinator(signals=()) as coord:
    backend = sniffio.current_async_library()
```

<!-- invisible-code-block: python
assert backend == __backend__, (backend, __backend__)
assert coord.report.ok and coord.report.trigger.kind == "exit"
-->

<!-- service:
async def serve(coord):
    await anyio.sleep_forever()
-->
```python
import anyio
import gracestop

async def main() -> None:
    async with gracestop.ShutdownCoordinator() as coord:
        await serve(coord)

anyio.run(main)
```
"""

FAILING_SERVICE = """\
# A service whose cleanup fails

<!-- service: -->
```python
import anyio
import gracestop

async def main() -> None:
    async with gracestop.ShutdownCoordinator() as coord:

        @coord.on_shutdown(name="close-db")
        async def close_db() -> None:
            await database.close()  # never defined

        await anyio.sleep_forever()

anyio.run(main)
```
"""

FAILING_BLOCK = """\
# A block that is wrong

```python
import gracestop

gracestop.ShutdownConfig(wait_time=-1)
```
"""


def run_page(tmp_path: Path, page: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    # The pipe reader it shares with the process tests, where it looks for it.
    (tmp_path / "tests" / "process").mkdir(parents=True)
    shutil.copy(HARNESS, tmp_path / "tests" / "process" / "_harness.py")
    (tmp_path / "pytest.ini").write_text(INI, encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text(page, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:xdist"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_blocks_run_in_order_on_both_backends_and_services_get_a_sigterm(
    tmp_path: Path,
) -> None:
    done = run_page(tmp_path, GOOD_PAGE)
    assert done.returncode == 0, done.stdout + done.stderr
    # Six examples (blocks and directives) on each backend; none skipped.
    assert "= 12 passed in" in done.stdout, done.stdout
    for backend in ("asyncio", "trio"):
        assert done.stdout.count(f"docs/page.md::sybil:{backend},") == 6, done.stdout


def test_a_service_whose_shutdown_is_not_ok_fails(tmp_path: Path) -> None:
    done = run_page(tmp_path, FAILING_SERVICE)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 failed, 2 passed" in done.stdout, done.stdout
    assert "service block page.md, line 4: the shutdown report is not ok" in done.stdout
    # The child's own output comes with the failure.
    assert "NameError: name 'database' is not defined" in done.stdout
    assert "SERVICE triggered signal SIGTERM" in done.stdout


def test_a_block_that_raises_fails_at_its_line(tmp_path: Path) -> None:
    done = run_page(tmp_path, FAILING_BLOCK)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 failed" in done.stdout, done.stdout
    assert "wait_time must be a positive, finite duration; got -1" in done.stdout
    assert "docs/page.md:6: " in done.stdout, done.stdout  # the line in the page
