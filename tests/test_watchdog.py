"""The watchdog thread: armed, disarmed, and firing in a real subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from gracestop._watchdog import Watchdog


def test_arm_keeps_the_earliest_deadline_and_stop_disarms() -> None:
    fired: list[str] = []
    dog = Watchdog(exit_code=9, describe_pending=lambda: fired.append("called") or "")
    dog.start()
    assert not dog.armed
    far = time.monotonic() + 60
    dog.arm(far)
    dog.arm(far + 10)
    assert dog.armed
    assert dog.deadline == far
    dog.stop()
    assert not dog.armed
    assert dog.deadline is None
    dog._thread.join(2)
    assert not dog._thread.is_alive()
    assert fired == []


@pytest.mark.process
def test_fires_with_the_pending_work_and_every_stack_while_the_main_thread_is_stuck() -> None:
    code = textwrap.dedent(
        """
        import time
        from gracestop._watchdog import Watchdog

        dog = Watchdog(exit_code=42, describe_pending=lambda: "pending: hook stuck-one")
        dog.start()
        print("armed", flush=True)
        dog.arm(time.monotonic() + 0.2)
        time.sleep(30)  # the stuck event loop
        print("never printed", flush=True)
        """
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=10, check=False
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 42
    assert elapsed < 5
    assert proc.stdout == "armed\n"
    assert "the process outlived its shutdown deadline" in proc.stderr
    assert "pending: hook stuck-one" in proc.stderr
    # faulthandler's dump: every thread, the main one stuck in the sleep.
    assert 'File "<string>", line 9 in <module>' in proc.stderr
    assert "Thread 0x" in proc.stderr


@pytest.mark.process
@pytest.mark.parametrize("variant", ["raises", "hangs"])
def test_before_exit_can_neither_stop_nor_delay_the_exit_for_long(variant: str) -> None:
    code = textwrap.dedent(
        f"""
        import threading, time
        from gracestop._watchdog import Watchdog

        def before_exit():
            print("before-exit", flush=True)
            if {variant!r} == "raises":
                raise OSError("disk full")
            threading.Event().wait()  # a hung file system

        dog = Watchdog(exit_code=7, describe_pending=lambda: "", before_exit=before_exit)
        dog.start()
        dog.arm(time.monotonic() + 0.1)
        time.sleep(30)
        """
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=10, check=False
    )
    assert proc.returncode == 7, proc.stderr
    assert time.monotonic() - started < 6  # the limit is 1 s; a busy machine gets slack
    assert proc.stdout == "before-exit\n"
    if variant == "raises":
        assert "could not finish before the exit: OSError('disk full')" in proc.stderr
    else:
        assert "gave up waiting 1s for the report file" in proc.stderr
