"""Testing an application's shutdown hooks with ``gracestop.testing``.

An application's own test module, as it would sit in its test suite. The
``gracestop_coordinator`` and ``gracestop_testing`` fixtures come from gracestop's
pytest plugin, enabled in ``conftest.py``; the tests run on asyncio and on trio
through anyio's pytest plugin, and every shutdown takes a fraction of a second,
with no signal handlers and no watchdog.

    python -m pytest examples/testing_app
"""

from __future__ import annotations

import anyio
import pytest

import gracestop
from gracestop.testing import open_coordinator, shut_down

pytestmark = pytest.mark.anyio


class Pool:
    """Stands in for the application's database pool."""

    def __init__(self) -> None:
        self.closed = False
        self.in_flight = 0

    async def query(self) -> str:
        if self.closed:
            raise RuntimeError("sql: database is closed")
        self.in_flight += 1
        try:
            await anyio.sleep(0.05)
            return "row"
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        self.closed = True


def install(coord: gracestop.ShutdownCoordinator, pool: Pool) -> None:
    """The application's wiring: the pool closes in the shutdown phase."""
    coord.add_shutdown_listener(pool.close, name="close-pool")


async def test_the_pool_closes_after_the_request_in_flight(
    gracestop_coordinator: gracestop.ShutdownCoordinator,
) -> None:
    pool = Pool()
    install(gracestop_coordinator, pool)
    results: list[str] = []
    in_flight = anyio.Event()

    async def request() -> None:
        async with gracestop_coordinator.hold("request"):
            in_flight.set()
            results.append(await pool.query())

    async with anyio.create_task_group() as tg:
        tg.start_soon(request)
        await in_flight.wait()
        report = await shut_down(gracestop_coordinator)

    assert results == ["row"]  # the request finished before the pool closed
    assert pool.closed
    assert report.ok, report.render()
    assert [r.name for r in report.results] == ["close-pool"]


async def test_a_hook_that_hangs_is_cut_at_the_deadline() -> None:
    async with open_coordinator(wait_time=1, wrap_up_time=0.2) as coord:

        @coord.on_shutdown(name="hang")
        async def hang() -> None:
            await anyio.sleep_forever()

        report = await shut_down(coord)

    assert report.forced
    assert report.by_status(gracestop.HookStatus.TIMED_OUT)[0].name == "hang"


def test_testing_mode_makes_every_coordinator_fast(gracestop_testing: None) -> None:
    coord = gracestop.ShutdownCoordinator(hooks=gracestop.Hooks())
    assert coord.config.wait_time == 2.0
    assert coord.config.signals == ()  # Ctrl-C stays with the test runner
    assert coord.config.hard_exit is False  # no watchdog can end the test run
