"""The public surface: names, docstrings, lazy imports."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import types

import gracestop

DESIGN_NAMES = {
    "ShutdownCoordinator",
    "Coordinator",
    "ShutdownConfig",
    "Hooks",
    "HookContext",
    "Waiter",
    "HookResult",
    "HookStatus",
    "ShutdownReport",
    "Trigger",
    "Phase",
    "State",
    "ShutdownError",
    "default_hooks",
    "on_wrap_up",
    "on_shutdown",
    "run",
}


def test_every_design_name_is_exported() -> None:
    assert set(gracestop.__all__) >= DESIGN_NAMES
    for name in gracestop.__all__:
        assert hasattr(gracestop, name), name


def test_all_lists_every_public_name() -> None:
    # Public submodules (gracestop.instrumentation) are attributes once imported,
    # not re-exported names.
    public = {
        n
        for n, v in vars(gracestop).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert public <= set(gracestop.__all__)


DOCUMENTED_DUNDERS = {
    "__aenter__",
    "__aexit__",
    "__enter__",
    "__exit__",
    "__call__",
    "__await__",
    "__len__",
    "__iter__",
}


def test_every_public_name_has_a_docstring() -> None:
    for name in gracestop.__all__:
        obj = getattr(gracestop, name)
        if name in {"__version__", "default_hooks", "HookFunc"}:  # data, not code
            continue
        assert inspect.getdoc(obj), f"{name} has no docstring"
        if not inspect.isclass(obj) or issubclass(obj, BaseException):
            continue
        for attr in dir(obj):
            if attr.startswith("_") and attr not in DOCUMENTED_DUNDERS:
                continue
            member = inspect.getattr_static(obj, attr)
            if isinstance(member, (property, classmethod, staticmethod)) or callable(member):
                if getattr(member, "__objclass__", None) is object:
                    continue  # object's own slots
                assert inspect.getdoc(member), f"{name}.{attr} has no docstring"


def test_version_is_served_from_metadata() -> None:
    assert isinstance(gracestop.__version__, str)
    assert gracestop.__version__[0].isdigit()


def test_import_is_light_and_imports_no_integration() -> None:
    code = (
        "import sys, gracestop; "
        "heavy = {'trio', 'uvicorn', 'aiohttp', 'hypercorn', 'starlette', 'h11', "
        "'pytest', 'gracestop.testing', 'gracestop._render', 'gracestop._diagnostics', "
        "'gracestop._systemd', 'json', 'cProfile', 'tracemalloc', 'tempfile'}; "
        "heavy &= set(sys.modules); "
        "print(sorted(heavy))"
    )
    # Without subprocess coverage, which imports json itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_PROCESS_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.strip() == "[]"


def test_diagnostics_and_systemd_load_only_when_used() -> None:
    code = (
        "import sys, anyio, gracestop\n"
        "async def main():\n"
        "    async with gracestop.ShutdownCoordinator(hooks=gracestop.Hooks(), signals=()) as c:\n"
        "        c.shutdown()\n"
        "anyio.run(main)\n"
        "print(sorted({'gracestop._diagnostics', 'gracestop._systemd'} & set(sys.modules)))\n"
        "assert callable(gracestop.request_diagnostics)\n"
        "print('gracestop._diagnostics' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.split() == ["[]", "True"]
