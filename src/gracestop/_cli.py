"""The ``gracestop`` command: ``demo``, ``config``, ``dump`` and ``profile``.

Also run as ``python -m gracestop``. Standard library only (plus PyYAML when a
YAML file is read), so it works from the base install.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import signal
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

from ._config import _MAPPING_KEYS, FIELD_NAMES, DurationLike, ShutdownConfig, parse_duration

__all__ = ["ConfigSourceError", "load_config", "main", "stop_timeout"]

DEFAULT_MARGIN = 5.0
"""Seconds added to the hard bound for interpreter exit and scheduling noise."""

_STOP_TIMEOUT_HELP = """\
The platform's stop timeout (Kubernetes terminationGracePeriodSeconds, systemd
TimeoutStopSec, docker stop -t) must outlast gracestop's own deadline, or SIGKILL
cuts the shutdown short. It is computed as

    wait_time + watchdog_grace + margin, rounded up to whole seconds.

wait_time is the deadline from the signal to the force quit and already covers
drain_delay and both phases, so the process is gone within wait_time +
watchdog_grace; the margin (default 5s) leaves room for interpreter exit and a
busy machine. A preStop hook, if you keep one, also runs inside the grace
period: add it to --margin.
"""


_EXAMPLES = """\
examples:
  gracestop demo                                  SIGTERM a demo service under load
  gracestop demo --backend trio --wrap-up-time 0.5s
  gracestop config --file app.yaml --section Shutdown
  GRACESTOP_WAIT_TIME=30s gracestop config --env --json
  gracestop dump 4242                             where is the service stuck?
  gracestop profile 4242 --duration 10s
"""


class ConfigSourceError(Exception):
    """A configuration source that cannot be read: missing file, bad syntax, no section."""


def stop_timeout(config: ShutdownConfig, margin: DurationLike = DEFAULT_MARGIN) -> int:
    """The platform stop timeout *config* needs, in whole seconds.

    ``wait_time + watchdog_grace + margin``, rounded up (*margin* in seconds or a
    duration string such as ``"4.5s"``). ``wait_time`` runs from the signal to the
    force quit and already covers ``drain_delay`` and both phases, so it is not
    counted again. Use it for Kubernetes ``terminationGracePeriodSeconds`` and
    systemd ``TimeoutStopSec``.

    Raises:
        TypeError: *config* is not a ``ShutdownConfig`` or *margin* not a duration.
        ValueError: *margin* is negative or not finite.

    >>> stop_timeout(ShutdownConfig(drain_delay=5, wrap_up_time=10, wait_time=25))
    31
    """
    if not isinstance(config, ShutdownConfig):
        raise TypeError(f"config must be a ShutdownConfig; got {type(config).__name__} {config!r}")
    seconds = parse_duration(margin, "margin")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"margin must be a finite duration >= 0; got {margin!r}")
    total = config.wait_time + config.watchdog_grace + seconds
    # Round away float noise first, so 11.000000000000002 is 11, not 12.
    return math.ceil(round(total, 6))


def _read_file(path: Path) -> object:
    suffix = path.suffix.lower()
    if suffix not in {".yaml", ".yml", ".toml", ".json"}:
        raise ConfigSourceError(
            f"cannot tell the format of {path} from its extension (use .yaml, .yml, .toml or .json)"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigSourceError(f"no such file: {path}") from None
    except OSError as exc:
        raise ConfigSourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        if suffix == ".json":
            return json.loads(data)
        if suffix == ".toml":
            # tomllib from 3.11, its backport tomli before.
            try:
                toml = importlib.import_module(
                    "tomllib" if sys.version_info >= (3, 11) else "tomli"
                )
            except ImportError:
                raise ConfigSourceError(
                    f"reading {path} needs tomli on Python < 3.11: pip install 'gracestop[toml]'"
                ) from None
            return toml.loads(data.decode())
        try:
            import yaml
        except ImportError:
            raise ConfigSourceError(
                f"reading {path} needs PyYAML: pip install 'gracestop[yaml]'"
            ) from None
        return yaml.safe_load(data)
    except ConfigSourceError:
        raise
    except Exception as exc:  # each parser has its own error class
        raise ConfigSourceError(f"cannot parse {path}: {exc}") from None


_KINDS: dict[type[object], str] = {
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


def _as_mapping(data: object) -> Mapping[object, object] | None:
    """*data* as a mapping, or None when it is not one."""
    # A parsed YAML or TOML file can hold keys and values of any type; isinstance cannot
    # say which, so the mapping is typed as holding objects and checked key by key.
    return cast("Mapping[object, object]", data) if isinstance(data, Mapping) else None


def _section(data: object, path: Path, section: str | None) -> Mapping[str, object]:
    if section is not None and not all(section.split(".")):
        raise ConfigSourceError(
            f"section must be a dotted key such as Shutdown or app.shutdown; got {section!r}"
        )
    if section:
        walked: list[str] = []
        for key in section.split("."):
            node = _as_mapping(data)
            if node is None or key not in node:
                where = f"under {'.'.join(walked)!r}" if walked else "at the top level"
                keys = ", ".join(map(str, node)) if node is not None else "none"
                raise ConfigSourceError(
                    f"no section {section!r} in {path}: no key {key!r} {where} (keys: {keys})"
                )
            walked.append(key)
            data = node[key]
    if data is None:
        # An empty YAML section ("Shutdown:" alone): every field at its default.
        data = {}
    settings = _as_mapping(data)
    if settings is None:
        what = f"section {section!r}" if section else "top level"
        kind = _KINDS.get(type(data), f"a {type(data).__name__}")
        raise ConfigSourceError(f"the {what} of {path} is {kind}, not a mapping of settings")
    if not section:
        # A whole file whose settings sit under a key (go-zero's Shutdown:): say where.
        unknown = [key for key in settings if key not in _MAPPING_KEYS]
        nested = [key for key in unknown if isinstance(settings[key], Mapping)]
        if nested:
            raise ConfigSourceError(
                f"unknown key {unknown[0]!r} at the top level of {path}; the settings "
                f"look nested: use --section {nested[0]}"
            )
    # Keys that are not strings are refused, with their name, by ShutdownConfig.from_mapping.
    return cast("Mapping[str, object]", settings)


def _env_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        signals = cast("tuple[signal.Signals, ...]", value)
        return ",".join(sig.name for sig in signals) or "none"
    return str(value)


def load_config(
    *,
    env: bool = False,
    prefix: str = "GRACESTOP_",
    file: Path | None = None,
    section: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ShutdownConfig:
    """The configuration from a file section and/or the environment, validated.

    Values from the environment win over the file's. Defaults fill the rest.

    Raises:
        ConfigSourceError: the file is missing, unreadable, of unknown format, does
            not parse, or lacks the section.
        TypeError, ValueError: a setting is invalid (the message names it).
    """
    config = ShutdownConfig()
    if file is not None:
        config = ShutdownConfig.from_mapping(_section(_read_file(file), file, section))
    if env:
        base = os.environ if environ is None else environ
        # The file's values go in as if they were variables, under the real ones,
        # so the field invariant is checked once, on the merged result.
        defaults = ShutdownConfig()
        merged = {
            prefix + name.upper(): _env_text(getattr(config, name))
            for name in FIELD_NAMES
            if getattr(config, name) != getattr(defaults, name)
        }
        given = {key: value for key, value in base.items() if key.startswith(prefix)}
        merged.update(given)
        try:
            config = ShutdownConfig.from_env(prefix, environ=merged)
        except ValueError as exc:
            rule = "drain_delay + wrap_up_time must not exceed wait_time"
            if file is None or rule not in str(exc):
                raise
            # from_env names every variable it read, some of which came from the file.
            where = f"{file}" + (f" [{section}]" if section else "")
            where += f" with {', '.join(sorted(given))}" if given else ""
            raise ValueError(f"{where}: {rule}{str(exc).split(rule, 1)[1]}") from None
    return config


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


_NONE_MEANS = {
    "signals": "default (SIGTERM and SIGINT in the main thread)",
    "hard_exit": "auto (armed when the trigger is a signal)",
    "hook_timeout": "none",
    "diagnostics_dir": "default (<tempdir>/gracestop-<uid>)",
    "report_file": "none (unless GRACESTOP_REPORT_FILE is set)",
    "systemd_notify": "auto (when NOTIFY_SOCKET is set)",
}


def _show_setting(name: str, value: object) -> str:
    if value is None:
        return _NONE_MEANS.get(name, "none")
    if isinstance(value, list):
        items = cast("list[object]", value)
        return ", ".join(map(str, items)) or "none"
    if isinstance(value, float):
        return f"{value:g}s"
    return str(value)


def _config_command(args: argparse.Namespace) -> int:
    if args.section is not None and args.file is None:
        return _fail("config", "--section needs --file")
    try:
        margin = parse_duration(args.margin, "--margin")
        if not math.isfinite(margin) or margin < 0:
            raise ValueError(f"--margin must be a finite duration >= 0; got {args.margin!r}")
        config = load_config(env=args.env, prefix=args.prefix, file=args.file, section=args.section)
    except (ConfigSourceError, TypeError, ValueError) as exc:
        return _fail("config", _one_line(exc))
    sources = ["defaults"]
    if args.file is not None:
        sources.append(f"{args.file}" + (f" [{args.section}]" if args.section else ""))
    if args.env:
        sources.append(f"environment {args.prefix}*")
    bound = config.wait_time + config.watchdog_grace
    timeout = stop_timeout(config, margin)
    if args.json:
        print(
            json.dumps(
                {
                    "config": config.to_dict(),
                    "sources": sources,
                    "hard_bound": bound,
                    "margin": margin,
                    "stop_timeout": timeout,
                    "kubernetes": {"terminationGracePeriodSeconds": timeout},
                    "systemd": {"TimeoutStopSec": timeout},
                },
                indent=2,
            )
        )
        return 0
    width = max(map(len, FIELD_NAMES))
    lines = [f"effective settings ({', '.join(sources)}):"]
    for name, value in config.to_dict().items():
        shown = _show_setting(name, value)
        lines.append(f"  {name:<{width}}  {shown}")
    lines += [
        "",
        f"process gone within wait_time + watchdog_grace = {bound:g}s after SIGTERM",
        f"stop timeout: wait_time + watchdog_grace + margin = "
        f"{config.wait_time:g} + {config.watchdog_grace:g} + {margin:g}, "
        f"rounded up = {timeout}s",
        f"  Kubernetes: terminationGracePeriodSeconds: {timeout}",
        f"  systemd:    TimeoutStopSec={timeout}",
    ]
    print("\n".join(lines))
    return 0


def _demo_command(args: argparse.Namespace) -> int:
    from ._demo import DemoOptions, format_result, run_demo

    if args.jobs < 2:
        return _fail("demo", f"--jobs must be at least 2; got {args.jobs}")
    if args.backend == "trio" and importlib.util.find_spec("trio") is None:
        return _fail("demo", "--backend trio needs trio: pip install 'gracestop[trio]'")
    try:
        timings = {
            name: parse_duration(getattr(args, name), "--" + name.replace("_", "-"))
            for name in (
                "interval",
                "job_time",
                "drain_delay",
                "wrap_up_time",
                "wait_time",
                "request_time",
            )
        }
        # The service's own config checks its fields; check here to fail before it starts.
        ShutdownConfig(
            drain_delay=timings["drain_delay"],
            wrap_up_time=timings["wrap_up_time"],
            wait_time=timings["wait_time"],
        )
        for name in ("interval", "job_time", "request_time"):
            if not math.isfinite(timings[name]) or timings[name] < 0:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be a finite duration >= 0; "
                    f"got {getattr(args, name)!r}"
                )
    except (TypeError, ValueError) as exc:
        return _fail("demo", _one_line(exc))
    if args.clients < 1:
        return _fail("demo", f"--clients must be at least 1; got {args.clients}")
    options = DemoOptions(
        backend=args.backend,
        jobs=args.jobs,
        seed=args.seed,
        http=not args.no_http,
        clients=args.clients,
        stop_signal=args.stop_signal,
        **timings,
    )
    try:
        result = run_demo(options)
    except KeyboardInterrupt:
        # run_demo has killed the service and removed its files on the way out.
        print("gracestop demo: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_result(result))
    return 0 if result.ok else 1


def _diagnostics_command(args: argparse.Namespace) -> int:
    from ._diagnostics import request_diagnostics
    from ._report import ShutdownError

    command = args.command
    if args.pid <= 0:
        return _fail(command, f"PID must be a positive process id; got {args.pid}")
    try:
        timeout = parse_duration(args.timeout, "--timeout")
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"--timeout must be a finite duration > 0; got {args.timeout!r}")
        duration = None
        if command == "profile" and args.duration is not None:
            duration = parse_duration(args.duration, "--duration")
            if not math.isfinite(duration) or duration <= 0:
                raise ValueError(f"--duration must be a finite duration > 0; got {args.duration!r}")
    except (TypeError, ValueError) as exc:
        return _fail(command, _one_line(exc))
    try:
        path = request_diagnostics(
            args.pid, command, directory=args.dir, timeout=timeout, duration=duration
        )
    except (OSError, TimeoutError, ShutdownError, ValueError) as exc:
        return _fail(command, _one_line(exc), status=1)
    print(path)
    if command == "profile":
        print(path.with_suffix(".txt"))
    return 0


def _signal_arg(text: str) -> signal.Signals:
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return signal.Signals[name]
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such signal: {text!r}") from None


def _fail(command: str, message: str, *, status: int = 2) -> int:
    """Print a one-line error; 2 is bad input (as argparse uses), 1 a failed action."""
    print(f"gracestop {command}: error: {message}", file=sys.stderr)
    return status


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gracestop`` command."""
    parser = argparse.ArgumentParser(
        prog="gracestop",
        description=textwrap.fill(
            "gracestop gives asyncio and trio services a graceful shutdown: on SIGTERM, "
            "wrap-up hooks, then shutdown hooks, within a force-quit deadline. This "
            "command shows it at work on a demo service, checks a configuration and "
            "sizes the platform's stop timeout for it, and asks a running service for "
            "a task dump or a profile."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"gracestop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="run a demo service, SIGTERM it under load, show the timeline and what was lost",
        description=(
            "Start a demo service in a child process: a job worker (SQLite-backed, "
            "in-memory queue flushed at wrap-up, database closed at shutdown) and, with "
            "the serving extra, an HTTP endpoint (gracestop.uvicorn on asyncio, "
            "gracestop.hypercorn on trio). Offer it jobs over loopback and HTTP requests "
            "from clients that stop sending once /readyz fails (as a load balancer "
            "would), send it SIGTERM half-way, and print the shutdown timeline and the "
            "numbers. A job is lost when the service acknowledged it and the SQLite "
            "file, read after the service exited, does not hold it. Exit status 0 when "
            "no job was lost, no HTTP request failed and the shutdown was ok; 1 otherwise; "
            "130 when interrupted (Ctrl-C)."
        ),
    )
    demo.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default="asyncio",
        help="the service's event loop (default asyncio; trio needs gracestop[trio])",
    )
    demo.add_argument(
        "--jobs", type=int, default=40, metavar="N", help="jobs to offer (default 40)"
    )
    demo.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the job durations (default 0)"
    )
    duration_options = [
        ("--interval", "20ms", "between two offers"),
        ("--job-time", "200ms", "mean time per job"),
        ("--drain-delay", "300ms", "the service's drain_delay"),
        ("--wrap-up-time", "3s", "the service's wrap_up_time"),
        ("--wait-time", "5s", "the service's wait_time"),
        ("--request-time", "100ms", "time per HTTP request"),
    ]
    for option, default, meaning in duration_options:
        demo.add_argument(
            option, default=default, metavar="D", help=f"{meaning} (default {default})"
        )
    demo.add_argument(
        "--clients", type=int, default=4, metavar="N", help="HTTP clients (default 4)"
    )
    demo.add_argument("--no-http", action="store_true", help="leave out the HTTP part")
    demo.add_argument("--json", action="store_true", help="print machine-readable numbers")
    # Not in --help: SIGKILL instead of SIGTERM, to show (and test) what a crash loses.
    demo.add_argument(
        "--stop-signal",
        type=_signal_arg,
        default=signal.SIGTERM,
        help=argparse.SUPPRESS,
    )
    demo.set_defaults(handler=_demo_command)

    config = commands.add_parser(
        "config",
        help="validate configuration, print the effective settings and stop timeouts",
        description=textwrap.fill(
            "Load ShutdownConfig from a YAML/TOML/JSON file (format by extension) "
            "and/or GRACESTOP_* environment variables, validate it, and print the "
            "effective settings with the Kubernetes and systemd stop timeouts they need. "
            "Exit status 2 with a one-line message on any invalid input."
        ),
        epilog=_STOP_TIMEOUT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config.add_argument("--env", action="store_true", help="read the environment (wins)")
    config.add_argument(
        "--prefix", default="GRACESTOP_", help="variable prefix (default GRACESTOP_)"
    )
    config.add_argument(
        "--file", type=Path, metavar="FILE", help="a .yaml, .yml, .toml or .json file"
    )
    config.add_argument(
        "--section",
        metavar="KEY",
        help="dotted key of the settings in the file, e.g. Shutdown or app.shutdown",
    )
    config.add_argument(
        "--margin", default="5s", metavar="D", help="added to the stop timeout (default 5s)"
    )
    config.add_argument("--json", action="store_true", help="print JSON")
    config.set_defaults(handler=_config_command)

    diagnostics_help = {
        "dump": (
            "send SIGUSR1 to PID and print the path of its task and thread dump",
            "Send SIGUSR1 to a process whose coordinator runs with diagnostics=True "
            "(GRACESTOP_DIAGNOSTICS=true) and print the path of the dump it writes: "
            "every task and thread stack, in <dir>/<program>-<pid>-tasks-<MMDDhhmmss>.dump.",
        ),
        "profile": (
            "send SIGUSR2 to PID and print the paths of its profile (.pstats and .txt)",
            "Send SIGUSR2 to a process whose coordinator runs with diagnostics=True "
            "(GRACESTOP_DIAGNOSTICS=true), which starts profiling; with --duration send "
            "a second SIGUSR2 that long after to end it, else it ends after the "
            "service's profile_duration. Print the paths of the profile: "
            "<dir>/<program>-<pid>-profile-<MMDDhhmmss>.pstats and its .txt summary.",
        ),
    }
    for name, (summary, description) in diagnostics_help.items():
        sub = commands.add_parser(
            name,
            help=summary,
            description=textwrap.fill(description)
            + "\n\n"
            + textwrap.fill(
                "<dir> is the service's diagnostics_dir, by default "
                "<tempdir>/gracestop-<uid>. Exit status 1 when the process does not "
                "exist, has no diagnostics handler, or writes no file within --timeout; "
                "2 on bad arguments."
            ),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("pid", type=int, metavar="PID")
        sub.add_argument(
            "--dir",
            type=Path,
            metavar="DIR",
            help="the service's diagnostics_dir, if not the default",
        )
        sub.add_argument(
            "--timeout", default="10s", metavar="D", help="wait for the file (default 10s)"
        )
        if name == "profile":
            sub.add_argument(
                "--duration",
                metavar="D",
                help="end the profile after this long (default: the service's profile_duration)",
            )
        sub.set_defaults(handler=_diagnostics_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gracestop`` command with *argv* (default ``sys.argv[1:]``); return the status."""
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    status: int = args.handler(args)
    return status
