"""``ShutdownConfig`` and the duration and signal parsing behind it.

Everything a user can configure arrives through `ShutdownConfig`, whether
from keyword arguments, a mapping (a go-zero YAML ``Shutdown:`` section ports as
is) or environment variables. Values are normalised once, here, so the rest of the
library only ever sees float seconds, ``signal.Signals`` tuples and plain bools.
"""

from __future__ import annotations

import dataclasses
import decimal
import difflib
import math
import numbers
import os
import re
import reprlib
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict, cast

__all__ = [
    "FIELD_NAMES",
    "RESERVED_ENV_SUFFIXES",
    "ConfigOverrides",
    "DurationLike",
    "SecondSignal",
    "ShutdownConfig",
    "SignalLike",
    "SignalMode",
    "UnknownFieldError",
    "check_duration",
    "parse_duration",
    "parse_signals",
    "parse_timeout",
]

DurationLike: TypeAlias = "float | timedelta | str"
"""What a duration field accepts: seconds, a ``timedelta`` or a string like ``"5.5s"``."""

SignalLike: TypeAlias = "str | int | signal.Signals"
"""One signal: a name (``"TERM"``, ``"SIGTERM"``), a number or a ``signal.Signals``."""

SignalMode: TypeAlias = Literal["auto", "handler"]
SecondSignal: TypeAlias = Literal["force", "ignore"]
SystemdReady: TypeAlias = Literal["enter", "manual"]


class ConfigOverrides(TypedDict, total=False):
    """The `ShutdownConfig` fields as keyword arguments, in their raw forms:
    what ``ShutdownCoordinator(**overrides)`` and ``gracestop.run(**config)`` take."""

    wrap_up_time: DurationLike
    wait_time: DurationLike
    drain_delay: DurationLike
    hook_timeout: DurationLike | None
    signals: SignalLike | Iterable[SignalLike] | None
    signal_mode: SignalMode
    second_signal: SecondSignal
    hard_exit: bool | None
    watchdog_grace: DurationLike
    force_exit_code: int
    progress_interval: DurationLike
    diagnostics: bool
    diagnostics_dir: str | os.PathLike[str] | None
    profile_duration: DurationLike
    report_file: str | os.PathLike[str] | None
    systemd_notify: bool | None
    systemd_ready: SystemdReady


RESERVED_ENV_SUFFIXES: frozenset[str] = frozenset({"TESTING"})
"""``GRACESTOP_*`` variables owned by other features; `ShutdownConfig.from_env`
skips them instead of calling them unknown (``GRACESTOP_TESTING`` turns on
`testing`'s testing mode)."""

_SIGNAL_MODES: tuple[str, ...] = ("auto", "handler")
_SECOND_SIGNAL_MODES: tuple[str, ...] = ("force", "ignore")
_SYSTEMD_READY_MODES: tuple[str, ...] = ("enter", "manual")

_DURATION_HELP = "seconds as int/float, a timedelta, or a string such as '5.5s'"

# Long or hostile values (a megabyte of digits from an env var) must not turn
# error messages into walls of text.
_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80
_repr.maxlist = 8
_repr.maxtuple = 8
_repr.maxset = 8
_repr.maxdict = 8


def _show(value: object) -> str:
    return _repr.repr(value)


def _describe(value: object) -> str:
    return f"{type(value).__name__} {_show(value)}"


class UnknownFieldError(ValueError, TypeError):
    """A configuration key that names no [`ShutdownConfig`][gracestop.ShutdownConfig] field.

    Both a ``ValueError`` (a bad value in a mapping or the environment) and a
    ``TypeError`` (what Python raises for an unexpected keyword argument), so either
    ``except`` clause catches it.

    Attributes:
        key: the name that was given.
        valid: the names that would have been accepted.
        suggestions: the closest valid names, best first (may be empty).
    """

    def __init__(self, key: str, valid: Iterable[str] = (), *, kind: str = "field") -> None:
        """Build the message from *key*, the *valid* names and what *kind* of name it is."""
        self.key = key
        self.valid: tuple[str, ...] = tuple(valid) or FIELD_NAMES
        self.kind = kind
        # Case-insensitive matching so "WAIT_TIME" or "waittime" still get a hint.
        lowered = {name.lower(): name for name in self.valid}
        close = difflib.get_close_matches(key.lower(), list(lowered), n=3, cutoff=0.6)
        self.suggestions: tuple[str, ...] = tuple(lowered[name] for name in close)
        hint = f"; did you mean {self.suggestions[0]!r}?" if self.suggestions else ""
        super().__init__(
            f"unknown {kind} {_show(key)}{hint} (valid {kind}s: {', '.join(self.valid)})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce replays args=(message,) into __init__, which would treat
        # the whole message as the key.
        return (_rebuild_unknown_field_error, (self.key, self.valid, self.kind))


def _rebuild_unknown_field_error(key: str, valid: tuple[str, ...], kind: str) -> UnknownFieldError:
    return UnknownFieldError(key, valid, kind=kind)


# ---------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------

# Go's time.ParseDuration grammar, plus an optional exponent on each number so that
# f"{x}s" works for every Python float (repr switches to "1e-05" below 1e-4).
# [0-9] rather than \d: \d also matches non-ASCII digits such as "٣".
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_UNIT = "ns|us|\u00b5s|\u03bcs|ms|s|m|h"  # "ms" before "m"; both micro signs Go accepts
_GO_DURATION = re.compile(rf"([+-]?)((?:{_NUMBER}(?:{_UNIT}))+)")
_COMPONENT = re.compile(rf"({_NUMBER})({_UNIT})")
_BARE_NUMBER = re.compile(rf"[+-]?{_NUMBER}")
_INFINITY = re.compile(r"([+-]?)(?:inf|infinity)", re.IGNORECASE)
_NAN = re.compile(r"[+-]?s?nan", re.IGNORECASE)

_UNIT_SECONDS: dict[str, decimal.Decimal] = {
    "ns": decimal.Decimal("1e-9"),
    "us": decimal.Decimal("1e-6"),
    "\u00b5s": decimal.Decimal("1e-6"),
    "\u03bcs": decimal.Decimal("1e-6"),
    "ms": decimal.Decimal("1e-3"),
    "s": decimal.Decimal(1),
    "m": decimal.Decimal(60),
    "h": decimal.Decimal(3600),
}

# Decimal arithmetic so "300us" is exactly 0.0003 and "100ms200ms" is exactly 0.3;
# no traps, so an overflow saturates to Infinity instead of raising ArithmeticError.
_DECIMAL_CONTEXT = decimal.Context(prec=40, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[])


def _parse_duration_string(text: str, original: object, field: str) -> float:
    stripped = text.strip()
    if _BARE_NUMBER.fullmatch(stripped):
        return _decimal_to_float(_to_decimal(stripped))
    infinity = _INFINITY.fullmatch(stripped)
    if infinity:
        return -math.inf if infinity.group(1) == "-" else math.inf
    if _NAN.fullmatch(stripped):
        raise ValueError(f"{field} must be a number of seconds, not NaN; got {_show(original)}")
    match = _GO_DURATION.fullmatch(stripped)
    if match is None:
        raise ValueError(
            f"{field} must be a duration such as '500ms', '5.5s', '1m30s' or '2' (seconds); "
            f"got {_show(original)}"
        )
    total = decimal.Decimal(0)
    for number, unit in _COMPONENT.findall(match.group(2)):
        total = _DECIMAL_CONTEXT.add(
            total, _DECIMAL_CONTEXT.multiply(_to_decimal(number), _UNIT_SECONDS[unit])
        )
    if match.group(1) == "-":
        total = -total
    return _decimal_to_float(total)


_EXPONENT_LIMIT = 10**17


def _to_decimal(number: str) -> decimal.Decimal:
    mantissa, _, exponent = number.lower().partition("e")
    if exponent:
        # Decimal refuses exponents beyond ~1e18 (InvalidOperation, not ValueError)
        # and int() refuses > 4300 digits; clamping changes nothing once converted to
        # a float (inf or 0), since no mantissa in memory has 1e17 digits.
        digits = exponent.lstrip("+-")
        negative = exponent.startswith("-")
        if len(digits) > 17 or int(digits) > _EXPONENT_LIMIT:
            exponent = f"{'-' if negative else ''}{_EXPONENT_LIMIT}"
        return decimal.Decimal(f"{mantissa}e{exponent}")
    return decimal.Decimal(mantissa)


def _decimal_to_float(value: decimal.Decimal) -> float:
    # "+ 0.0" folds -0.0 into 0.0 so "-0s" is not a surprising negative zero.
    return float(value) + 0.0


def parse_duration(value: object, field: str = "duration") -> float:
    """Turn a duration in any accepted form into float seconds.

    Accepted: ``int``/``float`` seconds (not ``bool``), ``datetime.timedelta``, and
    strings in Go's ``time.ParseDuration`` form (``"500ms"``, ``"1m30s"``, ``"1.5h"``,
    ``"300us"``/``"300µs"``, ``"10ns"``, ``"0"``) or bare numbers of seconds (``"2.5"``).
    ``"inf"`` parses to ``math.inf``.

    No range check is made here: negative and infinite values are returned as they
    are, for the caller to judge (see `check_duration`). NaN is always refused.

    Raises:
        TypeError: *value* is of a type that is not a duration; the message names *field*.
        ValueError: a string that is not a duration, or NaN; the message names *field*.

    >>> parse_duration("1m30s")
    90.0
    >>> parse_duration("250ms", field="timeout")
    0.25
    """
    if isinstance(value, bool):
        # bool is an int subclass; hard_exit=True passed to the wrong field must fail.
        raise TypeError(f"{field} must be a duration ({_DURATION_HELP}); got {_describe(value)}")
    if isinstance(value, str):
        return _parse_duration_string(value, value, field)
    if isinstance(value, timedelta):
        return value.total_seconds() + 0.0
    if isinstance(value, (int, float, numbers.Real, decimal.Decimal)):
        try:
            seconds = float(value)
        except OverflowError:
            # An int or Fraction too large for a float: a number all the same, and one
            # that the callers' finiteness checks will refuse with a proper message.
            seconds = -math.inf if cast("float", value) < 0 else math.inf
        except ValueError:
            # Decimal("sNaN") refuses float(); it is a NaN all the same.
            seconds = math.nan
        if math.isnan(seconds):
            raise ValueError(
                f"{field} must be a number of seconds, not NaN; got {_show(value)}"
            ) from None
        return seconds + 0.0
    raise TypeError(f"{field} must be a duration ({_DURATION_HELP}); got {_describe(value)}")


def check_duration(value: object, field: str, *, allow_zero: bool) -> float:
    """Parse *value* like `parse_duration` and require it to be finite and in range.

    With ``allow_zero=False`` the duration must be ``> 0``, otherwise ``>= 0``.

    Raises:
        TypeError: wrong type (message names *field* and the value).
        ValueError: NaN, negative, zero when not allowed, or infinite.

    >>> check_duration("1.5s", "wait_time", allow_zero=False)
    1.5
    """
    seconds = parse_duration(value, field)
    in_range = seconds >= 0 if allow_zero else seconds > 0
    if not (in_range and math.isfinite(seconds)):
        what = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{field} must be a {what}, finite duration; got {_show(value)}")
    return seconds


def parse_timeout(value: object, field: str = "timeout") -> float | None:
    """Validate an optional per-hook timeout: ``None``, or a positive, finite duration.

    Raises:
        TypeError: wrong type (message names *field* and the value).
        ValueError: NaN, zero, negative or infinite (message names *field* and the value).

    >>> parse_timeout("2s"), parse_timeout(None)
    (2.0, None)
    """
    if value is None:
        return None
    seconds = parse_duration(value, field)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{field} must be None or a positive, finite duration; got {_show(value)}")
    return seconds


# ---------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------

# Windows has neither; getattr keeps the module importable there.
_UNCATCHABLE: frozenset[int] = frozenset(
    int(sig) for sig in (getattr(signal, "SIGKILL", None), getattr(signal, "SIGSTOP", None)) if sig
)
# Synchronous fault signals: raised by the faulting instruction itself, they cannot
# be deferred to an event loop, and resuming after them only faults again.
_FAULTS: frozenset[int] = frozenset(
    int(getattr(signal, name))
    for name in ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL")
    if hasattr(signal, name)
)


def _one_signal(item: object, field: str) -> signal.Signals:
    if isinstance(item, signal.Signals):
        sig = item
    elif isinstance(item, bool):
        raise TypeError(
            f"{field} must contain signal names, numbers or signal.Signals; got {_describe(item)}"
        )
    elif isinstance(item, int):
        try:
            sig = signal.Signals(item)
        except ValueError:
            raise ValueError(f"{field}: unknown signal number {_show(item)}") from None
    elif isinstance(item, str):
        name = item.strip().upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        members = signal.Signals.__members__
        if name not in members:
            close = difflib.get_close_matches(name, list(members), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            if "," in item:
                hint += " (give several signals as a list, e.g. ['TERM', 'INT'])"
            raise ValueError(f"{field}: unknown signal name {_show(item)}{hint}")
        sig = members[name]
    else:
        raise TypeError(
            f"{field} must contain signal names, numbers or signal.Signals; got {_describe(item)}"
        )
    if int(sig) in _UNCATCHABLE:
        raise ValueError(
            f"{field}: {sig.name} cannot be caught, so it cannot trigger a shutdown; "
            f"got {_show(item)}"
        )
    if int(sig) in _FAULTS:
        raise ValueError(
            f"{field}: {sig.name} is a fault signal, raised by a crashing instruction; "
            f"it cannot trigger a graceful shutdown; got {_show(item)}"
        )
    return sig


def _signal_items(value: object) -> Iterable[object] | None:
    """*value* as an iterable of signal items, or None when it cannot be one."""
    if isinstance(value, (bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        return None
    # Each item is checked by _one_signal; the iterable itself may hold anything.
    return cast("Iterable[object]", value)


def parse_signals(value: object, field: str = "signals") -> tuple[signal.Signals, ...] | None:
    """Normalise a signal specification to a tuple of ``signal.Signals`` (or ``None``).

    ``None`` stays ``None`` (the coordinator's default: SIGTERM and SIGINT in the main
    thread). Otherwise *value* is one signal or an iterable of them, each a name
    (``"TERM"``, ``"SIGTERM"``, ``" sigterm "``), a number or a ``signal.Signals``.
    Duplicates are dropped, order is kept; an empty iterable gives ``()`` (no signals).

    Raises:
        TypeError: *value* or one of its items is of the wrong type.
        ValueError: unknown name or number, SIGKILL/SIGSTOP (which cannot be caught),
            or a fault signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL).

    >>> parse_signals(["TERM", 2, "sigterm"])
    (<Signals.SIGTERM: 15>, <Signals.SIGINT: 2>)
    """
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return (_one_signal(value, field),)
    items = _signal_items(value)
    if items is None:
        raise TypeError(
            f"{field} must be None, a signal, or an iterable of signal names/numbers; "
            f"got {_describe(value)}"
        )
    result: dict[signal.Signals, None] = {}
    for item in items:
        result.setdefault(_one_signal(item, field), None)
    return tuple(result)


# ---------------------------------------------------------------------------
# Other fields
# ---------------------------------------------------------------------------


def _choice(allowed: tuple[str, ...]) -> Callable[[object, str], str]:
    def normalise(value: object, field: str) -> str:
        if not isinstance(value, str):
            raise TypeError(f"{field} must be a str, one of {allowed!r}; got {_describe(value)}")
        if value not in allowed:
            raise ValueError(f"{field} must be one of {allowed!r}; got {_show(value)}")
        return value

    return normalise


def _hard_exit(value: object, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise TypeError(f"{field} must be None, True or False; got {_describe(value)}")


def _strict_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{field} must be True or False; got {_describe(value)}")
    return value


def _path_text(value: object) -> object:
    """*value* through ``os.fspath`` when it is path-like, else *value* unchanged."""
    if isinstance(value, os.PathLike):
        # isinstance cannot tell what __fspath__ returns; os.fspath checks it is str or bytes.
        return os.fspath(cast("os.PathLike[str] | os.PathLike[bytes]", value))
    return value


def _directory(value: object, field: str) -> str | None:
    if value is None:
        return None
    path = _path_text(value)
    if not isinstance(path, str):
        raise TypeError(f"{field} must be None, a str or a path; got {_describe(value)}")
    if not path or "\0" in path:
        raise ValueError(f"{field} must be a non-empty path without NUL bytes; got {_show(value)}")
    return path


def _exit_code(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an int from 0 to 255; got {_describe(value)}")
    if not 0 <= value <= 255:
        raise ValueError(f"{field} must be an int from 0 to 255; got {_show(value)}")
    return int(value)


def _report_file(value: object, field: str) -> str | None:
    if value is None:
        return None
    value = _path_text(value)
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, an os.PathLike or None; got {_describe(value)}")
    if not value.strip():
        raise ValueError(f"{field} must be a file path, not an empty string; got {_show(value)}")
    if "\0" in value:
        raise ValueError(f"{field} must not contain a NUL character; got {_show(value)}")
    return value


MIN_PROGRESS_INTERVAL = 0.01
"""Shortest ``progress_interval``: a progress line more often than this is noise."""


def _at_least(seconds: float, minimum: float, field: str, value: object) -> float:
    if seconds < minimum:
        raise ValueError(f"{field} must be at least {minimum}s; got {_show(value)}")
    return seconds


def _duration_normaliser(*, allow_zero: bool) -> Callable[[object, str], float]:
    def normalise(value: object, field: str) -> float:
        return check_duration(value, field, allow_zero=allow_zero)

    return normalise


_NORMALISERS: dict[str, Callable[[object, str], object]] = {
    "wrap_up_time": _duration_normaliser(allow_zero=True),
    "wait_time": _duration_normaliser(allow_zero=False),
    "drain_delay": _duration_normaliser(allow_zero=True),
    "hook_timeout": parse_timeout,
    "signals": parse_signals,
    "signal_mode": _choice(_SIGNAL_MODES),
    "second_signal": _choice(_SECOND_SIGNAL_MODES),
    "hard_exit": _hard_exit,
    "watchdog_grace": _duration_normaliser(allow_zero=True),
    "force_exit_code": _exit_code,
    "progress_interval": lambda value, field: _at_least(
        check_duration(value, field, allow_zero=False), MIN_PROGRESS_INTERVAL, field, value
    ),
    "diagnostics": _strict_bool,
    "diagnostics_dir": _directory,
    "profile_duration": _duration_normaliser(allow_zero=False),
    "report_file": _report_file,
    "systemd_notify": _hard_exit,
    "systemd_ready": _choice(_SYSTEMD_READY_MODES),
}

# Float sums are inexact (0.1 + 0.2 > 0.3); a nanosecond, Go's resolution, is the
# slack that keeps such configurations valid without admitting real overruns.
_INVARIANT_SLACK = 1e-9


# ---------------------------------------------------------------------------
# Loader conversions (mapping and environment values arrive as strings)
# ---------------------------------------------------------------------------

_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})
_NONE_WORDS = frozenset({"", "auto", "none", "null"})
_INT = re.compile(r"[+-]?[0-9]{1,12}")


def _from_text(field: str, value: object) -> object:
    """Convert a string from YAML or the environment into what the constructor takes.

    Kept out of the constructor on purpose: ``ShutdownConfig(hard_exit="no")`` is a
    programming error, but ``GRACESTOP_HARD_EXIT=no`` is the only way to say it.
    """
    if not isinstance(value, str):
        return value
    word = value.strip().lower()
    if field == "hook_timeout" and word in {"", "none", "null"}:
        return None
    if field == "diagnostics":
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise ValueError(f"{field} must be true/false/yes/no/on/off/1/0; got {_show(value)}")
    if field == "diagnostics_dir" and word in {"", "none", "null"}:
        return None
    if field == "report_file" and not word:
        # An empty variable is how a deployment unsets an inherited one.
        return None
    if field in {"hard_exit", "systemd_notify"}:
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        if word in _NONE_WORDS:
            return None
        raise ValueError(
            f"{field} must be true/false/yes/no/on/off/1/0 or auto/none/null; got {_show(value)}"
        )
    if field == "force_exit_code":
        if not _INT.fullmatch(word):
            raise ValueError(f"{field} must be an int from 0 to 255; got {_show(value)}")
        return int(word)
    if field == "signals":
        if word == "none":
            return ()
        return tuple(part for part in re.split(r"[,\s]+", value) if part)
    if field in {"signal_mode", "second_signal", "systemd_ready"}:
        return word
    return value


def _camel_to_snake(key: str) -> str | None:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key):
        return None
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()


def _snake_to_camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _with_prefix(exc: Exception, prefix: str) -> Exception:
    cls = TypeError if isinstance(exc, TypeError) else ValueError
    return cls(f"{prefix}: {exc}")


# ---------------------------------------------------------------------------
# ShutdownConfig
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ShutdownConfig:
    """Validated, immutable settings of a shutdown coordinator.

    Durations are stored as float seconds but may be given as ``int``/``float``
    seconds, ``datetime.timedelta`` or go-zero style strings (``"500ms"``, ``"5.5s"``,
    ``"1m30s"``). Signals may be given by name or number and are stored as a tuple
    of ``signal.Signals``. A wrong type raises ``TypeError``, a bad value
    ``ValueError``, an unknown field
    [`UnknownFieldError`][gracestop.UnknownFieldError]; every message names the field
    and the value given.

    Invariant: ``drain_delay + wrap_up_time <= wait_time`` (``wait_time`` is counted
    from the trigger and covers the drain delay and both phases).

    Examples:
        >>> cfg = ShutdownConfig(wait_time="10s", wrap_up_time=2, signals=["TERM"])
        >>> cfg.wait_time, cfg.wrap_up_time, cfg.signals
        (10.0, 2.0, (<Signals.SIGTERM: 15>,))
        >>> cfg.replace(drain_delay="3s").drain_delay
        3.0
        >>> ShutdownConfig.from_mapping({"WrapUpTime": "2s", "WaitTime": "10s"}).wait_time
        10.0
        >>> ShutdownConfig.from_env(environ={"GRACESTOP_WAIT_TIME": "8s"}).wait_time
        8.0
    """

    wrap_up_time: float = 1.0
    wait_time: float = 5.5
    drain_delay: float = 0.0
    hook_timeout: float | None = None
    signals: tuple[signal.Signals, ...] | None = None
    signal_mode: SignalMode = "auto"
    second_signal: SecondSignal = "force"
    hard_exit: bool | None = None
    watchdog_grace: float = 0.5
    force_exit_code: int = 1
    progress_interval: float = 1.0
    diagnostics: bool = False
    diagnostics_dir: str | None = None
    profile_duration: float = 60.0
    report_file: str | None = None
    systemd_notify: bool | None = None
    systemd_ready: SystemdReady = "enter"

    if TYPE_CHECKING:
        # What type checkers see: the constructor takes the raw forms that
        # __post_init__ normalises, while the attributes stay precisely typed.
        def __init__(  # noqa: PLR0917 (the dataclass __init__ is positional too)
            self,
            wrap_up_time: DurationLike = 1.0,
            wait_time: DurationLike = 5.5,
            drain_delay: DurationLike = 0.0,
            hook_timeout: DurationLike | None = None,
            signals: SignalLike | Iterable[SignalLike] | None = None,
            signal_mode: SignalMode = "auto",
            second_signal: SecondSignal = "force",
            hard_exit: bool | None = None,
            watchdog_grace: DurationLike = 0.5,
            force_exit_code: int = 1,
            progress_interval: DurationLike = 1.0,
            diagnostics: bool = False,
            diagnostics_dir: str | os.PathLike[str] | None = None,
            profile_duration: DurationLike = 60.0,
            report_file: str | os.PathLike[str] | None = None,
            systemd_notify: bool | None = None,
            systemd_ready: SystemdReady = "enter",
        ) -> None: ...

    else:
        # Run time only: type checkers read the constructor from __init__ above.
        def __new__(cls, *args: object, **kwargs: object) -> ShutdownConfig:
            """Refuse unknown keyword arguments with `UnknownFieldError`.

            Done here because the dataclass ``__init__`` would raise a bare ``TypeError``
            without naming the valid fields.
            """
            for key in kwargs:
                if key not in _FIELD_SET:
                    raise UnknownFieldError(key, FIELD_NAMES)
            return super().__new__(cls)

    def __post_init__(self) -> None:
        """Normalise every field in declaration order, then check the invariant."""
        for name in FIELD_NAMES:
            object.__setattr__(self, name, _NORMALISERS[name](getattr(self, name), name))
        if self.drain_delay + self.wrap_up_time - self.wait_time > _INVARIANT_SLACK:
            raise ValueError(
                f"drain_delay + wrap_up_time must not exceed wait_time: "
                f"drain_delay={self.drain_delay!r} + wrap_up_time={self.wrap_up_time!r} "
                f"= {self.drain_delay + self.wrap_up_time!r} > wait_time={self.wait_time!r}"
            )

    def replace(self, **changes: object) -> ShutdownConfig:
        """Return a copy with *changes* applied, validated like a new config.

        Raises:
            UnknownFieldError: a key is not a field name.

        >>> ShutdownConfig().replace(wait_time="30s").wait_time
        30.0
        """
        for key in changes:
            if key not in _FIELD_SET:
                raise UnknownFieldError(key, FIELD_NAMES)
        values: dict[str, object] = {name: getattr(self, name) for name in FIELD_NAMES}
        values.update(changes)
        return _build(type(self), values)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object]) -> ShutdownConfig:
        """Build a config from a mapping, e.g. a section of a YAML/JSON/TOML file.

        Keys are field names (``wait_time``) or their go-zero CamelCase spelling
        (``WaitTime``, ``WrapUpTime``, ...), so a go-zero ``Shutdown:`` section ports
        as is. Values may be strings: ``hard_exit`` also takes ``true/false/yes/no/
        on/off/1/0/auto/none/null``, ``force_exit_code`` numeric strings, ``signals``
        a comma-separated string (``"TERM,INT"``), ``hook_timeout`` ``""``/``"none"``.
        Missing fields keep their defaults.

        Raises:
            TypeError: *mapping* is not a mapping, a key is not a ``str``, or a value
                has the wrong type.
            UnknownFieldError: a key names no field.
            ValueError: a bad value, or one field given under both spellings.

        >>> ShutdownConfig.from_mapping({"WrapUpTime": "2s", "WaitTime": "10s"}).wrap_up_time
        2.0
        """
        if not isinstance(mapping, Mapping):
            raise TypeError(
                f"ShutdownConfig.from_mapping expects a mapping; got {_describe(mapping)}"
            )
        seen: dict[str, str] = {}
        values: dict[str, object] = {}
        for key, raw in mapping.items():
            if not isinstance(key, str):
                raise TypeError(f"configuration keys must be str; got {_describe(key)}")
            name = key if key in _FIELD_SET else _camel_to_snake(key)
            if name not in _FIELD_SET:
                raise UnknownFieldError(key, _MAPPING_KEYS, kind="key")
            if name in seen:
                raise ValueError(
                    f"{name} is given twice, as {seen[name]!r} and as {key!r}; keep one"
                )
            seen[name] = key
            try:
                values[name] = _NORMALISERS[name](_from_text(name, raw), name)
            except (TypeError, ValueError) as exc:
                if key == name:
                    raise
                raise _with_prefix(exc, key) from None
        return _build(cls, values)

    @classmethod
    def from_env(
        cls, prefix: str = "GRACESTOP_", environ: Mapping[str, str] | None = None
    ) -> ShutdownConfig:
        """Build a config from environment variables ``PREFIX + FIELD.upper()``.

        ``GRACESTOP_WAIT_TIME=10s``, ``GRACESTOP_SIGNALS=TERM,INT``,
        ``GRACESTOP_HARD_EXIT=false`` and so on; values are read like
        `from_mapping` string values. An empty ``GRACESTOP_SIGNALS`` (or
        ``none``) means no signals; an empty ``GRACESTOP_HOOK_TIMEOUT``,
        ``GRACESTOP_HARD_EXIT`` or ``GRACESTOP_REPORT_FILE`` means ``None``. Unset
        variables keep the defaults.

        A variable that starts with *prefix* but names no field raises
        [`UnknownFieldError`][gracestop.UnknownFieldError], so a typo does not pass
        silently; suffixes in
        `RESERVED_ENV_SUFFIXES` belong to other features and are skipped. With
        an empty *prefix* that check is impossible and unknown names are ignored.

        *environ* defaults to ``os.environ``. Error messages start with the variable.

        >>> ShutdownConfig.from_env(environ={"GRACESTOP_SIGNALS": "TERM"}).signals
        (<Signals.SIGTERM: 15>,)
        """
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str; got {_describe(prefix)}")
        env: Mapping[str, str] = os.environ if environ is None else environ
        if not isinstance(env, Mapping):
            raise TypeError(f"environ must be a mapping; got {_describe(env)}")
        values: dict[str, object] = {}
        given: list[str] = []
        if prefix:
            valid_vars = tuple(prefix + name.upper() for name in FIELD_NAMES)
            for var in env:
                if not isinstance(var, str) or not var.startswith(prefix):
                    continue
                suffix = var[len(prefix) :]
                if suffix in RESERVED_ENV_SUFFIXES:
                    continue
                if suffix.lower() not in _FIELD_SET or suffix != suffix.upper():
                    raise UnknownFieldError(var, valid_vars, kind="environment variable")
        for name in FIELD_NAMES:
            var = prefix + name.upper()
            if var not in env:
                continue
            raw = env[var]
            if name == "signals" and isinstance(raw, str) and not raw.strip():
                raw = "none"
            try:
                values[name] = _NORMALISERS[name](_from_text(name, raw), name)
            except (TypeError, ValueError) as exc:
                raise _with_prefix(exc, var) from None
            given.append(var)
        try:
            return _build(cls, values)
        except (TypeError, ValueError) as exc:
            # Only the invariant can fail here: every field was checked above.
            raise _with_prefix(exc, ", ".join(given)) from None

    def to_dict(self) -> dict[str, object]:
        """Return the fields as a JSON-serialisable dict (signals as names, e.g. ``"SIGTERM"``).

        ``ShutdownConfig.from_mapping(cfg.to_dict()) == cfg`` always holds.

        Examples:
            >>> ShutdownConfig(signals=["TERM"]).to_dict()["signals"]
            ['SIGTERM']
        """
        data: dict[str, object] = {name: getattr(self, name) for name in FIELD_NAMES}
        if self.signals is not None:
            data["signals"] = [sig.name for sig in self.signals]
        return data


def _build(cls: type[ShutdownConfig], values: dict[str, object]) -> ShutdownConfig:
    # The values are raw user input; the typed __init__ signature cannot express
    # "anything, validated at run time".
    return cls(**cast("dict[str, Any]", values))


FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(ShutdownConfig))
"""The names of [`ShutdownConfig`][gracestop.ShutdownConfig]'s fields, in declaration order."""

_FIELD_SET: frozenset[str] = frozenset(FIELD_NAMES)
_MAPPING_KEYS: tuple[str, ...] = FIELD_NAMES + tuple(_snake_to_camel(n) for n in FIELD_NAMES)
