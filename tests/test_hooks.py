"""Hook registries, signatures, decorators and waiters."""

from __future__ import annotations

import functools
from typing import Any

import anyio
import pytest

from gracestop import Hook, HookContext, Hooks, HookStatus, Phase, ShutdownCoordinator


def test_registry_collects_hooks_in_order_with_their_options() -> None:
    hooks = Hooks()

    @hooks.on_wrap_up
    async def first() -> None: ...

    @hooks.on_shutdown(name="db", timeout="2s", order=10)
    def close(ctx: HookContext) -> None: ...

    waiter = hooks.add_shutdown_listener(print, name="printer", order=-1)
    assert len(hooks) == 3
    items = list(hooks)
    assert all(isinstance(h, Hook) for h in items)
    assert [(h.name, h.phase, h.order, h.timeout) for h in items] == [
        ("first", Phase.WRAP_UP, 0, None),
        ("db", Phase.SHUTDOWN, 10, 2.0),
        ("printer", Phase.SHUTDOWN, -1, None),
    ]
    assert items[0].is_async and not items[0].takes_context
    assert not items[1].is_async and items[1].takes_context
    assert items[2].waiter is waiter
    assert hooks.waiter(close) is items[1].waiter
    assert "3 registered" in repr(hooks)


def test_decorators_return_the_function_unchanged() -> None:
    hooks = Hooks()

    async def fn() -> None: ...

    assert hooks.on_wrap_up(fn) is fn
    assert hooks.on_shutdown(order=1)(fn) is fn
    assert hooks.on_wrap_up(name="x")(fn) is fn


class AsyncCallable:
    async def __call__(self, ctx: HookContext) -> None: ...


class SyncCallable:
    def __call__(self) -> None: ...


async def with_ctx(ctx: HookContext) -> None: ...


def optional_arg(ctx: Any = None) -> None: ...


def var_args(*args: Any) -> None: ...


@pytest.mark.parametrize(
    ("func", "is_async", "takes_context", "name"),
    [
        (AsyncCallable(), True, True, "AsyncCallable"),
        (SyncCallable(), False, False, "SyncCallable"),
        (functools.partial(with_ctx), True, True, "with_ctx"),
        (optional_arg, False, False, "optional_arg"),
        (var_args, False, True, "var_args"),
        (len, False, True, "len"),
        (lambda: None, False, False, "<lambda>"),
    ],
)
def test_callables_are_normalised(
    func: Any, is_async: bool, takes_context: bool, name: str
) -> None:
    hooks = Hooks()
    hooks.add_wrap_up_listener(func)
    (hook,) = hooks
    assert (hook.is_async, hook.takes_context, hook.name) == (is_async, takes_context, name)


def test_unusable_signatures_and_values_are_refused() -> None:
    hooks = Hooks()
    with pytest.raises(TypeError, match="must take no argument or one HookContext"):
        hooks.add_wrap_up_listener(lambda a, b: None)

    def kw_only(*, needed: int) -> None: ...

    with pytest.raises(TypeError, match="kw_only"):
        hooks.on_shutdown(kw_only)
    with pytest.raises(TypeError, match="callable"):
        hooks.add_shutdown_listener(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_wrap_up takes the hook function"):
        hooks.on_wrap_up("flush")
    with pytest.raises(ValueError, match="timeout"):
        hooks.on_wrap_up(timeout=0)
    with pytest.raises(ValueError, match="timeout"):
        hooks.on_wrap_up(timeout="forever")
    with pytest.raises(TypeError, match="order"):
        hooks.on_wrap_up(order=True)
    with pytest.raises(TypeError, match="order"):
        hooks.on_wrap_up(order=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        hooks.on_wrap_up(name="  ")
    with pytest.raises(ValueError, match="not registered"):
        hooks.waiter(print)
    assert len(hooks) == 0


def test_waiter_can_be_made_before_any_event_loop() -> None:
    hooks = Hooks()
    waiter = hooks.add_wrap_up_listener(lambda: None, name="early")
    assert not waiter.done
    assert waiter.result is None
    assert repr(waiter) == "<Waiter 'early' pending>"


@pytest.mark.anyio
async def test_registry_waiter_keeps_its_first_result() -> None:
    hooks = Hooks()
    calls: list[int] = []
    waiter = hooks.add_shutdown_listener(lambda: calls.append(1))
    reports = []
    for _ in range(2):
        async with ShutdownCoordinator(hooks=hooks, signals=()) as coord:
            coord.shutdown()
        reports.append(coord.report)
    assert calls == [1, 1]
    first = await waiter()
    assert first.status is HookStatus.OK
    assert reports[0] is not None and reports[1] is not None
    assert first is reports[0].results[0]
    assert first is not reports[1].results[0]
    assert "ok" in repr(waiter)


@pytest.mark.anyio
async def test_waiter_wait_can_be_cancelled() -> None:
    hooks = Hooks()
    waiter = hooks.add_wrap_up_listener(lambda: None)
    with anyio.move_on_after(0.01) as scope:
        await waiter()
    assert scope.cancelled_caught
    assert not waiter.done
