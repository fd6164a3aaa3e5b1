"""gracestop.run(): a signal that comes once the shutdown has finished, while the
process exits, does not change its exit status; a further one still ends it.

The ``exiting`` child holds its exit at a known point (as run()'s SystemExit
goes up, or in an atexit callback) until the parent writes ``go``, so each
signal lands exactly where the test means it to.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from _harness import BACKENDS, Child

pytestmark = pytest.mark.process

Spawn = Callable[..., Child]

backends = pytest.mark.parametrize("backend", BACKENDS)
IGNORED = r"^gracestop: SIG(TERM|INT) after the shutdown had finished: ignored"


def shut_down(spawn: Spawn, backend: str, where: str) -> Child:
    child = spawn("exiting", backend, where)
    child.expect(r"^READY$")
    child.signal(signal.SIGTERM)
    child.expect(r"^HOOK shutdown$")
    child.expect(rf"^EXITING {where}$")
    return child


@backends
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_late_signal_is_ignored_and_the_status_stays_zero(
    spawn: Spawn, backend: str, sig: signal.Signals
) -> None:
    child = shut_down(spawn, backend, "run")
    child.signal(sig)
    child.expect_err(IGNORED)
    child.send_line("go")
    rc, out, err = child.wait()
    assert rc == 0, err
    assert out.splitlines()[-1] == "GO go"
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err


@backends
def test_a_further_late_signal_ends_the_process(spawn: Spawn, backend: str) -> None:
    child = shut_down(spawn, backend, "run")
    child.signal(signal.SIGTERM)
    child.expect_err(IGNORED)
    child.signal(signal.SIGTERM)
    rc, out, err = child.wait()
    assert rc == -signal.SIGTERM, err
    assert "GO" not in out


@backends
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signals_are_ignored_during_the_interpreters_last_clean_up(
    spawn: Spawn, backend: str, sig: signal.Signals
) -> None:
    child = shut_down(spawn, backend, "atexit")
    # Python would give the default action back to these signals in its final
    # clean-up: ignored by the OS from run()'s atexit callback on.
    child.signal(sig)
    child.signal(sig)
    child.send_line("go")
    rc, out, err = child.wait()
    assert rc == 0, err
    assert out.splitlines()[-1] == "GO go"
    assert "KeyboardInterrupt" not in err
