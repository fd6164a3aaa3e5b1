"""gracestop: graceful shutdown for asyncio and trio services.

Finish the work in hand, release resources in the right order, tell load
balancers and supervisors what is happening, and end within a hard deadline
whatever goes wrong. See [`ShutdownCoordinator`][gracestop.ShutdownCoordinator].
"""

from typing import TYPE_CHECKING

from ._config import ConfigOverrides, ShutdownConfig, UnknownFieldError
from ._coordinator import Coordinator, Hold, ShutdownCoordinator
from ._hooks import (
    Hook,
    HookContext,
    HookFunc,
    Hooks,
    Waiter,
    default_hooks,
    on_shutdown,
    on_wrap_up,
)
from ._report import (
    HookResult,
    HookStatus,
    Phase,
    PhaseSpan,
    ShutdownError,
    ShutdownReport,
    State,
    Trigger,
)
from ._run import exit_code, run

__all__ = [
    "ConfigOverrides",
    "Coordinator",
    "Hold",
    "Hook",
    "HookContext",
    "HookFunc",
    "HookResult",
    "HookStatus",
    "Hooks",
    "Phase",
    "PhaseSpan",
    "ShutdownConfig",
    "ShutdownCoordinator",
    "ShutdownError",
    "ShutdownReport",
    "State",
    "Trigger",
    "UnknownFieldError",
    "Waiter",
    "__version__",
    "default_hooks",
    "exit_code",
    "on_shutdown",
    "on_wrap_up",
    "request_diagnostics",
    "run",
]


if TYPE_CHECKING:
    from ._diagnostics import request_diagnostics

    __version__: str
del TYPE_CHECKING  # keep the package namespace to the public names


def __getattr__(name: str) -> object:
    if name == "request_diagnostics":
        # The diagnostics module is loaded only by the processes that use it.
        from ._diagnostics import request_diagnostics

        globals()[name] = request_diagnostics
        return request_diagnostics
    # The version is read from the installed metadata only when asked for.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("gracestop")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            from ._version import __version__

            return __version__
    raise AttributeError(f"module 'gracestop' has no attribute {name!r}")
