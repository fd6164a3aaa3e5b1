"""The process-wide testing mode that coordinators consult when they are built.

The public face is `testing`; this module holds the state so the
coordinator can read it without importing test helpers.
"""

from __future__ import annotations

import logging
import os
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._config import FIELD_NAMES, ShutdownConfig, UnknownFieldError, _build

__all__ = [
    "ENV_VAR",
    "TESTING_DEFAULTS",
    "apply_testing",
    "current_settings",
    "env_testing",
    "is_testing",
    "restore_state",
    "swap_state",
    "validated_settings",
]

ENV_VAR = "GRACESTOP_TESTING"
"""The environment variable that turns testing mode on when no code has decided."""

TESTING_DEFAULTS: Mapping[str, object] = types.MappingProxyType(
    {
        "drain_delay": 0.0,
        "wrap_up_time": 0.5,
        "wait_time": 2.0,
        "signals": (),
        "hard_exit": False,
        "progress_interval": 60.0,
        "systemd_notify": False,
    }
)
"""What a coordinator uses in testing mode for every field the test leaves at its library default:
nothing to drain, short phases, no signals taken from the test runner, no watchdog that could end
the test process, no progress chatter.
"""

logger = logging.getLogger("gracestop")

_TIMING = frozenset({"drain_delay", "wrap_up_time", "wait_time"})
_ON_WORDS = frozenset({"1", "true", "yes", "on"})
_OFF_WORDS = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class _State:
    # None: not decided by code, the environment variable decides.
    on: bool | None = None
    settings: Mapping[str, object] = field(default_factory=lambda: TESTING_DEFAULTS)


_state = _State()
_env_warned = False


def env_testing(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``GRACESTOP_TESTING`` asks for testing mode (``1/true/yes/on``)."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_VAR, "")
    word = raw.strip().lower()
    if word in _ON_WORDS:
        return True
    if word in _OFF_WORDS:
        return False
    raise ValueError(f"{ENV_VAR} must be 1/true/yes/on or 0/false/no/off/empty; got {raw!r}")


def is_testing() -> bool:
    """Whether coordinators built now use the testing settings."""
    global _env_warned
    state = _state
    if state.on is not None:
        return state.on
    on = env_testing()
    if on and not _env_warned:
        _env_warned = True
        # It turns off signal handling and the watchdog: a production process
        # that inherited the variable by mistake must say so loudly.
        logger.warning(
            "testing mode is on (%s is set): coordinators take no signals, arm no "
            "watchdog and use short timings; unset it outside test runs",
            ENV_VAR,
            extra={"gracestop_testing": True},
        )
    return on


def current_settings() -> Mapping[str, object]:
    """The settings testing mode applies (the defaults unless ``set_testing`` changed them)."""
    return _state.settings


def validated_settings(settings: Mapping[str, object]) -> Mapping[str, object]:
    """`TESTING_DEFAULTS` with *settings* over them, checked as a config."""
    for key in settings:
        if key not in FIELD_NAMES:
            raise UnknownFieldError(key, FIELD_NAMES)
    merged = {**TESTING_DEFAULTS, **settings}
    config = _build(ShutdownConfig, dict(merged))
    return types.MappingProxyType({name: getattr(config, name) for name in merged})


def swap_state(on: bool | None, settings: Mapping[str, object]) -> tuple[bool | None, Any]:
    """Install a new state; return the previous one for `restore_state`."""
    global _state
    previous = _state
    _state = _State(on, settings)
    return previous.on, previous.settings


def restore_state(previous: tuple[bool | None, Any]) -> None:
    """Put back a state returned by `swap_state`."""
    global _state
    _state = _State(previous[0], previous[1])


def apply_testing(
    given: ShutdownConfig, overrides: Mapping[str, object], built: ShutdownConfig
) -> ShutdownConfig:
    """The config a coordinator uses in testing mode.

    *given* is the config passed to the coordinator (or the default one),
    *overrides* its keyword arguments and *built* the two combined. A field the
    test set (an override, or a value in *given* other than the library default)
    is kept; every other field takes the testing setting. If the testing timings
    do not fit with the test's own (``drain_delay + wrap_up_time > wait_time``),
    the test's timings are kept as they are.
    """
    library = ShutdownConfig()
    chosen = {
        name: value
        for name, value in _state.settings.items()
        if name not in overrides and getattr(given, name) == getattr(library, name)
    }
    try:
        return built.replace(**chosen)
    except ValueError:
        return built.replace(**{k: v for k, v in chosen.items() if k not in _TIMING})
