"""Hooks: registries, the context handed to a hook, and waiters."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

import anyio
import anyio.lowlevel

from ._config import parse_timeout
from ._report import HookResult, Phase, Trigger
from ._signals import loop_caller

if TYPE_CHECKING:
    import datetime

logger = logging.getLogger("gracestop")

__all__ = [
    "Hook",
    "HookContext",
    "HookFunc",
    "Hooks",
    "Waiter",
    "default_hooks",
    "on_shutdown",
    "on_wrap_up",
]

HookFunc = Callable[..., Any]
"""A hook: a callable taking nothing or one `HookContext`, sync or async."""
F = TypeVar("F", bound=HookFunc)


class HookContext:
    """What a running hook may want to know; passed when the hook takes one argument.

    Attributes:
        trigger: what started the shutdown.
        phase: the phase the hook runs in.
        name: the hook's name.
        deadline: when the hook will be cancelled, on anyio's clock
            (`anyio.current_time`), so it can be handed to
            `anyio.fail_at` or `anyio.move_on_at`.
    """

    __slots__ = ("_monotonic_deadline", "deadline", "name", "phase", "trigger")

    def __init__(self, trigger: Trigger, phase: Phase, name: str, deadline: float) -> None:
        self.trigger = trigger
        self.phase = phase
        self.name = name
        self.deadline = deadline
        # Kept on the monotonic clock too, so remaining() also works in the worker
        # thread of a sync hook, where anyio's clock cannot be read.
        self._monotonic_deadline = time.monotonic() + (deadline - anyio.current_time())

    def remaining(self) -> float:
        """Seconds left before this hook is cancelled (never negative)."""
        return max(0.0, self._monotonic_deadline - time.monotonic())

    def __repr__(self) -> str:
        return (
            f"HookContext(name={self.name!r}, phase={self.phase.value!r}, "
            f"remaining={self.remaining():.3f})"
        )


class Waiter:
    """Awaitable handle on one hook: ``await waiter()`` returns its `HookResult`.

    go-zero's ``AddWrapUpListener`` returns a function that blocks until the
    listener has been called; this is the awaitable form of it. Unlike go-zero's,
    it waits for *its* hook only, and it never hangs: a hook that could not run
    (the quit was forced first) resolves its waiter with ``CANCELLED``.

    A waiter can be created before any event loop runs (at import time, for a
    hook registered on a module-level [`Hooks`][gracestop.Hooks]), and can be awaited from any
    number of tasks.
    """

    __slots__ = ("_events", "_lock", "_result", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._result: HookResult | None = None
        # Each waiting task's event, with its thread and a way back to its loop:
        # a waiter may be awaited on another event loop than the coordinator's.
        self._events: list[tuple[anyio.Event, int, Callable[[Callable[[], object]], None]]] = []
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        """True once the hook has ended (its result is final)."""
        return self._result is not None

    @property
    def result(self) -> HookResult | None:
        """The hook's result once it has ended, else ``None``."""
        return self._result

    async def wait(self) -> HookResult:
        """Wait until the hook has ended and return its result."""
        with self._lock:
            entry = None
            if self._result is None:
                entry = (anyio.Event(), threading.get_ident(), loop_caller())
                self._events.append(entry)
        if entry is None:
            await anyio.lowlevel.checkpoint()
        else:
            try:
                await entry[0].wait()
            finally:
                with self._lock:
                    if entry in self._events:
                        self._events.remove(entry)
        # Set once and never cleared, so it is there whichever way we came.
        assert self._result is not None
        return self._result

    def __call__(self) -> Awaitable[HookResult]:
        """``await waiter()``: the same as ``await waiter.wait()``."""
        return self.wait()

    def __await__(self) -> Generator[Any, None, HookResult]:
        """``await waiter``: the same as ``await waiter.wait()``."""
        return self.wait().__await__()

    def _resolve(self, result: HookResult) -> bool:
        """Set the final result once; called on the event loop thread."""
        with self._lock:
            if self._result is not None:
                return False
            self._result = result
            events, self._events = self._events, []
        here = threading.get_ident()
        for event, thread, call in events:
            if thread == here:
                event.set()
            else:
                call(event.set)
        return True

    def __repr__(self) -> str:
        state = self._result.status.value if self._result is not None else "pending"
        return f"<Waiter {self.name!r} {state}>"


@dataclass(eq=False)
class Hook:
    """One registered hook. Yielded by iterating a [`Hooks`][gracestop.Hooks] registry.

    Attributes:
        func: the callable as registered.
        phase: the phase it runs in.
        name: its name in logs and reports.
        timeout: its own limit in seconds, or ``None`` for the coordinator's
            ``hook_timeout``.
        order: its group; lower groups run first, equal ones together.
        waiter: resolves with its result the first time a coordinator runs it.
    """

    func: HookFunc
    phase: Phase
    name: str
    timeout: float | None = None
    order: int = 0
    waiter: Waiter = field(init=False)
    is_async: bool = field(init=False)
    takes_context: bool = field(init=False)

    def __post_init__(self) -> None:
        self.waiter = Waiter(self.name)
        self.is_async = _is_async_callable(self.func)
        self.takes_context = _takes_context(self.func, self.name)


def _unwrap(func: object) -> object:
    """The function behind any ``functools.partial`` layers."""
    while isinstance(func, functools.partial):
        func = func.func
    return func


def _is_async_callable(func: object) -> bool:
    func = _unwrap(func)
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - looking for an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _takes_context(func: HookFunc, name: str) -> bool:
    """Decide whether the hook wants the HookContext, refusing unusable signatures."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        # Builtins without a signature: call them with nothing.
        return False
    positional = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in positional if p.default is p.empty]
    required_kw = [
        p for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY and p.default is p.empty
    ]
    if required_kw or len(required) > 1:
        raise TypeError(
            f"hook {name!r} must take no argument or one HookContext; its signature is {name}{sig}"
        )
    if required:
        return True
    return any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values())


def _hook_name(func: HookFunc, name: object) -> str:
    if name is not None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str or None; got {type(name).__name__} {name!r}")
        if not name.strip():
            raise ValueError(f"name must not be empty; got {name!r}")
        return name
    inner = _unwrap(func)
    qualname = getattr(inner, "__qualname__", None) or getattr(inner, "__name__", None)
    if isinstance(qualname, str):
        # "Service.close" says more than "close", but a nested function's
        # "main.<locals>.flush" reads better in logs as "flush".
        return qualname.rpartition("<locals>.")[2]
    return type(inner).__qualname__


def _check_order(order: object) -> int:
    if isinstance(order, bool) or not isinstance(order, int):
        raise TypeError(f"order must be an int; got {type(order).__name__} {order!r}")
    return order


def make_hook(
    func: object, phase: Phase, *, name: object = None, timeout: object = None, order: object = 0
) -> Hook:
    """Validate a registration and build its [`Hook`][gracestop.Hook]."""
    if not callable(func):
        raise TypeError(
            f"a {phase.value} hook must be callable; got {type(func).__name__} {func!r}"
        )
    inner = _unwrap(func)
    if inspect.isgeneratorfunction(inner) or inspect.isasyncgenfunction(inner):
        raise TypeError(
            f"a {phase.value} hook must be a function or coroutine function, "
            f"not a generator; got {func!r}"
        )
    return Hook(
        func=func,
        phase=phase,
        name=_hook_name(func, name),
        timeout=parse_timeout(timeout, "timeout"),
        order=_check_order(order),
    )


class _Registrar:
    """The decorator and go-zero-named registration methods, shared by Hooks and
    ShutdownCoordinator. Subclasses implement ``_register``."""

    def _register(self, hook: Hook) -> None:
        raise NotImplementedError

    def _add(
        self, phase: Phase, func: object, name: object, timeout: object, order: object
    ) -> Hook:
        hook = make_hook(func, phase, name=name, timeout=timeout, order=order)
        self._register(hook)
        return hook

    def _decorator(
        self,
        phase: Phase,
        func: object,
        name: object,
        timeout: object,
        order: object,
    ) -> Any:
        if func is not None:
            if not callable(func):
                raise TypeError(
                    f"on_{phase.value} takes the hook function, or keyword options "
                    f"(name=, timeout=, order=); got {type(func).__name__} {func!r}"
                )
            self._add(phase, func, name, timeout, order)
            return func
        # Validate the options now, where the user wrote them, not at decoration.
        make_hook(_noop, phase, name=name, timeout=timeout, order=order)

        def decorate(fn: F) -> F:
            self._add(phase, fn, name, timeout, order)
            return fn

        return decorate

    @overload
    def on_wrap_up(self, func: F, /) -> F: ...
    @overload
    def on_wrap_up(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | str | datetime.timedelta | None = None,
        order: int = 0,
    ) -> Callable[[F], F]: ...
    def on_wrap_up(
        self,
        func: Any = None,
        /,
        *,
        name: Any = None,
        timeout: Any = None,
        order: Any = 0,
    ) -> Any:
        """Register a wrap-up hook; use bare (``@x.on_wrap_up``) or with options.

        Wrap-up hooks finish the work in hand (flush a queue, deregister from
        service discovery) and run first. Options: ``name`` for logs and
        reports, ``timeout`` (seconds, a timedelta or ``"2s"``) for this hook
        alone, ``order`` (lower groups run first). Returns the function unchanged.
        """
        return self._decorator(Phase.WRAP_UP, func, name, timeout, order)

    @overload
    def on_shutdown(self, func: F, /) -> F: ...
    @overload
    def on_shutdown(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | str | datetime.timedelta | None = None,
        order: int = 0,
    ) -> Callable[[F], F]: ...
    def on_shutdown(
        self,
        func: Any = None,
        /,
        *,
        name: Any = None,
        timeout: Any = None,
        order: Any = 0,
    ) -> Any:
        """Register a shutdown hook; use bare (``@x.on_shutdown``) or with options.

        Shutdown hooks release resources (close the database, the HTTP client)
        once the wrap-up phase is over, so nothing is closed under work in flight.
        Options as for `on_wrap_up`. Returns the function unchanged.
        """
        return self._decorator(Phase.SHUTDOWN, func, name, timeout, order)

    def add_wrap_up_listener(
        self,
        func: HookFunc,
        *,
        name: str | None = None,
        timeout: float | str | datetime.timedelta | None = None,
        order: int = 0,
    ) -> Waiter:
        """Register a wrap-up hook and return its [`Waiter`][gracestop.Waiter] (go-zero's
        ``AddWrapUpListener``)."""
        return self._add(Phase.WRAP_UP, func, name, timeout, order).waiter

    def add_shutdown_listener(
        self,
        func: HookFunc,
        *,
        name: str | None = None,
        timeout: float | str | datetime.timedelta | None = None,
        order: int = 0,
    ) -> Waiter:
        """Register a shutdown hook and return its [`Waiter`][gracestop.Waiter] (go-zero's
        ``AddShutdownListener``)."""
        return self._add(Phase.SHUTDOWN, func, name, timeout, order).waiter


def _noop() -> None:
    """Stands in for the function while decorator options are validated."""


class Hooks(_Registrar):
    """A registry of hooks, usable at import time, before any event loop runs.

    Hand it to a coordinator (``ShutdownCoordinator(hooks=hooks)``); a coordinator
    reads its registries when the shutdown is triggered. The module-level
    [`default_hooks`][gracestop.default_hooks] is the registry used when none is given, so a
    library can register its cleanup on import:

        hooks = gracestop.Hooks()

        @hooks.on_shutdown(timeout=2, name="db")
        async def close_db() -> None:
            await pool.close()
    """

    def __init__(self) -> None:
        self._hooks: list[Hook] = []
        self._lock = threading.Lock()
        # Shutdowns that have read this registry and are still running.
        self._readers = 0

    def _register(self, hook: Hook) -> None:
        with self._lock:
            self._hooks.append(hook)
            reading = self._readers
        if reading:
            logger.warning(
                "%s hook %s was added to a Hooks registry during a shutdown that has "
                "already read it: it will not run in that shutdown. Register late hooks "
                "through the coordinator (coord.on_%s / coord.add_%s_listener).",
                hook.phase,
                hook.name,
                hook.phase.value,
                hook.phase.value,
            )

    def _read_by_shutdown(self, delta: int) -> None:
        with self._lock:
            self._readers += delta

    def snapshot(self) -> tuple[Hook, ...]:
        """The hooks registered so far, in registration order."""
        with self._lock:
            return tuple(self._hooks)

    def waiter(self, func: HookFunc) -> Waiter:
        """The [`Waiter`][gracestop.Waiter] of the first hook registered with ``func``."""
        return find_waiter(self.snapshot(), func)

    def __len__(self) -> int:
        """How many hooks are registered."""
        with self._lock:
            return len(self._hooks)

    def __iter__(self) -> Iterator[Hook]:
        """The registered hooks, in registration order."""
        return iter(self.snapshot())

    def __repr__(self) -> str:
        return f"<Hooks: {len(self)} registered>"


def find_waiter(hooks: tuple[Hook, ...] | list[Hook], func: HookFunc) -> Waiter:
    """The waiter of the first hook registered with ``func``, else ``ValueError``."""
    for hook in hooks:
        if hook.func is func:
            return hook.waiter
    name = getattr(func, "__qualname__", repr(func))
    raise ValueError(f"{name} is not registered as a hook here")


default_hooks = Hooks()
"""The registry a coordinator uses when it is given no ``hooks``."""

on_wrap_up = default_hooks.on_wrap_up
"""Register a wrap-up hook on [`default_hooks`][gracestop.default_hooks] (bare or with options)."""
on_shutdown = default_hooks.on_shutdown
"""Register a shutdown hook on [`default_hooks`][gracestop.default_hooks] (bare or with options)."""
