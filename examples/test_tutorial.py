"""Tests of the tutorial's job service (tutorial.py), on asyncio and on trio."""

import sqlite3
from pathlib import Path

import anyio
import pytest
from tutorial import JobStore, serve

from gracestop.testing import open_coordinator, shut_down

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_every_job_accepted_is_done_before_the_database_closes(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    accepted: list[int] = []
    done: list[int] = []
    # The same timings as the service: the wrap-up window must cover the drain.
    async with (
        open_coordinator(wrap_up_time=3, wait_time=5) as coord,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, coord, store, accepted, done)
        with anyio.fail_after(5):
            while len(done) < 3:
                await anyio.sleep(0.05)
        report = await shut_down(coord)

    assert report.ok, report.render()
    assert [r.name for r in report.results] == ["stop-intake", "close-db"]
    assert done == accepted  # nothing accepted was left undone
    with pytest.raises(sqlite3.ProgrammingError):
        store.save(0)  # close-db has closed the database
