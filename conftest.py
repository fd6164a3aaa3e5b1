"""The code in the documentation runs as part of the test suite (Sybil).

Every ```` ```python ```` block in ``docs/*.md`` and ``README.md`` is executed by
``pytest``, so an example cannot rot. The blocks of one page run in order, in one
namespace per page, and each page runs twice: once with anyio's default backend
(asyncio) and once with trio (the test ids say ``sybil:asyncio`` or ``sybil:trio``).
With ``-n``, each page stays on one worker. Blocks in other languages (``console``,
``yaml``, ``ini``...) are not run.

How to write a block that runs
==============================

* **Prefer a complete program** that a reader can copy as it is: imports included,
  ``anyio.run(main)`` at the end, nothing left undefined. On the trio pass,
  ``anyio.run`` and ``gracestop.run`` default to ``backend="trio"``; a block that
  passes ``backend=`` runs on that backend in both passes. A block that ends the
  process with status 0 (``gracestop.run``) passes.
* **A fragment may use** ``await``, ``async with`` and ``async for`` **at the top
  level** (``async with gracestop.ShutdownCoordinator() as coord: ...``): such a
  block runs in an event loop of its own, on the backend of the pass. Names it
  binds stay in the page's namespace for the next blocks, but an event loop does
  not outlive its block: do not carry a running coordinator from one block to the
  next (an un-entered one is fine).
* **Names a fragment takes for granted** (``database``, ``flush_queue``, ``coord``)
  come from an invisible block before it, and what it should have done is checked
  by one after it. Invisible blocks run like the others and are not shown on the
  site::

      <!-- invisible-code-block: python
      async def flush_queue() -> None: ...
      -->

* **A block that serves until SIGTERM** (``await anyio.sleep_forever()``, a server)
  is marked with a ``service`` comment right before it. It then runs in a child
  process instead (``python -u``, in a temporary directory, the gracestop log at
  INFO on stderr, top-level ``await`` allowed): the test waits until a coordinator
  has been entered, sends a real ``SIGTERM``, and expects the shutdown to be
  triggered by that signal, its report to be ``ok``, the exit status 0 and no
  traceback. Every wait is bounded and fails with what the child printed::

      <!-- service: -->
      <!-- service: uvicorn=main:app status=-15 -->
      <!-- service: port=8000 timeout=60
      class Database:
          async def close(self) -> None: ...

      database = Database()
      -->

  The lines after the first are the child's own setup, run before the block (the
  child does not see the page's namespace). ``port=N``: the block binds port ``N``;
  the child gets a free port in its place (and ``127.0.0.1`` in place of
  ``0.0.0.0``), and the test waits until ``GET /readyz`` answers 200 there before
  it sends the signal. ``timeout=S``: the longest the child may take to end after
  the signal (default 30 s). ``status=N``: the exit status expected (default 0).
  ``uvicorn=main:app``: the block is the module ``main``, served by uvicorn's own
  command line (``uvicorn main:app --port <free port>``; asyncio pass only). A
  service block that passes ``backend="asyncio"`` (or ``"trio"``) runs in that pass
  only.
* **Code that runs on asyncio only** (uvicorn, aiohttp) is skipped in the trio pass
  with Sybil's ``skip``, whose condition sees ``__backend__``, the pass::

      <!-- skip: next if(__backend__ == "trio", reason="uvicorn runs on asyncio only") -->
      <!-- skip: start if(__backend__ == "trio", reason="aiohttp runs on asyncio only") -->
      ...
      <!-- skip: end -->

* ``<!-- skip: next "reason" -->`` alone only where running the block is impossible
  here; the reason says why.

Each page runs in a temporary working directory of its own (``__file__`` is the
page's path), and has gracestop's process-wide state to itself: the default hook
registry, the global observers and the testing mode as the suite had them when the
page began, kept for the page between its blocks and put back for the rest of the
suite. Child processes (``subprocess.Popen``) a page leaves in its namespace are
killed when it ends.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tokenize
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import _pytest._code
import anyio
import httpx
import pytest
from sybil import Document, Example, Region, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.example import NotEvaluated
from sybil.integration.pytest import SybilItem
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer

import gracestop
from gracestop import _testing
from gracestop import instrumentation as gi

ROOT = Path(__file__).parent
# The pipe reader the process tests use, for the service blocks' children.
sys.path.append(str(ROOT / "tests" / "process"))

from _harness import _Stream  # noqa: E402

PAGES = ["docs/*.md", "README.md"]
BACKENDS = ("asyncio", "trio")
# Settings of the test run that must not reach the code of the docs.
_RUNNER_ONLY = ("PYTHONWARNINGS", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
_PINNED = re.compile(r"""\bbackend=["'](asyncio|trio)["']""")


# --------------------------------------------------------------- in-process blocks


@contextlib.contextmanager
def default_backend(backend: str) -> Iterator[None]:
    """``anyio.run`` and ``gracestop.run`` default to ``backend`` inside the block."""
    functions: list[Any] = [anyio.run, gracestop.run]
    previous = [fn.__kwdefaults__["backend"] for fn in functions]
    for fn in functions:
        fn.__kwdefaults__["backend"] = backend
    try:
        yield
    finally:
        for fn, value in zip(functions, previous, strict=True):
            fn.__kwdefaults__["backend"] = value


@contextlib.contextmanager
def _chdir(path: str) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


class BlockEvaluator:
    """Runs one block in the page's namespace; top-level ``await`` in an event loop.

    The block runs in the page's own temporary working directory. A block that
    ends the process with status 0 (``gracestop.run``, ``sys.exit(0)``) passes.
    """

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def __call__(self, example: Example) -> None:
        __tracebackhide__ = True
        source = "\n" * (example.line + example.parsed.line_offset) + example.parsed
        code = compile(
            source,
            example.path,
            "exec",
            flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            dont_inherit=True,
        )
        namespace = example.namespace
        try:
            namespace.setdefault("__file__", example.path)
            with (
                default_backend(self.backend),
                _chdir(namespace["__workdir__"]),
                _page_state(namespace),
            ):
                if code.co_flags & inspect.CO_COROUTINE:

                    async def block() -> None:
                        await eval(code, namespace)

                    anyio.run(block, backend=self.backend)
                else:
                    exec(code, namespace)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise AssertionError(f"the block exited with status {exc.code!r}") from exc
        finally:
            namespace.pop("__builtins__", None)


# ------------------------------------------------------------------ service blocks


# Run in the child before the block: the backend of the pass, the gracestop log on
# stderr, and a line on stdout at each step the test waits for.
_PRELUDE = """\
import ast, inspect, logging, sys
import anyio, gracestop
from gracestop import instrumentation as gi

backend, target = sys.argv[1:3]
anyio.run.__kwdefaults__["backend"] = backend
gracestop.run.__kwdefaults__["backend"] = backend
logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")


def announce(event):
    if isinstance(event, gi.CoordinatorEntered):
        print("SERVICE entered", flush=True)
    elif isinstance(event, gi.ShutdownTriggered):
        sig = event.trigger.signal
        print("SERVICE triggered", event.trigger.kind, sig and sig.name, flush=True)
    elif isinstance(event, gi.ShutdownFinished):
        print("SERVICE finished ok=%s" % event.report.ok, flush=True)


gi.set_observers([*gi.get_observers(), announce])
"""
# The block as a program (top-level await allowed).
_RUN_BLOCK = """\
with open(target, encoding="utf-8") as file:
    source = file.read()
namespace = {"__name__": "__main__", "__file__": target}
code = compile(source, target, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
if code.co_flags & inspect.CO_COROUTINE:

    async def block():
        await eval(code, namespace)

    anyio.run(block)
else:
    exec(code, namespace)
"""
# The block as a module served by uvicorn's command line: ``uvicorn module:app``.
_RUN_UVICORN = """\
import uvicorn

sys.argv = ["uvicorn", target, "--port", sys.argv[3]]
uvicorn.main()
"""


def _without_comments(source: str) -> str:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return tokenize.untokenize(t for t in tokens if t.type != tokenize.COMMENT)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _parse_options(arguments: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for word in arguments.split():
        key, sep, value = word.partition("=")
        if not sep or key not in {"port", "timeout", "status", "uvicorn"}:
            raise ValueError(
                f"service: unknown option {word!r} (port=N, timeout=S, status=N, uvicorn=M:A)"
            )
        options[key] = value
    return options


class Service:
    """One service block run in a child process, stopped with a real SIGTERM."""

    def __init__(self, example: Example, options: dict[str, str], setup: str) -> None:
        self.example = example
        self.port = int(options["port"]) if "port" in options else None
        self.timeout = float(options.get("timeout", "30"))
        self.status = int(options.get("status", "0"))
        self.uvicorn = options.get("uvicorn")
        self.setup = setup
        self.where = f"{Path(example.path).name}, line {example.line}"

    def _source(self) -> tuple[str, int | None]:
        source = str(self.example.parsed)
        port = None
        if self.uvicorn is not None:
            port = _free_port()
        elif self.port is not None:
            port = _free_port()
            source = re.sub(rf"\b{self.port}\b", str(port), source)
            source = source.replace("0.0.0.0", "127.0.0.1")
        return f"{self.setup}\n{source}", port

    def run(self, backend: str) -> None:
        if self.uvicorn is not None:
            pinned: str | None = "asyncio"  # uvicorn runs on asyncio only
        else:
            found = _PINNED.search(_without_comments(str(self.example.parsed)))
            pinned = None if found is None else found.group(1)
        if pinned is not None and pinned != backend:
            pytest.skip(f"the block runs on {pinned}: in the {pinned} pass")
        source, port = self._source()
        directory = Path(tempfile.mkdtemp(prefix="gracestop-docs-"))
        try:
            if self.uvicorn is not None:
                module = self.uvicorn.partition(":")[0]
                (directory / f"{module}.py").write_text(source, encoding="utf-8")
                command = [_PRELUDE + _RUN_UVICORN, backend, self.uvicorn, str(port)]
            else:
                (directory / "service.py").write_text(source, encoding="utf-8")
                command = [_PRELUDE + _RUN_BLOCK, backend, "service.py"]
            env = {k: v for k, v in os.environ.items() if k not in _RUNNER_ONLY}
            env = {k: v for k, v in env.items() if not k.startswith("GRACESTOP_")}
            proc = subprocess.Popen(
                [sys.executable, "-u", "-c", *command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=directory,
                env=env,
            )
            try:
                self._drive(proc, port)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _drive(self, proc: subprocess.Popen[str], port: int | None) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = _Stream(proc.stdout, "out"), _Stream(proc.stderr, "err")

        def fail(what: str) -> None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2)  # to tell how it ended, when it is ending
            pytest.fail(
                f"service block {self.where}: {what}\n--- returncode: {proc.poll()}\n"
                f"--- stdout:\n{out.text()}\n--- stderr:\n{err.text()}",
                pytrace=False,
            )

        if out.expect(r"^SERVICE entered$", 20) is None:
            fail("no coordinator entered within 20s")
        if port is not None and not _wait_ready(port, proc, 20):
            fail(f"GET http://127.0.0.1:{port}/readyz did not answer 200 within 20s")
        proc.send_signal(signal.SIGTERM)
        if out.expect(r"^SERVICE triggered signal SIGTERM$", 10) is None:
            fail("the SIGTERM did not trigger the shutdown within 10s")
        try:
            returncode = proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            fail(f"did not exit within {self.timeout}s of the SIGTERM")
        if out.expect(r"^SERVICE finished ok=True$", 5) is None:
            fail("the shutdown report is not ok")
        if returncode != self.status:
            fail(f"exit status {returncode}, expected {self.status}")
        if "Traceback" in err.text():
            fail("a traceback on stderr")


def _wait_ready(port: int, proc: subprocess.Popen[str], timeout: float) -> bool:
    """Poll ``GET /readyz`` until it answers 200, the child exits or time is up."""
    end = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < end and proc.poll() is None:
            try:
                if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    return False


class ServiceParser:
    """``<!-- service: [port=N] [timeout=S] [setup lines] -->``: the next block is a service."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.lexer = DirectiveInHTMLCommentLexer("service", arguments=".*?")

    def __call__(self, document: Document) -> Iterable[Region]:
        for region in self.lexer(document):
            options = _parse_options(region.lexemes["arguments"] or "")
            setup = str(region.lexemes.get("source") or "")
            yield Region(region.start, region.end, (options, setup), self._mark)

    def _mark(self, example: Example) -> None:
        options, setup = example.parsed
        example.document.push_evaluator(_NextBlockAsService(self.backend, options, setup))


class _NextBlockAsService:
    def __init__(self, backend: str, options: dict[str, str], setup: str) -> None:
        self.backend = backend
        self.options = options
        self.setup = setup

    def __call__(self, example: Example) -> None:
        if not isinstance(example.region.evaluator, BlockEvaluator):
            raise NotEvaluated  # another directive between the mark and the block
        example.document.pop_evaluator(self)
        Service(example, self.options, self.setup).run(self.backend)


# ------------------------------------------------------------------- one page


def _capture() -> tuple[Any, ...]:
    return (
        gracestop.default_hooks.snapshot(),
        gi.get_observers(),
        (_testing._state.on, _testing._state.settings),
    )


def _install(state: tuple[Any, ...]) -> None:
    hooks, observers, testing = state
    gracestop.default_hooks._hooks[:] = hooks
    gi.set_observers(observers)
    _testing.restore_state(testing)


@contextlib.contextmanager
def _page_state(namespace: dict[str, Any]) -> Iterator[None]:
    """gracestop's process-wide state as the page left it, for one block.

    The default hook registry, the global observers and the testing mode belong
    to the page while its blocks run, and to the rest of the suite in between.
    """
    suite = _capture()
    _install(namespace["__state__"])
    try:
        yield
    finally:
        namespace["__state__"] = _capture()
        _install(suite)


def _setup(backend: str) -> Callable[[dict[str, Any]], None]:
    def setup(namespace: dict[str, Any]) -> None:
        namespace["__name__"] = "__main__"
        namespace["__backend__"] = backend
        namespace["__workdir__"] = tempfile.mkdtemp(prefix="gracestop-docs-")
        namespace["__state__"] = _capture()

    return setup


def _teardown(namespace: dict[str, Any]) -> None:
    """Remove the page's working directory; end the children it left running."""
    for value in namespace.values():
        if isinstance(value, subprocess.Popen) and value.poll() is None:
            value.kill()
            value.wait(10)
    shutil.rmtree(namespace.pop("__workdir__"), ignore_errors=True)


def _python_blocks(backend: str) -> Callable[[Document], Iterable[Region]]:
    """Sybil's Python block parser, with the blocks run by :class:`BlockEvaluator`."""
    parser = PythonCodeBlockParser()
    evaluator = BlockEvaluator(backend)

    def parse(document: Document) -> Iterable[Region]:
        for region in parser(document):
            if isinstance(region.evaluator, PythonEvaluator):
                region.evaluator = evaluator
            yield region

    return parse


def _sybil(backend: str) -> Sybil:
    return Sybil(
        parsers=[_python_blocks(backend), ServiceParser(backend), SkipParser()],
        patterns=PAGES,
        setup=_setup(backend),
        teardown=_teardown,
        fixtures=["_docs_environment"],
        name=backend,
    )


_sybils = [_sybil(backend) for backend in BACKENDS]
pytest_collect_file = (_sybils[0] + _sybils[1]).pytest()


_sybil_traceback_filter = SybilItem._traceback_filter


def _traceback_filter(
    item: SybilItem, excinfo: pytest.ExceptionInfo[BaseException]
) -> _pytest._code.Traceback:
    # Sybil cuts the traceback at its own frame, and fails on an exception raised
    # outside a block (an unraisable exception reported at teardown, say).
    try:
        return _sybil_traceback_filter(item, excinfo)
    except IndexError:
        return excinfo.traceback


SybilItem._traceback_filter = _traceback_filter  # type: ignore[method-assign,assignment]


@pytest.fixture
def _docs_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings of the test run stay out of the code of the docs."""
    for name in _RUNNER_ONLY[1:]:
        monkeypatch.delenv(name, raising=False)
    for name in [name for name in os.environ if name.startswith("GRACESTOP_")]:
        monkeypatch.delenv(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A service block waits for a child process: give it more than the usual limit."""
    for item in items:
        if isinstance(item, SybilItem):
            item.add_marker(pytest.mark.timeout(90))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``-n``: each page on one worker, its blocks in order; other tests as usual."""
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadGroupScheduling  # type: ignore[import-untyped]

    class PageScheduling(LoadGroupScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if any(Path(path).match(pattern) for pattern in PAGES):
                return path
            return str(super()._split_scope(nodeid))

    return PageScheduling(config, log)
