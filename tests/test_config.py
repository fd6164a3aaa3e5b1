"""Tests for gracestop._config: ShutdownConfig, durations, signals, loaders."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import re
import signal
import time
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gracestop._config import (
    FIELD_NAMES,
    RESERVED_ENV_SUFFIXES,
    ShutdownConfig,
    UnknownFieldError,
    check_duration,
    parse_duration,
    parse_signals,
    parse_timeout,
)

# database=None: no .hypothesis/ directory in the work tree.
fast = settings(max_examples=200, deadline=None, database=None)

SIGTERM = signal.Signals.SIGTERM
SIGINT = signal.Signals.SIGINT
SIGHUP = signal.Signals.SIGHUP

CAMEL = {
    "wrap_up_time": "WrapUpTime",
    "wait_time": "WaitTime",
    "drain_delay": "DrainDelay",
    "hook_timeout": "HookTimeout",
    "signals": "Signals",
    "signal_mode": "SignalMode",
    "second_signal": "SecondSignal",
    "hard_exit": "HardExit",
    "watchdog_grace": "WatchdogGrace",
    "force_exit_code": "ForceExitCode",
    "progress_interval": "ProgressInterval",
    "diagnostics": "Diagnostics",
    "diagnostics_dir": "DiagnosticsDir",
    "profile_duration": "ProfileDuration",
    "systemd_notify": "SystemdNotify",
    "systemd_ready": "SystemdReady",
}


def assert_invariant(cfg: ShutdownConfig) -> None:
    assert cfg.drain_delay + cfg.wrap_up_time <= cfg.wait_time + 1e-9


# ---------------------------------------------------------------------------
# Defaults and dataclass behaviour
# ---------------------------------------------------------------------------


def test_field_names_in_declaration_order() -> None:
    assert FIELD_NAMES == (
        "wrap_up_time",
        "wait_time",
        "drain_delay",
        "hook_timeout",
        "signals",
        "signal_mode",
        "second_signal",
        "hard_exit",
        "watchdog_grace",
        "force_exit_code",
        "progress_interval",
        "diagnostics",
        "diagnostics_dir",
        "profile_duration",
        "report_file",
        "systemd_notify",
        "systemd_ready",
    )
    assert tuple(f.name for f in dataclasses.fields(ShutdownConfig)) == FIELD_NAMES


def test_defaults() -> None:
    cfg = ShutdownConfig()
    assert cfg.wrap_up_time == 1.0
    assert cfg.wait_time == 5.5
    assert cfg.drain_delay == 0.0
    assert cfg.hook_timeout is None
    assert cfg.signals is None
    assert cfg.signal_mode == "auto"
    assert cfg.second_signal == "force"
    assert cfg.hard_exit is None
    assert cfg.watchdog_grace == 0.5
    assert cfg.force_exit_code == 1
    assert cfg.progress_interval == 1.0
    assert cfg.diagnostics is False
    assert cfg.diagnostics_dir is None
    assert cfg.profile_duration == 60.0
    for name in ("wrap_up_time", "wait_time", "drain_delay", "watchdog_grace"):
        assert type(getattr(cfg, name)) is float


def test_frozen_hashable_and_comparable() -> None:
    cfg = ShutdownConfig(wait_time="10s")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.wait_time = 3.0  # type: ignore[misc]
    assert cfg == ShutdownConfig(wait_time=10)
    assert hash(cfg) == hash(ShutdownConfig(wait_time=timedelta(seconds=10)))
    assert cfg != ShutdownConfig()


def test_pickle_and_copy_round_trip() -> None:
    cfg = ShutdownConfig(wait_time="9s", signals=["TERM", "HUP"], hard_exit=True)
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert dataclasses.replace(cfg, wait_time=8.0).wait_time == 8.0


def test_positional_arguments_still_work() -> None:
    cfg = ShutdownConfig(2, "10s")
    assert (cfg.wrap_up_time, cfg.wait_time) == (2.0, 10.0)


# ---------------------------------------------------------------------------
# parse_duration
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        (2, 2.0),
        (2.5, 2.5),
        (timedelta(seconds=1.5), 1.5),
        (timedelta(milliseconds=500), 0.5),
        (timedelta(minutes=1, seconds=30), 90.0),
        ("500ms", 0.5),
        ("1s", 1.0),
        ("5.5s", 5.5),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("300us", 0.0003),
        ("300\u00b5s", 0.0003),  # MICRO SIGN, as Go accepts
        ("300\u03bcs", 0.0003),  # GREEK SMALL LETTER MU, as Go accepts
        ("10ns", 1e-8),
        ("0", 0.0),
        ("0s", 0.0),
        ("-0", 0.0),
        ("2", 2.0),
        ("2.5", 2.5),
        (" 3s ", 3.0),
        ("+1s", 1.0),
        (".5s", 0.5),
        ("5.s", 5.0),
        ("1h2m3s4ms5us6ns", 3723.004005006),
        ("30s1m", 90.0),  # Go accepts components in any order
        ("1e3ms", 1.0),
        ("1e-05s", 1e-05),
        ("1.5e2", 150.0),
        (Fraction(1, 4), 0.25),
        (Decimal("0.25"), 0.25),
    ],
)
def test_parse_duration_accepted_forms(value: object, expected: float) -> None:
    result = parse_duration(value)
    assert type(result) is float
    assert result == pytest.approx(expected, rel=1e-15, abs=0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("-1s", -1.0), ("-1m30s", -90.0), ("-2", -2.0), ("inf", math.inf), ("-inf", -math.inf)],
)
def test_parse_duration_leaves_range_checks_to_the_caller(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


def test_parse_duration_is_exact_for_decimal_units() -> None:
    # Decimal arithmetic: no 0.1 + 0.2 style drift between components.
    assert parse_duration("300us") == 0.0003
    assert parse_duration("100ms200ms") == 0.3
    assert parse_duration("-0s") == 0.0
    assert math.copysign(1.0, parse_duration("-0s")) == 1.0


@pytest.mark.parametrize("text", ["nan", "NaN", "-nan", "sNaN"])
def test_parse_duration_refuses_nan_strings(text: str) -> None:
    with pytest.raises(
        ValueError, match=rf"^timeout must be .*not NaN; got {re.escape(repr(text))}"
    ):
        parse_duration(text, "timeout")


@pytest.mark.parametrize("value", [math.nan, Decimal("NaN"), Decimal("sNaN")])
def test_parse_duration_refuses_nan_numbers(value: object) -> None:
    with pytest.raises(ValueError, match=r"wait_time must be a number of seconds, not NaN"):
        parse_duration(value, "wait_time")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "s",
        "ms",
        "1x",
        "1 s",
        "1S",
        "1H",
        "1d",
        "1m30",
        "1.5.5s",
        "--1s",
        "+-1s",
        "1_000",
        "0x10",
        "\u0663s",  # ARABIC-INDIC DIGIT THREE: int() would take it, Go would not
        "1e",
        "e5s",
        ".s",
        "infs",
        "five seconds",
    ],
)
def test_parse_duration_refuses_bad_strings(text: str) -> None:
    with pytest.raises(ValueError, match=r"^hook_timeout must be a duration") as info:
        parse_duration(text, "hook_timeout")
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    "value", [True, False, None, [1], (1,), {}, b"1s", bytearray(b"1"), object(), 1j]
)
def test_parse_duration_refuses_wrong_types(value: object) -> None:
    with pytest.raises(TypeError, match=r"^wait_time must be a duration \(") as info:
        parse_duration(value, "wait_time")
    assert type(value).__name__ in str(info.value)


def test_parse_duration_default_field_name() -> None:
    with pytest.raises(TypeError, match=r"^duration must be"):
        parse_duration(None)


def test_parse_duration_saturates_instead_of_crashing() -> None:
    assert parse_duration(10**400) == math.inf
    assert parse_duration(-(10**400)) == -math.inf
    assert parse_duration(Fraction(10**400)) == math.inf
    assert parse_duration("1e99999999999999999999s") == math.inf
    assert parse_duration("1e-99999999999999999999s") == 0.0
    assert parse_duration("1e" + "9" * 5000) == math.inf
    assert parse_duration("9" * 5000 + "h") == math.inf


def test_parse_duration_of_huge_garbage_is_quick_and_messages_stay_short() -> None:
    text = "1" * 200_000 + "x"
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"^wait_time must be a duration") as info:
        parse_duration(text, "wait_time")
    assert time.perf_counter() - start < 2.0
    assert len(str(info.value)) < 300


# ---------------------------------------------------------------------------
# check_duration and parse_timeout
# ---------------------------------------------------------------------------


def test_check_duration_ranges() -> None:
    assert check_duration("0s", "drain_delay", allow_zero=True) == 0.0
    assert check_duration(2, "x", allow_zero=False) == 2.0
    with pytest.raises(ValueError, match=r"^seconds must be a positive, finite duration; got 0$"):
        check_duration(0, "seconds", allow_zero=False)
    with pytest.raises(ValueError, match=r"^d must be a non-negative, finite duration; got -1$"):
        check_duration(-1, "d", allow_zero=True)
    with pytest.raises(ValueError, match=r"got 'inf'$"):
        check_duration("inf", "d", allow_zero=True)
    with pytest.raises(TypeError, match=r"^d must be a duration"):
        check_duration(None, "d", allow_zero=True)


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("2s", 2.0), (0.25, 0.25)])
def test_parse_timeout_accepts(value: object, expected: float | None) -> None:
    assert parse_timeout(value) == expected


@pytest.mark.parametrize("value", [0, "0s", -1, "-1s", math.inf, "inf"])
def test_parse_timeout_refuses_out_of_range(value: object) -> None:
    expected = (
        rf"^timeout must be None or a positive, finite duration; got {re.escape(repr(value))}$"
    )
    with pytest.raises(ValueError, match=expected):
        parse_timeout(value)


def test_parse_timeout_types_and_field_name() -> None:
    with pytest.raises(TypeError, match=r"^timeout must be a duration"):
        parse_timeout(True)
    with pytest.raises(ValueError, match=r"^hook 'db' timeout must be a"):
        parse_timeout("soon", "hook 'db' timeout")
    with pytest.raises(ValueError, match=r"not NaN"):
        parse_timeout(math.nan)


# ---------------------------------------------------------------------------
# ShutdownConfig field validation
# ---------------------------------------------------------------------------

DURATION_FIELDS = (
    "wrap_up_time",
    "wait_time",
    "drain_delay",
    "watchdog_grace",
    "progress_interval",
)


@pytest.mark.parametrize("field", DURATION_FIELDS)
@pytest.mark.parametrize(
    ("raw", "expected"),
    [("250ms", 0.25), (timedelta(milliseconds=250), 0.25), (0.25, 0.25), ("0.25", 0.25)],
)
def test_duration_fields_accept_every_form(field: str, raw: object, expected: float) -> None:
    # wrap_up_time=0 so that a short wait_time still satisfies the invariant.
    cfg = ShutdownConfig(**{"wrap_up_time": 0, field: raw})  # type: ignore[arg-type]
    assert getattr(cfg, field) == expected
    assert type(getattr(cfg, field)) is float


def test_hook_timeout_accepts_every_form() -> None:
    assert ShutdownConfig(hook_timeout="1m").hook_timeout == 60.0
    assert ShutdownConfig(hook_timeout=timedelta(seconds=2)).hook_timeout == 2.0
    assert ShutdownConfig(hook_timeout=3).hook_timeout == 3.0
    assert ShutdownConfig(hook_timeout=None).hook_timeout is None


@pytest.mark.parametrize("field", [*DURATION_FIELDS, "hook_timeout"])
@pytest.mark.parametrize("value", [True, False, [1], b"1s", object()])
def test_duration_fields_refuse_wrong_types(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=rf"^{field} must be a duration"):
        ShutdownConfig(**{field: value})  # type: ignore[arg-type]


def test_wrong_type_message_names_type_and_value() -> None:
    with pytest.raises(TypeError) as info:
        ShutdownConfig(wait_time=[1])  # type: ignore[arg-type]
    assert str(info.value) == (
        "wait_time must be a duration (seconds as int/float, a timedelta, or a string "
        "such as '5.5s'); got list [1]"
    )


POSITIVE = "{} must be a positive, finite duration; got {}"
NON_NEGATIVE = "{} must be a non-negative, finite duration; got {}"
OPTIONAL = "{} must be None or a positive, finite duration; got {}"
NOT_NAN = "{} must be a number of seconds, not NaN; got {}"
NOT_A_DURATION = "{} must be a duration such as '500ms', '5.5s', '1m30s' or '2' (seconds); got {}"


@pytest.mark.parametrize(
    ("field", "value", "template"),
    [
        ("wait_time", 0, POSITIVE),
        ("wait_time", -1, POSITIVE),
        ("wait_time", "-1s", POSITIVE),
        ("wait_time", math.inf, POSITIVE),
        ("wait_time", "inf", POSITIVE),
        ("wait_time", math.nan, NOT_NAN),
        ("wait_time", "nan", NOT_NAN),
        ("wait_time", "5x", NOT_A_DURATION),
        ("wrap_up_time", -0.5, NON_NEGATIVE),
        ("wrap_up_time", math.inf, NON_NEGATIVE),
        ("drain_delay", "-1ms", NON_NEGATIVE),
        ("drain_delay", math.nan, NOT_NAN),
        ("watchdog_grace", -1, NON_NEGATIVE),
        ("watchdog_grace", "inf", NON_NEGATIVE),
        ("progress_interval", 0, POSITIVE),
        ("progress_interval", "-1s", POSITIVE),
        ("hook_timeout", 0, OPTIONAL),
        ("hook_timeout", "-2s", OPTIONAL),
        ("hook_timeout", math.inf, OPTIONAL),
        ("hook_timeout", "nan", NOT_NAN),
    ],
)
def test_bad_values_name_field_and_value(field: str, value: object, template: str) -> None:
    with pytest.raises(ValueError) as info:
        ShutdownConfig(**{field: value})  # type: ignore[arg-type]
    assert str(info.value) == template.format(field, repr(value))
    assert not isinstance(info.value, TypeError)


@pytest.mark.parametrize("field", ["wrap_up_time", "drain_delay", "watchdog_grace"])
def test_zero_allowed_where_it_makes_sense(field: str) -> None:
    assert getattr(ShutdownConfig(**{field: 0}), field) == 0.0  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, True, False])
def test_hard_exit_accepts_none_and_bools(value: bool | None) -> None:
    assert ShutdownConfig(hard_exit=value).hard_exit is value


@pytest.mark.parametrize("value", [1, 0, "yes", "true", 1.0])
def test_hard_exit_constructor_is_strict(value: object) -> None:
    with pytest.raises(TypeError, match=r"^hard_exit must be None, True or False; got "):
        ShutdownConfig(hard_exit=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, 1, 3, 255])
def test_force_exit_code_accepts_0_to_255(value: int) -> None:
    assert ShutdownConfig(force_exit_code=value).force_exit_code == value


@pytest.mark.parametrize("value", [-1, 256, 10**6])
def test_force_exit_code_range(value: int) -> None:
    with pytest.raises(
        ValueError, match=rf"^force_exit_code must be an int from 0 to 255; got {value}$"
    ):
        ShutdownConfig(force_exit_code=value)


@pytest.mark.parametrize("value", [True, 1.0, "1", None])
def test_force_exit_code_type(value: object) -> None:
    with pytest.raises(TypeError, match=r"^force_exit_code must be an int"):
        ShutdownConfig(force_exit_code=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "good", "allowed"),
    [
        ("signal_mode", ("auto", "handler"), "'auto', 'handler'"),
        ("second_signal", ("force", "ignore"), "'force', 'ignore'"),
    ],
)
def test_choice_fields(field: str, good: tuple[str, ...], allowed: str) -> None:
    for value in good:
        assert getattr(ShutdownConfig(**{field: value}), field) == value  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=rf"^{field} must be one of .*{allowed}.*; got 'AUTO'$"):
        ShutdownConfig(**{field: "AUTO"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=rf"^{field} must be a str"):
        ShutdownConfig(**{field: 1})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# The drain_delay + wrap_up_time <= wait_time invariant
# ---------------------------------------------------------------------------


def test_invariant_violation_names_all_three_fields_and_values() -> None:
    with pytest.raises(ValueError) as info:
        ShutdownConfig(drain_delay="2s", wrap_up_time=4, wait_time=5.5)
    message = str(info.value)
    for part in ("drain_delay=2.0", "wrap_up_time=4.0", "wait_time=5.5", "6.0"):
        assert part in message


def test_invariant_wrap_up_alone_longer_than_wait() -> None:
    with pytest.raises(ValueError, match=r"wrap_up_time=6\.0 .*wait_time=5\.5"):
        ShutdownConfig(wrap_up_time=6)


def test_invariant_allows_equality_and_float_rounding() -> None:
    ShutdownConfig(drain_delay=2, wrap_up_time=3.5, wait_time=5.5)
    ShutdownConfig(wrap_up_time=5.5)
    # 0.1 + 0.2 > 0.3 in binary floating point; that must not count as an overrun.
    ShutdownConfig(drain_delay=0.1, wrap_up_time=0.2, wait_time=0.3)
    with pytest.raises(ValueError, match=r"must not exceed wait_time"):
        ShutdownConfig(drain_delay=0.1, wrap_up_time=0.2, wait_time=0.2999)


def test_field_errors_come_before_the_invariant() -> None:
    with pytest.raises(ValueError, match=r"^wait_time must be a positive"):
        ShutdownConfig(wait_time=-1, wrap_up_time=100)


# ---------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    ["TERM", "SIGTERM", "sigterm", " term ", "Term", 15, SIGTERM, ["TERM"], ("SIGTERM",), {15}],
)
def test_signal_forms(spec: object) -> None:
    assert ShutdownConfig(signals=spec).signals == (SIGTERM,)  # type: ignore[arg-type]
    assert parse_signals(spec) == (SIGTERM,)


def test_signals_mixed_deduplicated_in_order() -> None:
    cfg = ShutdownConfig(signals=["INT", 15, SIGINT, "sigterm", "HUP", 2])
    assert cfg.signals == (SIGINT, SIGTERM, SIGHUP)
    assert all(type(sig) is signal.Signals for sig in cfg.signals)


def test_signals_none_empty_and_generators() -> None:
    assert ShutdownConfig(signals=None).signals is None
    assert ShutdownConfig(signals=()).signals == ()
    assert ShutdownConfig(signals=[]).signals == ()
    assert ShutdownConfig(signals=(s for s in ["TERM", "INT"])).signals == (SIGTERM, SIGINT)
    assert parse_signals(None) is None


def test_signal_aliases_resolve() -> None:
    if "SIGIOT" not in signal.Signals.__members__:  # pragma: no cover - platform specific
        pytest.skip("no SIGIOT alias on this platform")
    assert parse_signals("IOT") == (signal.Signals.SIGABRT,)


@pytest.mark.parametrize(
    "spec", ["KILL", "SIGKILL", 9, signal.Signals.SIGKILL, ["TERM", "STOP"], signal.Signals.SIGSTOP]
)
def test_uncatchable_signals_refused(spec: object) -> None:
    with pytest.raises(ValueError, match=r"^signals: SIG(KILL|STOP) cannot be caught.*; got "):
        ShutdownConfig(signals=spec)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("FOO", r"^signals: unknown signal name 'FOO'"),
        ("TREM", r"^signals: unknown signal name 'TREM'; did you mean 'SIGTERM'\?"),
        ("", r"^signals: unknown signal name ''"),
        (["TERM", "BOGUS"], r"'BOGUS'"),
        ("TERM,INT", r"give several signals as a list"),
        (0, r"^signals: unknown signal number 0$"),
        (999, r"^signals: unknown signal number 999$"),
        (-15, r"^signals: unknown signal number -15$"),
    ],
)
def test_unknown_signals(spec: object, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        ShutdownConfig(signals=spec)  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", [b"TERM", {"TERM": 1}, 1.5, [1.5], [True], True, object(), [None]])
def test_signal_wrong_types(spec: object) -> None:
    with pytest.raises(TypeError, match=r"^signals must"):
        ShutdownConfig(signals=spec)  # type: ignore[arg-type]


def test_parse_signals_custom_field_name() -> None:
    with pytest.raises(ValueError, match=r"^dump_signal: unknown signal name"):
        parse_signals("NOPE", "dump_signal")


# ---------------------------------------------------------------------------
# Unknown fields and replace()
# ---------------------------------------------------------------------------


def test_unknown_constructor_field() -> None:
    with pytest.raises(UnknownFieldError) as info:
        ShutdownConfig(wait_tme=3)  # type: ignore[call-arg]
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err, TypeError)
    assert err.key == "wait_tme"
    assert err.suggestions[0] == "wait_time"
    message = str(err)
    assert "'wait_tme'" in message
    assert "did you mean 'wait_time'?" in message
    for name in FIELD_NAMES:
        assert name in message


def test_unknown_field_caught_as_plain_type_error() -> None:
    with pytest.raises(TypeError, match=r"unknown field 'colour'"):
        ShutdownConfig(colour="blue")  # type: ignore[call-arg]


def test_unknown_field_error_without_close_match_and_pickle() -> None:
    err = UnknownFieldError("zzzzzz")
    assert err.suggestions == ()
    assert "did you mean" not in str(err)
    assert err.valid == FIELD_NAMES
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is UnknownFieldError
    assert str(clone) == str(err)
    assert clone.key == "zzzzzz"


def test_replace() -> None:
    base = ShutdownConfig()
    changed = base.replace(wait_time="30s", signals="HUP", hard_exit=False)
    assert changed.wait_time == 30.0
    assert changed.signals == (SIGHUP,)
    assert changed.hard_exit is False
    assert changed.wrap_up_time == base.wrap_up_time
    assert base == ShutdownConfig()  # unchanged
    assert base.replace() == base


def test_replace_unknown_key_and_revalidation() -> None:
    cfg = ShutdownConfig(wait_time=10, wrap_up_time=5)
    with pytest.raises(UnknownFieldError, match=r"did you mean 'drain_delay'"):
        cfg.replace(drain_dely=1)
    with pytest.raises(ValueError, match=r"must not exceed wait_time"):
        cfg.replace(drain_delay=6)
    with pytest.raises(TypeError, match=r"^wait_time"):
        cfg.replace(wait_time=None)


# ---------------------------------------------------------------------------
# from_mapping
# ---------------------------------------------------------------------------


def test_from_mapping_go_zero_keys() -> None:
    cfg = ShutdownConfig.from_mapping({"WrapUpTime": "2s", "WaitTime": "10s"})
    assert (cfg.wrap_up_time, cfg.wait_time) == (2.0, 10.0)
    assert cfg.drain_delay == 0.0


def test_from_mapping_every_camel_case_key() -> None:
    mapping = {
        "WrapUpTime": "1s",
        "WaitTime": "20s",
        "DrainDelay": "3s",
        "HookTimeout": "4s",
        "Signals": "TERM,INT",
        "SignalMode": "handler",
        "SecondSignal": "ignore",
        "HardExit": "yes",
        "WatchdogGrace": "250ms",
        "ForceExitCode": "3",
        "ProgressInterval": "2s",
        "Diagnostics": "on",
        "DiagnosticsDir": "/var/tmp/diag",
        "ProfileDuration": "30s",
        "SystemdNotify": "off",
        "SystemdReady": "MANUAL",
    }
    assert set(mapping) == set(CAMEL.values())
    cfg = ShutdownConfig.from_mapping(mapping)
    assert cfg == ShutdownConfig(
        wrap_up_time=1,
        wait_time=20,
        drain_delay=3,
        hook_timeout=4,
        signals=[SIGTERM, SIGINT],
        signal_mode="handler",
        second_signal="ignore",
        hard_exit=True,
        watchdog_grace=0.25,
        force_exit_code=3,
        progress_interval=2,
        diagnostics=True,
        diagnostics_dir="/var/tmp/diag",
        profile_duration=30,
        systemd_notify=False,
        systemd_ready="manual",
    )


def test_systemd_ready_is_validated_and_read_from_text() -> None:
    assert ShutdownConfig().systemd_ready == "enter"
    assert ShutdownConfig(systemd_ready="manual").systemd_ready == "manual"
    with pytest.raises(ValueError, match=r"systemd_ready must be one of \('enter', 'manual'\)"):
        ShutdownConfig(systemd_ready="later")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="systemd_ready must be a str"):
        ShutdownConfig(systemd_ready=True)  # type: ignore[arg-type]
    env = {"GRACESTOP_SYSTEMD_READY": " Manual "}
    assert ShutdownConfig.from_env(environ=env).systemd_ready == "manual"
    assert ShutdownConfig.from_mapping({"SystemdReady": "enter"}).systemd_ready == "enter"
    cfg = ShutdownConfig(systemd_ready="manual")
    assert ShutdownConfig.from_mapping(cfg.to_dict()) == cfg


def test_from_mapping_snake_and_camel_case_and_native_values() -> None:
    cfg = ShutdownConfig.from_mapping({"wait_time": 7, "drainDelay": 1.5})
    assert (cfg.wait_time, cfg.drain_delay) == (7.0, 1.5)
    cfg = ShutdownConfig.from_mapping({"signals": ["TERM", 1], "hard_exit": False})
    assert cfg.signals == (SIGTERM, SIGHUP)
    assert cfg.hard_exit is False
    assert ShutdownConfig.from_mapping({}) == ShutdownConfig()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[(word, True) for word in ("true", "TRUE", "yes", "on", "1", " Yes ")],
        *[(word, False) for word in ("false", "no", "Off", "0")],
        *[(word, None) for word in ("auto", "none", "null", "", "NULL")],
    ],
)
def test_from_mapping_hard_exit_words(text: str, expected: bool | None) -> None:
    assert ShutdownConfig.from_mapping({"HardExit": text}).hard_exit is expected


def test_from_mapping_hard_exit_bad_word() -> None:
    with pytest.raises(
        ValueError, match=r"^HardExit: hard_exit must be true/false.*; got 'maybe'$"
    ):
        ShutdownConfig.from_mapping({"HardExit": "maybe"})
    with pytest.raises(TypeError, match=r"^hard_exit must be None, True or False; got int 1$"):
        ShutdownConfig.from_mapping({"hard_exit": 1})


@pytest.mark.parametrize(("text", "expected"), [("3", 3), (" 7 ", 7), ("+0", 0), ("255", 255)])
def test_from_mapping_force_exit_code_strings(text: str, expected: int) -> None:
    assert ShutdownConfig.from_mapping({"force_exit_code": text}).force_exit_code == expected


@pytest.mark.parametrize("text", ["x", "3.0", "", "1_0", "9" * 50, "-1", "256"])
def test_from_mapping_force_exit_code_bad_strings(text: str) -> None:
    with pytest.raises(ValueError, match=r"^force_exit_code must be an int from 0 to 255; got "):
        ShutdownConfig.from_mapping({"force_exit_code": text})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("TERM,INT", (SIGTERM, SIGINT)),
        ("TERM, INT", (SIGTERM, SIGINT)),
        ("SIGTERM SIGINT", (SIGTERM, SIGINT)),
        ("term,", (SIGTERM,)),
        ("", ()),
        ("none", ()),
        ("None", ()),
    ],
)
def test_from_mapping_signal_strings(text: str, expected: tuple[signal.Signals, ...]) -> None:
    assert ShutdownConfig.from_mapping({"Signals": text}).signals == expected


def test_from_mapping_lenient_strings_for_choices_and_hook_timeout() -> None:
    cfg = ShutdownConfig.from_mapping({"SignalMode": " Handler ", "SecondSignal": "IGNORE"})
    assert (cfg.signal_mode, cfg.second_signal) == ("handler", "ignore")
    for text in ("", "none", "null", " None "):
        assert ShutdownConfig.from_mapping({"HookTimeout": text}).hook_timeout is None
    assert ShutdownConfig.from_mapping({"hook_timeout": None}).hook_timeout is None
    assert ShutdownConfig.from_mapping({"hook_timeout": "1.5"}).hook_timeout == 1.5


def test_from_mapping_duplicate_spellings() -> None:
    with pytest.raises(
        ValueError, match=r"wait_time is given twice, as 'WaitTime' and as 'wait_time'"
    ):
        ShutdownConfig.from_mapping({"WaitTime": "10s", "wait_time": 10})
    with pytest.raises(ValueError, match=r"given twice"):
        ShutdownConfig.from_mapping({"waitTime": "10s", "WaitTime": "10s"})


@pytest.mark.parametrize("value", [[("WaitTime", 1)], "WaitTime=1", None, 3, {1, 2}])
def test_from_mapping_refuses_non_mappings(value: object) -> None:
    with pytest.raises(TypeError, match=r"^ShutdownConfig.from_mapping expects a mapping; got "):
        ShutdownConfig.from_mapping(value)  # type: ignore[arg-type]


def test_from_mapping_refuses_non_str_keys() -> None:
    with pytest.raises(TypeError, match=r"^configuration keys must be str; got int 1$"):
        ShutdownConfig.from_mapping({1: "x"})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("WaitTme", "WaitTime"),
        ("wait_tim", "wait_time"),
        ("WAIT_TIME", "wait_time"),
        ("wait time", "wait_time"),
        ("Timeout", None),
        ("", None),
    ],
)
def test_from_mapping_unknown_keys(key: str, suggestion: str | None) -> None:
    with pytest.raises(UnknownFieldError, match=rf"^unknown key {re.escape(repr(key))}") as info:
        ShutdownConfig.from_mapping({key: 1})
    err = info.value
    assert "WaitTime" in str(err)
    assert "wait_time" in str(err)
    if suggestion is not None:
        assert suggestion in err.suggestions


def test_from_mapping_errors_name_the_key_used() -> None:
    with pytest.raises(
        ValueError, match=r"^WaitTime: wait_time must be a positive, finite duration; got '-1s'$"
    ):
        ShutdownConfig.from_mapping({"WaitTime": "-1s"})
    with pytest.raises(ValueError, match=r"^wait_time must be a positive"):
        ShutdownConfig.from_mapping({"wait_time": "-1s"})
    with pytest.raises(TypeError, match=r"^WaitTime: wait_time must be a duration"):
        ShutdownConfig.from_mapping({"WaitTime": [1]})
    with pytest.raises(ValueError, match=r"must not exceed wait_time"):
        ShutdownConfig.from_mapping({"WrapUpTime": "6s"})


# ---------------------------------------------------------------------------
# from_env
# ---------------------------------------------------------------------------


def test_from_env_reads_every_field() -> None:
    environ = {
        "GRACESTOP_WRAP_UP_TIME": "2s",
        "GRACESTOP_WAIT_TIME": "30s",
        "GRACESTOP_DRAIN_DELAY": "5s",
        "GRACESTOP_HOOK_TIMEOUT": "3s",
        "GRACESTOP_SIGNALS": "TERM,HUP",
        "GRACESTOP_SIGNAL_MODE": "handler",
        "GRACESTOP_SECOND_SIGNAL": "ignore",
        "GRACESTOP_HARD_EXIT": "off",
        "GRACESTOP_WATCHDOG_GRACE": "1s",
        "GRACESTOP_FORCE_EXIT_CODE": "70",
        "GRACESTOP_PROGRESS_INTERVAL": "500ms",
        "GRACESTOP_DIAGNOSTICS": "true",
        "GRACESTOP_DIAGNOSTICS_DIR": "/run/app/diag",
        "GRACESTOP_PROFILE_DURATION": "1m30s",
        "PATH": "/usr/bin",
        "GRACESTOPPER": "unrelated: no underscore after the prefix",
    }
    cfg = ShutdownConfig.from_env(environ=environ)
    assert cfg == ShutdownConfig(
        wrap_up_time=2,
        wait_time=30,
        drain_delay=5,
        hook_timeout=3,
        signals=("TERM", "HUP"),
        signal_mode="handler",
        second_signal="ignore",
        hard_exit=False,
        watchdog_grace=1,
        force_exit_code=70,
        progress_interval=0.5,
        diagnostics=True,
        diagnostics_dir="/run/app/diag",
        profile_duration=90,
    )


def test_from_env_empty_environment_gives_defaults() -> None:
    assert ShutdownConfig.from_env(environ={}) == ShutdownConfig()


@pytest.mark.parametrize("text", ["", "  ", "none", "NONE"])
def test_from_env_empty_signals_means_none(text: str) -> None:
    assert ShutdownConfig.from_env(environ={"GRACESTOP_SIGNALS": text}).signals == ()


def test_from_env_empty_hook_timeout_and_hard_exit_mean_none() -> None:
    cfg = ShutdownConfig.from_env(environ={"GRACESTOP_HOOK_TIMEOUT": "", "GRACESTOP_HARD_EXIT": ""})
    assert cfg.hook_timeout is None
    assert cfg.hard_exit is None


@pytest.mark.parametrize(
    "var", ["GRACESTOP_WAIT_TME", "GRACESTOP_wait_time", "GRACESTOP_", "GRACESTOP_COLOUR"]
)
def test_from_env_unknown_variable(var: str) -> None:
    with pytest.raises(UnknownFieldError, match=rf"^unknown environment variable {var!r}") as info:
        ShutdownConfig.from_env(environ={var: "1"})
    assert "GRACESTOP_WAIT_TIME" in str(info.value)


def test_from_env_unknown_variable_suggestion() -> None:
    with pytest.raises(UnknownFieldError, match=r"did you mean 'GRACESTOP_WAIT_TIME'"):
        ShutdownConfig.from_env(environ={"GRACESTOP_WAIT_TME": "1"})


def test_from_env_reserved_suffixes_are_skipped() -> None:
    assert "TESTING" in RESERVED_ENV_SUFFIXES
    environ = {"GRACESTOP_" + suffix: "whatever" for suffix in RESERVED_ENV_SUFFIXES}
    assert ShutdownConfig.from_env(environ=environ) == ShutdownConfig()
    environ = {"APP_TESTING": "1", "APP_WAIT_TIME": "9s"}
    assert ShutdownConfig.from_env("APP_", environ).wait_time == 9.0


@pytest.mark.parametrize(
    ("var", "value", "exc", "pattern"),
    [
        ("WAIT_TIME", "-1", ValueError, "wait_time must be a positive, finite duration; got '-1'$"),
        ("WAIT_TIME", "", ValueError, "wait_time must be a duration such as"),
        ("WAIT_TIME", None, TypeError, r"wait_time must be a duration \("),  # not even a str
        ("HOOK_TIMEOUT", "0", ValueError, "hook_timeout must be None or a positive"),
        ("SIGNALS", "TERM,KILL", ValueError, "signals: SIGKILL cannot be caught"),
        ("SIGNALS", 1.5, TypeError, "signals must be"),
        ("HARD_EXIT", "maybe", ValueError, "hard_exit must be .*'maybe'$"),
        ("FORCE_EXIT_CODE", "300", ValueError, "force_exit_code .*got 300$"),
        ("SIGNAL_MODE", "thread", ValueError, "signal_mode must be one of"),
    ],
)
def test_from_env_bad_value_names_the_variable(
    var: str, value: object, exc: type[Exception], pattern: str
) -> None:
    with pytest.raises(exc, match=rf"^GRACESTOP_{var}: {pattern}"):
        ShutdownConfig.from_env(environ={"GRACESTOP_" + var: value})  # type: ignore[dict-item]


def test_from_env_invariant_names_the_variables() -> None:
    environ = {"GRACESTOP_WAIT_TIME": "1s", "GRACESTOP_DRAIN_DELAY": "2s"}
    with pytest.raises(ValueError, match=r"must not exceed wait_time") as info:
        ShutdownConfig.from_env(environ=environ)
    message = str(info.value)
    assert message.startswith("GRACESTOP_WAIT_TIME, GRACESTOP_DRAIN_DELAY: ")
    assert "drain_delay=2.0" in message


def test_from_env_custom_prefix_ignores_other_prefixes() -> None:
    environ = {"MYAPP_WAIT_TIME": "12s", "GRACESTOP_WAIT_TME": "ignored: other prefix"}
    assert ShutdownConfig.from_env("MYAPP_", environ).wait_time == 12.0


def test_from_env_empty_prefix_reads_known_names_only() -> None:
    environ = {"WAIT_TIME": "12s", "PATH": "/bin", "HOME": "/root"}
    assert ShutdownConfig.from_env("", environ).wait_time == 12.0


def test_from_env_argument_types() -> None:
    with pytest.raises(TypeError, match=r"^prefix must be a str"):
        ShutdownConfig.from_env(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^environ must be a mapping"):
        ShutdownConfig.from_env(environ=["GRACESTOP_WAIT_TIME=1"])  # type: ignore[arg-type]


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in mapping: the real process environment is never read or changed.
    monkeypatch.setattr(os, "environ", {"GRACESTOP_WAIT_TIME": "42s", "HOME": "/x"})
    assert ShutdownConfig.from_env().wait_time == 42.0


# ---------------------------------------------------------------------------
# to_dict
# ---------------------------------------------------------------------------


def test_to_dict_shape() -> None:
    data = ShutdownConfig().to_dict()
    assert list(data) == list(FIELD_NAMES)
    assert data["signals"] is None
    assert data["hook_timeout"] is None
    data = ShutdownConfig(signals=["TERM", 2], hook_timeout="2s").to_dict()
    assert data["signals"] == ["SIGTERM", "SIGINT"]
    assert data["hook_timeout"] == 2.0


@pytest.mark.parametrize(
    "cfg",
    [
        ShutdownConfig(),
        ShutdownConfig(signals=()),
        ShutdownConfig(
            wrap_up_time="300ms",
            wait_time="1m",
            drain_delay="5s",
            hook_timeout="2.5s",
            signals=["TERM", "INT", "HUP"],
            signal_mode="handler",
            second_signal="ignore",
            hard_exit=True,
            watchdog_grace=0,
            force_exit_code=0,
            progress_interval="10s",
            diagnostics=True,
            diagnostics_dir="/srv/diag",
            profile_duration="2m",
        ),
    ],
)
def test_to_dict_round_trips_through_json(cfg: ShutdownConfig) -> None:
    text = json.dumps(cfg.to_dict())
    assert ShutdownConfig.from_mapping(json.loads(text)) == cfg


# ---------------------------------------------------------------------------
# Diagnostics fields
# ---------------------------------------------------------------------------


def test_diagnostics_fields_accept() -> None:
    cfg = ShutdownConfig(diagnostics=True, diagnostics_dir="/tmp/d", profile_duration="1m30s")
    assert (cfg.diagnostics, cfg.diagnostics_dir, cfg.profile_duration) == (True, "/tmp/d", 90.0)
    from pathlib import Path

    assert ShutdownConfig(diagnostics_dir=Path("/srv/x")).diagnostics_dir == "/srv/x"
    assert ShutdownConfig(profile_duration=timedelta(seconds=5)).profile_duration == 5.0
    assert "diagnostics=True" in repr(cfg)
    assert "profile_duration=90.0" in repr(cfg)


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_diagnostics_must_be_a_bool(value: object) -> None:
    with pytest.raises(TypeError, match=r"^diagnostics must be True or False; got "):
        ShutdownConfig(diagnostics=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [b"/tmp", 3, ["/tmp"]])
def test_diagnostics_dir_types(value: object) -> None:
    with pytest.raises(TypeError, match=r"^diagnostics_dir must be None, a str or a path; got "):
        ShutdownConfig(diagnostics_dir=value)  # type: ignore[arg-type]


def test_diagnostics_dir_bytes_path_refused() -> None:
    class BytesPath:
        def __fspath__(self) -> bytes:
            return b"/tmp"

    with pytest.raises(TypeError, match=r"^diagnostics_dir must be None, a str or a path"):
        ShutdownConfig(diagnostics_dir=BytesPath())  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "/tmp/a\0b"])
def test_diagnostics_dir_values(value: str) -> None:
    with pytest.raises(ValueError, match=r"^diagnostics_dir must be a non-empty path"):
        ShutdownConfig(diagnostics_dir=value)


@pytest.mark.parametrize("value", [0, "-1s", "inf", float("nan")])
def test_profile_duration_must_be_positive_and_finite(value: object) -> None:
    with pytest.raises(ValueError, match=r"^profile_duration must be a"):
        ShutdownConfig(profile_duration=value)  # type: ignore[arg-type]


def test_diagnostics_from_text() -> None:
    env = {"GRACESTOP_DIAGNOSTICS": "off", "GRACESTOP_DIAGNOSTICS_DIR": ""}
    cfg = ShutdownConfig.from_env(environ=env)
    assert (cfg.diagnostics, cfg.diagnostics_dir) == (False, None)
    assert ShutdownConfig.from_mapping({"diagnostics_dir": "none"}).diagnostics_dir is None
    with pytest.raises(ValueError, match=r"^GRACESTOP_DIAGNOSTICS: diagnostics must be true/false"):
        ShutdownConfig.from_env(environ={"GRACESTOP_DIAGNOSTICS": "maybe"})
    with pytest.raises(ValueError, match=r"^GRACESTOP_PROFILE_DURATION: profile_duration must"):
        ShutdownConfig.from_env(environ={"GRACESTOP_PROFILE_DURATION": "0s"})


# ---------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------


@fast
@given(st.floats(min_value=0, max_value=1e6, exclude_max=True, allow_nan=False))
def test_property_seconds_and_milliseconds_strings(seconds: float) -> None:
    assert math.isclose(parse_duration(f"{seconds}s"), seconds, rel_tol=1e-12, abs_tol=0)
    assert math.isclose(
        parse_duration(f"{seconds * 1000}ms"), seconds, rel_tol=1e-9, abs_tol=1e-300
    )
    assert math.isclose(parse_duration(f"{seconds:f}"), seconds, rel_tol=1e-6, abs_tol=1e-6)


@fast
@given(
    values=st.tuples(
        st.integers(0, 1000),
        st.integers(0, 59),
        st.floats(0, 59.999, allow_nan=False),
        st.integers(0, 999),
        st.integers(0, 999),
    ),
    keep=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_property_compositions_sum(values: tuple[float, ...], keep: list[bool]) -> None:
    units = (("h", 3600), ("m", 60), ("s", 1), ("ms", 1e-3), ("us", 1e-6))
    parts = [(value, unit, factor) for value, (unit, factor) in zip(values, units, strict=True)]
    chosen = [part for part, flag in zip(parts, keep, strict=True) if flag] or [parts[2]]
    text = "".join(f"{value}{unit}" for value, unit, _ in chosen)
    expected = sum(value * factor for value, _, factor in chosen)
    assert math.isclose(parse_duration(text), expected, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(parse_duration("-" + text), -expected, rel_tol=1e-12, abs_tol=1e-12)


ANYTHING = st.one_of(
    st.text(),
    st.text(alphabet="0123456789.+-eEnsumh\u00b5\u03bc ifaNI", max_size=30),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.binary(),
    st.decimals(),
    st.fractions(),
    st.complex_numbers(),
    st.timedeltas(),
    st.lists(st.integers() | st.text(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@fast
@given(ANYTHING)
def test_property_parse_duration_only_raises_type_or_value_error(value: object) -> None:
    try:
        result = parse_duration(value, "d")
    except (TypeError, ValueError) as exc:
        error = exc
    else:
        assert type(result) is float
        assert not math.isnan(result)
        return
    assert str(error).startswith("d ")


@fast
@given(ANYTHING)
def test_property_parse_signals_only_raises_type_or_value_error(value: object) -> None:
    try:
        result = parse_signals(value)
    except (TypeError, ValueError) as exc:
        error = exc
    else:
        assert result is None or all(type(sig) is signal.Signals for sig in result)
        return
    assert str(error).startswith("signals")


SAMPLE_TEXTS = (
    *("0", "1s", "250ms", "2", "1m", "5.5s", "-1s", "nan", "inf", ""),
    *("TERM,INT", "true", "auto", "handler", "force", "ignore", "3", "none"),
)
KEYS = st.sampled_from([*FIELD_NAMES, *CAMEL.values()]) | st.text(max_size=12)
VALUES = st.one_of(
    st.sampled_from(SAMPLE_TEXTS),
    st.text(max_size=12),
    st.integers(-5, 300),
    st.floats(),
    st.none(),
    st.booleans(),
    st.lists(st.sampled_from(["TERM", "INT", "HUP", "KILL", "X"]), max_size=3),
)


@fast
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_property_from_mapping_valid_or_clean_error(mapping: dict[str, object]) -> None:
    try:
        cfg = ShutdownConfig.from_mapping(mapping)
    except (TypeError, ValueError):
        return
    assert_invariant(cfg)
    assert cfg.wait_time > 0
    assert math.isfinite(cfg.wait_time)
    for name in ("wrap_up_time", "drain_delay", "watchdog_grace"):
        value = getattr(cfg, name)
        assert type(value) is float
        assert 0 <= value < math.inf
    assert cfg.progress_interval > 0
    assert cfg.hook_timeout is None or 0 < cfg.hook_timeout < math.inf
    assert cfg.hard_exit in (None, True, False)
    assert 0 <= cfg.force_exit_code <= 255
    assert ShutdownConfig.from_mapping(json.loads(json.dumps(cfg.to_dict()))) == cfg


@fast
@given(
    st.dictionaries(
        st.text(max_size=8).map(lambda s: "GRACESTOP_" + s.upper()), st.text(max_size=8), max_size=4
    )
)
def test_property_from_env_valid_or_clean_error(environ: dict[str, str]) -> None:
    try:
        cfg = ShutdownConfig.from_env(environ=environ)
    except (TypeError, ValueError):
        return
    assert_invariant(cfg)


@pytest.mark.parametrize("name", ["SEGV", "SIGBUS", "FPE", "ILL"])
def test_fault_signals_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="fault signal"):
        ShutdownConfig(signals=[name])


def test_progress_interval_has_a_floor() -> None:
    assert ShutdownConfig(progress_interval="10ms").progress_interval == 0.01
    with pytest.raises(ValueError, match=r"progress_interval must be at least 0\.01s"):
        ShutdownConfig(progress_interval=1e-9)
