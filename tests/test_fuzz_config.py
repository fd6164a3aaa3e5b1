"""Fuzzing every way configuration gets in.

Each entry point (the constructor, ``replace``, ``from_mapping``, ``from_env``, the
coordinator's keyword overrides, ``set_time_to_force_quit``, ``set_testing``, hook
options, the duration and signal parsers, and the ``gracestop config`` file loader)
is fed arbitrary input. Only the documented exceptions may come out (``TypeError``,
``ValueError``, ``UnknownFieldError``; ``ConfigSourceError`` for a file that cannot be
read), each naming the field or key it is about; valid input gives a normalised
config that round-trips through every form it can be written in.

More examples: ``GRACESTOP_FUZZ_PROFILE=long`` (see ``tests/_fuzz.py``).
"""

from __future__ import annotations

import json
import math
import pickle
import signal
import string
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from hypothesis import assume, example, given
from hypothesis import strategies as st

import gracestop
from _fuzz import fuzz_settings
from gracestop import Hooks, ShutdownConfig, ShutdownCoordinator, UnknownFieldError
from gracestop._cli import ConfigSourceError, load_config, stop_timeout
from gracestop._config import (
    FIELD_NAMES,
    RESERVED_ENV_SUFFIXES,
    check_duration,
    parse_duration,
    parse_signals,
    parse_timeout,
)
from gracestop.testing import current_settings, is_testing, set_testing

FUZZ = fuzz_settings(ci=80, long=5000)
FUZZ_FEW = fuzz_settings(ci=30, long=1000)

DURATION_FIELDS = (
    "wrap_up_time",
    "wait_time",
    "drain_delay",
    "watchdog_grace",
    "progress_interval",
    "profile_duration",
)
CAMEL = {name: "".join(part.capitalize() for part in name.split("_")) for name in FIELD_NAMES}
UNCATCHABLE = {"SIGKILL", "SIGSTOP", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL"}
CATCHABLE = tuple(s for s in signal.Signals if s.name not in UNCATCHABLE)
DEFAULTS = ShutdownConfig()

# The words the loaders give a meaning to, and strings near the duration grammar.
WORDS = (
    *("", " ", "0", "1", "-1", "1s", "250ms", "1m30s", "5.5s", "-1s", "1e-05s", "inf", "-inf"),
    *("nan", "NaN", "sNaN", "Infinity", "1d", "5 s", "5S", "1_000", "\u0663s", "0x10"),
    *("true", "false", "yes", "no", "on", "off", "auto", "none", "null", "None", "NULL"),
    *("handler", " Handler ", "force", "ignore", "enter", "manual", "TERM,INT", "SIGTERM SIGHUP"),
    *("KILL", "SIGSTOP", "SEGV", "TREM", "term", " sigint ", "HUP,,INT", "255", "256", "007"),
)
DURATION_ALPHABET = "0123456789.+-eEnsumh\u00b5\u03bc infyaNI"


def signal_spellings() -> st.SearchStrategy[object]:
    """One signal as a user may write it: member, number, or a name in any spelling."""
    names = st.sampled_from(sorted(signal.Signals.__members__))
    return st.one_of(
        st.sampled_from(list(signal.Signals)),
        st.sampled_from([int(s) for s in signal.Signals]),
        st.integers(-3, 80),
        names,
        names.map(lambda n: n.removeprefix("SIG")),
        names.map(lambda n: f" {n.lower()} "),
        # Numbers as text, as GRACESTOP_SIGNALS=15,2 gives them.
        st.sampled_from([str(int(s)) for s in signal.Signals]),
        st.sampled_from([f" {int(s)} " for s in signal.Signals]),
    )


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**64, -(2**64), 10**400, -(10**400)]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]),
    st.decimals(),
    st.sampled_from([Decimal("NaN"), Decimal("sNaN"), Decimal("-Infinity"), Decimal("1e999999")]),
    st.fractions(),
    st.complex_numbers(),
    st.timedeltas(),
    st.sampled_from([timedelta.max, timedelta.min, timedelta(0), -timedelta(microseconds=1)]),
    st.text(max_size=40),
    st.text(alphabet=DURATION_ALPHABET, max_size=30),
    st.sampled_from(WORDS),
    st.binary(max_size=12),
    signal_spellings(),
    st.sampled_from([object(), Path("/tmp/x"), PurePosixPath("rel"), print, ShutdownConfig]),
)
ANYTHING = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.frozensets(st.integers() | st.text(max_size=5), max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=8,
)
# Ints whose decimal form Python refuses to build (sys.get_int_max_str_digits()).
HUGE_INTS = st.sampled_from([4400, 5000]).map(lambda digits: 10**digits)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def spellings(name: str) -> list[str]:
    """The ways a key for *name* may be spelled, right and wrong."""
    camel = CAMEL[name]
    return [name, camel, camel[0].lower() + camel[1:], name.upper(), camel.upper(), name + " "]


KEYS = st.one_of(
    st.sampled_from(FIELD_NAMES).flatmap(lambda name: st.sampled_from(spellings(name))),
    st.text(max_size=14),
    st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=14),
)


def shown(value: object) -> str:
    """How a short, plain value appears in an error message: its repr."""
    return repr(value)


def attempt(
    func: Callable[..., Any], *args: object, **kwargs: object
) -> tuple[Any, Exception | None]:
    """Call *func*; return its result and ``None``, or ``None`` and what it raised."""
    try:
        return func(*args, **kwargs), None
    except Exception as exc:
        return None, exc


def check_error(exc: BaseException, *names: str) -> None:
    """A documented exception whose message names one of *names*."""
    assert isinstance(exc, (TypeError, ValueError)), f"undocumented {type(exc).__name__}: {exc}"
    message = str(exc)
    assert message, f"{type(exc).__name__} without a message"
    assert any(name in message for name in names), f"{message!r} names none of {names}"
    assert len(message) < 2000, f"a wall of text: {len(message)} characters"


def plain(value: object) -> bool:
    """A value whose repr an error message is expected to contain in full."""
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return abs(value) < 10**20
    if isinstance(value, float):
        return True
    return isinstance(value, str) and len(repr(value)) <= 60


def check_normalised(cfg: ShutdownConfig) -> None:
    """Every field of a config that was accepted has its documented type and range."""
    for name in ("wrap_up_time", "drain_delay", "watchdog_grace"):
        value = getattr(cfg, name)
        assert type(value) is float and 0 <= value < math.inf, (name, value)
    for name in ("wait_time", "profile_duration"):
        value = getattr(cfg, name)
        assert type(value) is float and 0 < value < math.inf, (name, value)
    assert type(cfg.progress_interval) is float and 0.01 <= cfg.progress_interval < math.inf
    assert cfg.hook_timeout is None or (
        type(cfg.hook_timeout) is float and 0 < cfg.hook_timeout < math.inf
    )
    assert cfg.signals is None or (
        type(cfg.signals) is tuple
        and len(set(cfg.signals)) == len(cfg.signals)
        and all(type(s) is signal.Signals and s in CATCHABLE for s in cfg.signals)
    )
    assert cfg.signal_mode in ("auto", "handler")
    assert cfg.second_signal in ("force", "ignore")
    assert cfg.systemd_ready in ("enter", "manual")
    for name in ("hard_exit", "systemd_notify"):
        assert getattr(cfg, name) in (None, True, False)
    assert type(cfg.diagnostics) is bool
    assert type(cfg.force_exit_code) is int and 0 <= cfg.force_exit_code <= 255
    for name in ("diagnostics_dir", "report_file"):
        value = getattr(cfg, name)
        assert value is None or (type(value) is str and value.strip() and "\0" not in value)
    assert cfg.drain_delay + cfg.wrap_up_time <= cfg.wait_time + 1e-9
    hash(cfg)


# ---------------------------------------------------------------------------
# Valid configurations, in every form a value may be given
# ---------------------------------------------------------------------------


def seconds_forms(seconds: float) -> st.SearchStrategy[object]:
    """*seconds* written as a float, a timedelta-free string, or a Go duration."""
    forms: list[object] = [seconds, repr(seconds), f"{seconds!r}s", f" {seconds!r}s "]
    if seconds == int(seconds) and seconds < 10**15:
        forms += [int(seconds), f"{int(seconds)}s", f"{int(seconds) * 1000}ms"]
    return st.sampled_from(forms)


def durations(low: float, high: float, *, zero: bool) -> st.SearchStrategy[float]:
    values = st.floats(low, high, allow_nan=False, allow_infinity=False)
    if not zero:
        values = values.filter(lambda x: x > 0)
    common = [v for v in (0.0, 1e-05, 0.01, 0.5, 1.0, 30.0) if low <= v <= high and (zero or v)]
    return values | st.sampled_from(common) if common else values


@st.composite
def valid_configs(draw: st.DrawFn) -> tuple[dict[str, object], ShutdownConfig]:
    """Raw keyword arguments that form a valid config, and the config they give."""
    wait = draw(durations(1e-6, 1e6, zero=False))
    drain = draw(durations(0.0, wait, zero=True).filter(lambda x: x <= wait))
    wrap = draw(durations(0.0, wait, zero=True).filter(lambda x: drain + x <= wait))
    raw: dict[str, object] = {}
    for name, value in (("wait_time", wait), ("drain_delay", drain), ("wrap_up_time", wrap)):
        raw[name] = draw(seconds_forms(value))
    optional: dict[str, st.SearchStrategy[object]] = {
        "hook_timeout": st.none() | durations(1e-6, 1e4, zero=False).flatmap(seconds_forms),
        "signals": st.none()
        | st.lists(st.sampled_from(CATCHABLE), max_size=4).flatmap(
            lambda sigs: st.sampled_from(
                [sigs, tuple(sigs), [s.name for s in sigs], [int(s) for s in sigs]]
            )
        )
        | st.sampled_from(CATCHABLE).map(lambda s: s.name[3:]),
        "signal_mode": st.sampled_from(["auto", "handler"]),
        "second_signal": st.sampled_from(["force", "ignore"]),
        "hard_exit": st.sampled_from([None, True, False]),
        "watchdog_grace": durations(0.0, 100.0, zero=True).flatmap(seconds_forms),
        "force_exit_code": st.integers(0, 255),
        "progress_interval": durations(0.01, 1e4, zero=False).flatmap(seconds_forms),
        "diagnostics": st.booleans(),
        "diagnostics_dir": st.none()
        | st.sampled_from(["/srv/diag", "diag dir", "~/d", " lead", "x", "./none", "nones"])
        | st.text(
            alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"),
            min_size=1,
            max_size=12,
        ).filter(lambda path: path.strip() and path.strip().lower() not in ("none", "null")),
        "profile_duration": durations(1e-3, 1e4, zero=False).flatmap(seconds_forms),
        "report_file": st.none() | st.sampled_from(["/run/app/report.json", "r.json", "none"]),
        "systemd_notify": st.sampled_from([None, True, False]),
        "systemd_ready": st.sampled_from(["enter", "manual"]),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            raw[name] = draw(strategy)
    return raw, ShutdownConfig(**raw)


def to_env(cfg: ShutdownConfig, prefix: str = "GRACESTOP_") -> dict[str, str]:
    """*cfg* as environment variables, written as a deployment would write them."""
    env: dict[str, str] = {}
    for name, value in cfg.to_dict().items():
        if value is None:
            if name == "signals":
                continue  # the default; an empty variable would mean "no signals"
            text = ""
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ",".join(value) or "none"
        elif isinstance(value, float):
            text = f"{value!r}s"
        else:
            text = str(value)
        env[prefix + name.upper()] = text
    return env


# ---------------------------------------------------------------------------
# The constructor, replace() and the coordinator's overrides
# ---------------------------------------------------------------------------


@FUZZ
@given(name=st.sampled_from(FIELD_NAMES), value=ANYTHING | HUGE_INTS)
def test_constructor_one_field_of_anything(name: str, value: object) -> None:
    cfg, error = attempt(ShutdownConfig, **{name: value})
    if error is None:
        check_normalised(cfg)
        return
    check_error(error, name)
    assert type(error) in (TypeError, ValueError)
    if "must not exceed" not in str(error) and plain(value):
        assert shown(value) in str(error), f"{str(error)!r} does not show {value!r}"


@FUZZ
@given(values=st.dictionaries(st.sampled_from(FIELD_NAMES), ANYTHING, max_size=6))
def test_constructor_many_fields_of_anything(values: dict[str, object]) -> None:
    cfg, error = attempt(ShutdownConfig, **values)
    if error is None:
        check_normalised(cfg)
    else:
        check_error(error, *values)


@FUZZ
@given(key=st.text(max_size=30).filter(lambda k: k not in FIELD_NAMES), value=ANYTHING)
def test_unknown_keyword_is_unknown_field_error(key: str, value: object) -> None:
    with pytest.raises(UnknownFieldError) as info:
        ShutdownConfig(**{key: value})
    assert info.value.key == key
    assert shown(key) in str(info.value) or not plain(key)
    assert set(info.value.suggestions) <= set(FIELD_NAMES)
    restored = pickle.loads(pickle.dumps(info.value))
    assert (restored.key, str(restored)) == (key, str(info.value))


@FUZZ
@given(args=st.lists(ANYTHING, max_size=len(FIELD_NAMES) + 2))
def test_positional_arguments_of_anything(args: list[object]) -> None:
    cfg, error = attempt(ShutdownConfig, *args)
    if error is None:
        check_normalised(cfg)
    elif len(args) <= len(FIELD_NAMES):
        check_error(error, *FIELD_NAMES[: len(args)])
    else:
        assert type(error) is TypeError and "positional" in str(error)


@FUZZ
@given(config=valid_configs(), changes=st.dictionaries(KEYS, ANYTHING, max_size=3))
def test_replace_validates_like_the_constructor(
    config: tuple[dict[str, object], ShutdownConfig], changes: dict[str, object]
) -> None:
    raw, cfg = config
    changed, error = attempt(cfg.replace, **changes)
    if error is None:
        check_normalised(changed)
        assert changed == ShutdownConfig(**{**cfg.to_dict(), **changes})
    elif isinstance(error, UnknownFieldError):
        assert error.key in changes and error.key not in FIELD_NAMES
    else:
        check_error(error, *changes)
        with pytest.raises(type(error)):
            ShutdownConfig(**{**raw, **changes})


@FUZZ
@given(overrides=st.dictionaries(KEYS, ANYTHING, max_size=4))
def test_coordinator_overrides_validate_like_the_constructor(
    overrides: dict[str, object],
) -> None:
    with set_testing(False):
        expected, error = attempt(ShutdownConfig, **overrides)
        coord, coord_error = attempt(ShutdownCoordinator, hooks=Hooks(), **overrides)
    if error is None:
        assert coord_error is None, coord_error
        assert coord.config == expected
        return
    assert type(coord_error) is type(error) and str(coord_error) == str(error)
    if isinstance(error, UnknownFieldError):
        assert error.key in overrides
    else:
        check_error(error, *overrides)


@FUZZ
@given(config=valid_configs(), given_as=st.sampled_from(["overrides", "config"]))
def test_testing_mode_keeps_what_the_test_sets(
    config: tuple[dict[str, object], ShutdownConfig], given_as: str
) -> None:
    """In testing mode a field the code sets is kept and every other one takes the
    testing value, unless the testing timings do not fit the code's own."""
    raw, cfg = config
    with set_testing(True):
        testing = current_settings()
        if given_as == "overrides":
            coord = ShutdownCoordinator(hooks=Hooks(), **raw)  # type: ignore[arg-type]
            chosen = set(raw)
        else:
            coord = ShutdownCoordinator(cfg, hooks=Hooks())
            chosen = {n for n in FIELD_NAMES if getattr(cfg, n) != getattr(DEFAULTS, n)}
    check_normalised(coord.config)
    timings = {"drain_delay", "wrap_up_time", "wait_time"}
    fit = all(getattr(coord.config, n) == testing[n] for n in timings - chosen)
    if not fit:
        mixed = {n: testing[n] if n not in chosen else getattr(cfg, n) for n in timings}
        with pytest.raises(ValueError, match="must not exceed wait_time"):
            ShutdownConfig(**mixed)  # type: ignore[arg-type]
    for name in FIELD_NAMES:
        value = getattr(coord.config, name)
        if name in chosen:
            assert value == getattr(cfg, name), name
        elif name in testing and (name not in timings or fit):
            assert value == testing[name], name
        elif name not in timings:
            assert value == getattr(DEFAULTS, name), name
        else:
            # The testing timings did not fit: the code's own are kept, as they are.
            assert value == getattr(DEFAULTS, name), name


@FUZZ_FEW
@given(config=ANYTHING, hooks=ANYTHING, observers=ANYTHING)
def test_coordinator_arguments_of_anything(
    config: object, hooks: object, observers: object
) -> None:
    with set_testing(False):
        coord, error = attempt(ShutdownCoordinator, config, hooks=hooks, observers=observers)
    if error is None:
        assert coord.config == (DEFAULTS if config is None else config)
    else:
        assert type(error) is TypeError, error
        check_error(error, "config", "hooks", "observers", "observer")


@FUZZ_FEW
@given(
    main=st.sampled_from([None, 10**5000, "main", print]) | ANYTHING,
    backend=st.sampled_from(["asyncio", "trio", "curio", "", 10**5000]) | ANYTHING,
    overrides=st.dictionaries(KEYS, ANYTHING, max_size=3),
)
def test_run_refuses_bad_arguments_before_the_loop_starts(
    main: object, backend: object, overrides: dict[str, object]
) -> None:
    """``gracestop.run()`` checks its arguments and configuration first: a bad one
    raises the documented error and neither the loop nor ``main`` ever runs."""
    ran: list[object] = []

    async def good_main(coord: object) -> None:
        ran.append(coord)

    with set_testing(False):
        _, config_error = attempt(ShutdownConfig, **overrides)
        if config_error is None and main is None and backend in ("asyncio", "trio"):
            return  # a valid call: it would run the loop and end the process
        target = good_main if main is None else main
        _, error = attempt(gracestop.run, target, backend=backend, **overrides)
    assert ran == []
    assert isinstance(error, (TypeError, ValueError)), error
    if main is not None or not isinstance(backend, str) or backend not in ("asyncio", "trio"):
        check_error(error, "main", "backend")
    else:
        assert type(error) is type(config_error) and str(error) == str(config_error)


@FUZZ
@given(config=valid_configs(), seconds=ANYTHING | HUGE_INTS)
def test_set_time_to_force_quit_of_anything(
    config: tuple[dict[str, object], ShutdownConfig], seconds: object
) -> None:
    _, cfg = config
    with set_testing(False):
        coord = ShutdownCoordinator(cfg, hooks=Hooks())
    _, error = attempt(coord.set_time_to_force_quit, seconds)
    if error is None:
        check_normalised(coord.config)
        assert coord.config == cfg.replace(wait_time=seconds)
    else:
        check_error(error, "wait_time")
        assert coord.config == cfg


@FUZZ_FEW
@given(testing=ANYTHING, settings=st.dictionaries(KEYS, ANYTHING, max_size=3))
def test_set_testing_of_anything(testing: object, settings: dict[str, object]) -> None:
    with set_testing(False):
        restore, error = attempt(set_testing, testing, **settings)
        if error is None:
            with restore:
                assert is_testing() is testing
    if isinstance(error, UnknownFieldError):
        assert error.key in settings
    elif error is not None:
        check_error(error, "testing", *settings)


@FUZZ
@given(
    register=st.sampled_from(["on_wrap_up", "on_shutdown", "add_wrap_up_listener"]),
    name=ANYTHING | HUGE_INTS,
    timeout=ANYTHING,
    order=ANYTHING,
)
def test_hook_options_of_anything(
    register: str, name: object, timeout: object, order: object
) -> None:
    hooks = Hooks()

    async def hook() -> None:
        """Never called: only its registration is fuzzed."""

    def add() -> None:
        method: Callable[..., Any] = getattr(hooks, register)
        if register == "add_wrap_up_listener":
            method(hook, name=name, timeout=timeout, order=order)
        else:
            method(name=name, timeout=timeout, order=order)(hook)

    _, error = attempt(add)
    if error is None:
        (registered,) = hooks
        assert registered.timeout is None or 0 < registered.timeout < math.inf
        assert isinstance(registered.order, int) and isinstance(registered.name, str)
    else:
        check_error(error, "name", "timeout", "order")
        assert len(hooks) == 0


# ---------------------------------------------------------------------------
# Mappings (YAML/JSON/TOML sections) and the environment
# ---------------------------------------------------------------------------


@FUZZ
@given(mapping=st.dictionaries(KEYS, ANYTHING | JSON, max_size=6))
def test_from_mapping_of_anything(mapping: dict[str, object]) -> None:
    cfg, error = attempt(ShutdownConfig.from_mapping, mapping)
    if error is None:
        check_normalised(cfg)
        assert ShutdownConfig.from_mapping(cfg.to_dict()) == cfg
    elif isinstance(error, UnknownFieldError):
        assert error.key in mapping
        assert shown(error.key) in str(error) or not plain(error.key)
    else:
        check_error(error, *mapping)


@FUZZ
@given(tree=JSON | st.dictionaries(st.integers() | st.none() | st.text(), JSON, max_size=3))
def test_from_mapping_of_any_json_tree(tree: object) -> None:
    cfg, error = attempt(ShutdownConfig.from_mapping, tree)
    if error is None:
        check_normalised(cfg)
    elif not isinstance(tree, Mapping):
        assert type(error) is TypeError and "mapping" in str(error)
    else:
        assert isinstance(error, (TypeError, ValueError)), error
        assert str(error)


@FUZZ
@given(name=st.sampled_from(FIELD_NAMES), value=ANYTHING | JSON)
def test_from_mapping_errors_name_the_key_used(name: str, value: object) -> None:
    expected, error = attempt(ShutdownConfig.from_mapping, {name: value})
    camel, camel_error = attempt(ShutdownConfig.from_mapping, {CAMEL[name]: value})
    if error is None:
        assert camel == expected
        return
    check_error(error, name)
    assert type(camel_error) is type(error)
    if CAMEL[name] != name:
        message = str(camel_error)
        # A field's own error starts with the key used; the rule between fields names fields.
        assert message.startswith(f"{CAMEL[name]}: ") or "must not exceed" in message, message


@FUZZ
@given(config=valid_configs(), camel=st.booleans())
def test_valid_configs_round_trip(
    config: tuple[dict[str, object], ShutdownConfig], camel: bool
) -> None:
    _, cfg = config
    check_normalised(cfg)
    assert ShutdownConfig(**cfg.to_dict()) == cfg
    assert cfg.replace() == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    data = cfg.to_dict()
    if camel:
        data = {CAMEL[name]: value for name, value in data.items()}
    assert ShutdownConfig.from_mapping(json.loads(json.dumps(data))) == cfg
    assert ShutdownConfig.from_env(environ=to_env(cfg)) == cfg
    assert ShutdownConfig.from_env("APP_", environ=to_env(cfg, "APP_")) == cfg


ENV_SUFFIXES = st.one_of(
    st.sampled_from(FIELD_NAMES).map(str.upper),
    st.sampled_from(FIELD_NAMES),
    st.sampled_from(sorted(RESERVED_ENV_SUFFIXES)),
    st.text(alphabet=string.ascii_uppercase + "_", max_size=14),
    st.text(max_size=10),
)
ENV_VALUES = st.sampled_from(WORDS) | st.text(max_size=16) | st.text(DURATION_ALPHABET, max_size=12)


@FUZZ
@given(
    prefix=st.sampled_from(["GRACESTOP_", "APP_", "", "x"]) | st.text(max_size=6),
    suffixes=st.dictionaries(ENV_SUFFIXES, ENV_VALUES, max_size=5),
    others=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
)
def test_from_env_of_anything(
    prefix: str, suffixes: dict[str, str], others: dict[str, str]
) -> None:
    environ = {**others, **{prefix + suffix: value for suffix, value in suffixes.items()}}
    read = [var for var in environ if var.startswith(prefix)]
    cfg, error = attempt(ShutdownConfig.from_env, prefix, environ=environ)
    if error is None:
        check_normalised(cfg)
        for name in FIELD_NAMES:
            if prefix + name.upper() not in environ:
                assert getattr(cfg, name) == getattr(DEFAULTS, name)
    elif isinstance(error, UnknownFieldError):
        assert prefix and error.key in read
        assert error.key.removeprefix(prefix) not in RESERVED_ENV_SUFFIXES
    else:
        check_error(error, *read)
        # Errors start with the variable (or, for the rule, the variables) read.
        assert str(error).startswith(prefix), error


@FUZZ_FEW
@given(prefix=ANYTHING, environ=ANYTHING)
def test_from_env_arguments_of_anything(prefix: object, environ: object) -> None:
    _, error = attempt(ShutdownConfig.from_env, prefix, environ=environ)
    if error is not None:
        check_error(error, "prefix", "environ", *(environ if isinstance(environ, Mapping) else ()))


# ---------------------------------------------------------------------------
# Durations and signals
# ---------------------------------------------------------------------------


@FUZZ
@given(value=ANYTHING | HUGE_INTS, field=st.text(min_size=1, max_size=12))
def test_duration_parsers_of_anything(value: object, field: str) -> None:
    seconds, error = attempt(parse_duration, value, field)
    if error is None:
        assert type(seconds) is float and not math.isnan(seconds)
    else:
        check_error(error, field)
        assert str(error).startswith(field)
    bounded, error = attempt(check_duration, value, field, allow_zero=True)
    if error is None:
        assert type(bounded) is float and 0 <= bounded < math.inf
    else:
        check_error(error, field)
    timeout, error = attempt(parse_timeout, value, field)
    if error is None:
        assert timeout is None or (type(timeout) is float and 0 < timeout < math.inf)
    else:
        check_error(error, field)


@FUZZ
@given(text=st.text(alphabet=DURATION_ALPHABET, max_size=60) | st.text(max_size=60))
def test_duration_strings_of_anything(text: str) -> None:
    seconds, error = attempt(parse_duration, text, "d")
    if error is None:
        assert type(seconds) is float and not math.isnan(seconds)
    else:
        assert type(error) is ValueError and str(error).startswith("d must be"), error


@FUZZ
@given(seconds=st.floats(allow_nan=False, allow_infinity=False), delta=st.timedeltas())
def test_durations_round_trip(seconds: float, delta: timedelta) -> None:
    # What Python prints for a float reads back as exactly that float, bare or with a unit.
    assert parse_duration(repr(seconds)) == seconds
    assert parse_duration(f"{seconds!r}s") == seconds
    assert parse_duration(f" {abs(seconds)!r}s ") == abs(seconds)
    assert parse_duration(delta) == delta.total_seconds()
    assert parse_duration(Decimal(repr(seconds))) == seconds
    assert parse_duration(Fraction(seconds)) == seconds


@FUZZ
@given(
    parts=st.lists(
        st.tuples(st.integers(0, 10**6), st.sampled_from(["h", "m", "s", "ms", "us", "ns"])),
        min_size=1,
        max_size=6,
    ),
    sign=st.sampled_from(["", "+", "-"]),
)
def test_go_durations_are_exact_sums(parts: list[tuple[int, str]], sign: str) -> None:
    unit = {"h": Fraction(3600), "m": Fraction(60), "s": Fraction(1), "ms": Fraction(1, 10**3)}
    unit |= {"us": Fraction(1, 10**6), "ns": Fraction(1, 10**9)}
    total = sum(Fraction(number) * unit[name] for number, name in parts)
    text = sign + "".join(f"{number}{name}" for number, name in parts)
    expected = float(-total if sign == "-" else total) + 0.0
    assert parse_duration(text) == expected


@FUZZ
@given(value=ANYTHING | HUGE_INTS | st.lists(signal_spellings(), max_size=5))
@example(value=(s for s in ["TERM", "INT", "TERM"]))
def test_parse_signals_of_anything(value: object) -> None:
    result, error = attempt(parse_signals, value)
    if error is not None:
        check_error(error, "signals")
        assert str(error).startswith("signals")
        return
    assert result is None or (
        type(result) is tuple
        and len(set(result)) == len(result)
        and all(type(s) is signal.Signals and s in CATCHABLE for s in result)
    )
    if result is not None:
        assert parse_signals([s.name for s in result]) == result
        assert parse_signals([int(s) for s in result]) == result
        assert parse_signals(tuple(s.name[3:].lower() for s in result)) == result


@FUZZ
@given(spec=st.lists(signal_spellings(), max_size=4), sep=st.sampled_from([",", " ", ", ", "\t"]))
def test_signal_lists_as_text(spec: list[object], sep: str) -> None:
    """``GRACESTOP_SIGNALS`` reads like the list it was written from."""
    names = [str(item.name if isinstance(item, signal.Signals) else item).strip() for item in spec]
    expected, error = attempt(
        parse_signals, [int(n) if n.lstrip("-").isdigit() else n for n in names]
    )
    environ = {"GRACESTOP_SIGNALS": sep.join(names)}
    cfg, env_error = attempt(ShutdownConfig.from_env, environ=environ)
    if error is None:
        assert env_error is None, env_error
        assert cfg.signals == (expected or ())
    else:
        assert type(env_error) is ValueError, env_error
        assert str(env_error).startswith("GRACESTOP_SIGNALS: signals"), env_error


# ---------------------------------------------------------------------------
# The `gracestop config` loader
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config")


def toml_text(text: str) -> str:
    escaped = (
        f"\\u{ord(c):04x}" if c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7F else c for c in text
    )
    return '"' + "".join(escaped) + '"'


def toml_value(value: object) -> str:
    """*value* in TOML (a test's own writer: the project reads TOML, it never writes it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return toml_text(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_text(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"TOML has no {type(value).__name__}")


def toml_document(tables: dict[str, dict[str, object]]) -> str:
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{toml_text(key)} = {toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def write(directory: Path, suffix: str, data: bytes) -> Path:
    path = directory / f"conf{suffix}"
    path.write_bytes(data)
    return path


@FUZZ
@given(
    suffix=st.sampled_from([".json", ".yaml", ".yml", ".toml", ".ini", ""]),
    data=st.binary(max_size=64)
    | st.sampled_from(
        [b"", b"{}", b"null", b"[1]", b"Shutdown:\n  WaitTime: 2s\n", b"WaitTime = '2s'\n"]
    )
    | st.text(alphabet="{}[]:,=\"' \n-Shutdownwaitime0123456789s.", max_size=60).map(str.encode),
    section=st.none() | st.sampled_from(["Shutdown", "a.b", "", ".", "a..b"]) | st.text(max_size=8),
)
def test_load_config_of_any_file(
    config_dir: Path, suffix: str, data: bytes, section: str | None
) -> None:
    path = write(config_dir, suffix, data)
    cfg, error = attempt(load_config, file=path, section=section)
    if error is None:
        check_normalised(cfg)
    else:
        assert isinstance(error, (ConfigSourceError, TypeError, ValueError)), error
        assert str(error)


@FUZZ_FEW
@given(
    suffix=st.sampled_from([".json", ".yaml", ".toml"]),
    section=st.dictionaries(KEYS, JSON, max_size=5),
    env=st.dictionaries(
        st.sampled_from(FIELD_NAMES).map(lambda n: "GRACESTOP_" + n.upper()), ENV_VALUES, max_size=2
    ),
)
def test_load_config_of_any_section(
    config_dir: Path, suffix: str, section: dict[str, object], env: dict[str, str]
) -> None:
    if suffix == ".json":
        data = json.dumps({"Shutdown": section}).encode()
    elif suffix == ".yaml":
        data = yaml.safe_dump({"Shutdown": section}).encode()
    else:
        try:
            data = toml_document({"Shutdown": section}).encode()
        except ValueError:  # TOML has no null
            assume(False)
    path = write(config_dir, suffix, data)
    cfg, error = attempt(load_config, file=path, section="Shutdown", env=True, environ=env)
    if error is None:
        check_normalised(cfg)
    elif isinstance(error, UnknownFieldError):
        assert error.key in section or error.key in env
    else:
        assert not isinstance(error, ConfigSourceError), error
        check_error(error, *section, *env)


@FUZZ
@given(
    config=valid_configs(), suffix=st.sampled_from([".json", ".yaml", ".toml"]), env=st.booleans()
)
def test_load_config_round_trips(
    config_dir: Path, config: tuple[dict[str, object], ShutdownConfig], suffix: str, env: bool
) -> None:
    _, cfg = config
    # TOML has no null: a field left out keeps its default, which is what None is.
    section = {key: value for key, value in cfg.to_dict().items() if value is not None}
    if suffix == ".json":
        data = json.dumps({"app": {"shutdown": section}}).encode()
    elif suffix == ".yaml":
        data = yaml.safe_dump({"app": {"shutdown": section}}, allow_unicode=True).encode()
    else:
        data = toml_document({"app.shutdown": section}).encode()
    path = write(config_dir, suffix, data)
    assert load_config(file=path, section="app.shutdown", env=env, environ={}) == cfg


@FUZZ
@given(config=valid_configs(), margin=ANYTHING | HUGE_INTS)
def test_stop_timeout_of_anything(
    config: tuple[dict[str, object], ShutdownConfig], margin: object
) -> None:
    _, cfg = config
    seconds, error = attempt(stop_timeout, cfg, margin)
    if error is None:
        assert type(seconds) is int
        assert seconds >= cfg.wait_time + cfg.watchdog_grace - 1e-6
    else:
        check_error(error, "margin")


# ---------------------------------------------------------------------------
# Found by fuzzing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ShutdownConfig(wait_time=10**5000), "wait_time"),
        (lambda: ShutdownConfig(signal_mode=10**5000), "signal_mode"),
        (lambda: ShutdownConfig(signals=[1, 10**5000]), "signals"),
        (lambda: ShutdownConfig(force_exit_code=-(10**5000)), "force_exit_code"),
        (lambda: Hooks().on_wrap_up(name=10**5000), "name"),
        (lambda: stop_timeout(ShutdownConfig(), -(10**5000)), "margin"),
    ],
)
def test_ints_too_long_to_print_still_give_the_documented_error(
    make: Callable[[], object], field: str
) -> None:
    """Python refuses to print an int of more than 4300 digits: the message used to
    fail to build, raising that ValueError in place of the field's own error."""
    with pytest.raises((TypeError, ValueError)) as info:
        make()
    assert str(info.value).startswith(field)
    assert "digits>" in str(info.value)


def test_a_wrong_type_too_long_to_print_is_still_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^signal_mode must be a str.*got int <int of about 5001"):
        ShutdownConfig(signal_mode=10**5000)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"^wait_time must be a duration .*got list <list too large"
    ):
        ShutdownConfig(wait_time=[10**5000])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^config must be a ShutdownConfig or None; got int <int"):
        ShutdownCoordinator(10**5000)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [" ", "\t", "none", "None", " NULL "])
def test_diagnostics_dir_that_a_file_would_read_as_none_is_refused(path: str) -> None:
    """``from_mapping(cfg.to_dict()) == cfg`` is promised: a directory that files and
    the environment read back as ``None`` cannot be accepted by the constructor."""
    with pytest.raises(ValueError, match=r"^diagnostics_dir"):
        ShutdownConfig(diagnostics_dir=path)
    assert ShutdownConfig.from_mapping({"diagnostics_dir": path}).diagnostics_dir is None
    cfg = ShutdownConfig(diagnostics_dir="./none")
    assert ShutdownConfig.from_mapping(cfg.to_dict()) == cfg


@pytest.mark.parametrize(("text", "expected"), [("15", (15,)), ("15, 2 HUP", (15, 2, 1))])
def test_signal_numbers_in_text(text: str, expected: tuple[int, ...]) -> None:
    """``GRACESTOP_SIGNALS=15`` used to be read as the name "SIG15" and refused with
    "did you mean 'SIGUSR1'?"; numbers are accepted wherever signals are."""
    cfg = ShutdownConfig.from_env(environ={"GRACESTOP_SIGNALS": text})
    assert cfg.signals == tuple(signal.Signals(n) for n in expected)
    assert ShutdownConfig.from_mapping({"Signals": text}).signals == cfg.signals


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9", "SIGKILL cannot be caught"),
        ("0", "unknown signal number '0'"),
        ("1" * 5000, "unknown signal number '111"),
    ],
)
def test_signal_numbers_in_text_are_checked(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^signals: {message}"):
        ShutdownConfig(signals=text)
