"""The ``gracestop`` command: helpers in-process, the command end to end in subprocesses."""

from __future__ import annotations

import json
import os
import pstats
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gracestop import ShutdownConfig
from gracestop._cli import ConfigSourceError, load_config, main, stop_timeout

GO_ZERO_YAML = """\
Name: orders
Port: 8080
Shutdown:
  WrapUpTime: 2s
  WaitTime: 10s
"""


def gracestop_cmd(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m gracestop ARGS`` in a fresh interpreter, bounded in time."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GRACESTOP_")}
    full_env.pop("PYTHONWARNINGS", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gracestop", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
        check=False,
    )


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------------------
# stop_timeout
# ---------------------------------------------------------------------------


def test_stop_timeout_of_the_defaults() -> None:
    # 0 + 5.5 + 0.5 + 5
    assert stop_timeout(ShutdownConfig()) == 11


def test_stop_timeout_counts_wait_time_grace_and_margin_but_not_drain_delay_twice() -> None:
    # wait_time runs from the signal to the force quit: the drain delay is inside it.
    config = ShutdownConfig(drain_delay=5, wrap_up_time=10, wait_time=25, watchdog_grace=0.5)
    assert stop_timeout(config) == 31  # 25 + 0.5 + 5, rounded up
    assert stop_timeout(config, margin=0) == 26
    assert stop_timeout(config, margin="4.5s") == 30
    assert stop_timeout(ShutdownConfig(drain_delay=0, wrap_up_time=10, wait_time=25)) == 31


def test_stop_timeout_rounds_up_but_not_float_noise() -> None:
    # Sums such as 0.1 + 0.2 carry noise in the last bits: under a microsecond is noise.
    noisy = ShutdownConfig(wait_time=5 + 1e-10, watchdog_grace=0)
    assert stop_timeout(noisy, margin=0) == 5
    assert stop_timeout(ShutdownConfig(wait_time=5.001, watchdog_grace=0), margin=0) == 6


@pytest.mark.parametrize(
    ("margin", "error", "message"),
    [
        (-1, ValueError, "margin must be a finite duration >= 0; got -1"),
        ("inf", ValueError, "margin must be a finite duration >= 0; got 'inf'"),
        ("soon", ValueError, "margin must be a duration"),
        (True, TypeError, "margin must be a duration"),
    ],
)
def test_stop_timeout_refuses_a_bad_margin(
    margin: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        stop_timeout(ShutdownConfig(), margin=margin)


def test_stop_timeout_wants_a_config() -> None:
    with pytest.raises(TypeError, match=r"config must be a ShutdownConfig; got dict \{\}"):
        stop_timeout({})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# load_config
# ---------------------------------------------------------------------------


def test_load_config_from_a_go_zero_yaml_section(tmp_path: Path) -> None:
    path = write(tmp_path / "orders.yaml", GO_ZERO_YAML)
    config = load_config(file=path, section="Shutdown")
    assert (config.wrap_up_time, config.wait_time) == (2.0, 10.0)
    assert config.drain_delay == ShutdownConfig().drain_delay


def test_load_config_from_a_nested_toml_section(tmp_path: Path) -> None:
    path = write(
        tmp_path / "app.toml",
        """\
        [service.shutdown]
        wait_time = "30s"
        drain_delay = 5
        signals = ["TERM"]
        """,
    )
    config = load_config(file=path, section="service.shutdown")
    assert (config.wait_time, config.drain_delay) == (30.0, 5.0)
    assert [sig.name for sig in config.signals or ()] == ["SIGTERM"]


def test_load_config_from_a_whole_json_file(tmp_path: Path) -> None:
    path = write(tmp_path / "shutdown.json", '{"wait_time": 8, "hard_exit": false}')
    config = load_config(file=path)
    assert (config.wait_time, config.hard_exit) == (8.0, False)


def test_load_config_from_the_environment() -> None:
    environ = {"GRACESTOP_WAIT_TIME": "20s", "GRACESTOP_DRAIN_DELAY": "3s", "HOME": "/x"}
    config = load_config(env=True, environ=environ)
    assert (config.wait_time, config.drain_delay) == (20.0, 3.0)
    config = load_config(env=True, prefix="APP_", environ={"APP_WAIT_TIME": "7s"})
    assert config.wait_time == 7.0


def test_environment_wins_over_the_file_and_the_rule_is_checked_on_the_merge(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "orders.yaml", GO_ZERO_YAML)
    # Alone, drain_delay 7 + wrap_up_time 1 > wait_time 5.5; with the file's 10s it fits.
    environ = {"GRACESTOP_DRAIN_DELAY": "7s", "GRACESTOP_WRAP_UP_TIME": "3s"}
    config = load_config(env=True, file=path, section="Shutdown", environ=environ)
    assert (config.drain_delay, config.wrap_up_time, config.wait_time) == (7.0, 3.0, 10.0)


def test_file_values_of_every_kind_survive_the_merge_with_the_environment(
    tmp_path: Path,
) -> None:
    settings = {
        "hook_timeout": 2,
        "signals": [],
        "hard_exit": True,
        "second_signal": "ignore",
        "force_exit_code": 3,
    }
    path = write(tmp_path / "all.json", json.dumps(settings))
    config = load_config(env=True, file=path, environ={"GRACESTOP_WAIT_TIME": "9s"})
    expected = ShutdownConfig(wait_time=9, **settings)  # type: ignore[arg-type]
    assert config == expected


@pytest.mark.parametrize(
    ("name", "text", "section", "message"),
    [
        ("missing.yaml", None, None, "no such file: {path}"),
        ("app.ini", "[x]", None, "cannot tell the format of {path} from its extension"),
        ("bad.json", '{"wait_time": ', None, "cannot parse {path}: Expecting value"),
        ("bad.toml", "wait_time = = 1", None, "cannot parse {path}: Invalid value"),
        ("bad.yaml", "a: [1, 2", None, "cannot parse {path}: while parsing"),
        ("app.yaml", GO_ZERO_YAML, "Shutdown.Grace", "no section 'Shutdown.Grace' in {path}"),
        ("app.yaml", GO_ZERO_YAML, "Http", "no key 'Http' at the top level (keys: Name,"),
        (
            "app.yaml",
            GO_ZERO_YAML,
            "Port",
            "the section 'Port' of {path} is a number, not a mapping",
        ),
        ("list.json", "[1]", None, "the top level of {path} is a list, not a mapping of settings"),
        (
            "list.yaml",
            "- 1\n",
            None,
            "the top level of {path} is a list, not a mapping of settings",
        ),
        ("app.yaml", GO_ZERO_YAML, "", "section must be a dotted key such as Shutdown"),
        (
            "app.yaml",
            GO_ZERO_YAML,
            "Shutdown.",
            "such as Shutdown or app.shutdown; got 'Shutdown.'",
        ),
        (
            "app.yaml",
            GO_ZERO_YAML,
            None,
            "unknown key 'Name' at the top level of {path}; the settings look nested: "
            "use --section Shutdown",
        ),
        (
            "wrapped.json",
            '{"Shutdown": {"WaitTime": "2s"}}',
            None,
            "unknown key 'Shutdown' at the top level of {path}; the settings look nested: "
            "use --section Shutdown",
        ),
    ],
)
def test_load_config_source_errors(
    tmp_path: Path, name: str, text: str | None, section: str | None, message: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigSourceError, match=re.escape(message.format(path=path))):
        load_config(file=path, section=section)


def test_an_empty_yaml_file_or_section_is_all_defaults(tmp_path: Path) -> None:
    assert load_config(file=write(tmp_path / "empty.yml", "")) == ShutdownConfig()
    path = write(tmp_path / "app.yml", "Name: orders\nShutdown:\n")
    assert load_config(file=path, section="Shutdown") == ShutdownConfig()


def test_load_config_setting_errors_name_the_key(tmp_path: Path) -> None:
    path = write(tmp_path / "app.yaml", "Shutdown:\n  WaitTme: 10s\n")
    with pytest.raises(ValueError, match="unknown key 'WaitTme'; did you mean 'WaitTime'"):
        load_config(file=path, section="Shutdown")
    with pytest.raises(ValueError, match="GRACESTOP_WAIT_TIME"):
        load_config(env=True, environ={"GRACESTOP_WAIT_TIME": "soon"})


# ---------------------------------------------------------------------------
# main() in-process: argument handling and output
# ---------------------------------------------------------------------------


def test_config_prints_the_settings_and_the_platform_timeouts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "orders.yaml", GO_ZERO_YAML)
    assert main(["config", "--file", str(path), "--section", "Shutdown"]) == 0
    out = capsys.readouterr().out
    assert f"effective settings (defaults, {path} [Shutdown]):" in out
    assert re.search(r"^  wait_time +10s$", out, re.M)
    assert re.search(r"^  wrap_up_time +2s$", out, re.M)
    assert "process gone within wait_time + watchdog_grace = 10.5s after SIGTERM" in out
    assert (
        "stop timeout: wait_time + watchdog_grace + margin = 10 + 0.5 + 5, rounded up = 16s" in out
    )
    assert "Kubernetes: terminationGracePeriodSeconds: 16" in out
    assert "systemd:    TimeoutStopSec=16" in out


def test_config_json_output(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRACESTOP_WAIT_TIME", "12s")
    monkeypatch.setenv("GRACESTOP_SIGNALS", "TERM")
    assert main(["config", "--env", "--margin", "2s", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["wait_time"] == 12.0
    assert data["config"]["signals"] == ["SIGTERM"]
    assert data["sources"] == ["defaults", "environment GRACESTOP_*"]
    assert data["hard_bound"] == 12.5
    assert data["stop_timeout"] == 15  # 12 + 0.5 + 2, rounded up
    assert data["kubernetes"] == {"terminationGracePeriodSeconds": 15}
    assert data["systemd"] == {"TimeoutStopSec": 15}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["config", "--section", "Shutdown"], "--section needs --file"),
        (["config", "--margin=-3s"], "--margin must be a finite duration >= 0; got '-3s'"),
        (["demo", "--jobs", "1"], "--jobs must be at least 2; got 1"),
        (["demo", "--interval=-1s"], "--interval must be a finite duration >= 0"),
        (["demo", "--wait-time", "1s", "--wrap-up-time", "3s"], "must not exceed wait_time"),
        (["demo", "--job-time", "slow"], "--job-time must be a duration"),
        (["demo", "--clients", "0"], "--clients must be at least 1; got 0"),
        (["dump", "0"], "PID must be a positive process id; got 0"),
        (["dump", "1", "--timeout", "0"], "--timeout must be a finite duration > 0; got '0'"),
        (["profile", "1", "--duration", "nan"], "--duration must be a number of seconds, not NaN"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"gracestop {argv[0]}: error: ")
    assert message in err


def test_dump_of_a_process_that_does_not_exist(capsys: pytest.CaptureFixture[str]) -> None:
    # Above the kernel's largest pid: no process can have it, now or later.
    pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    assert main(["dump", str(pid)]) == 1
    assert capsys.readouterr().err == f"gracestop dump: error: no process with pid {pid}\n"


# ---------------------------------------------------------------------------
# The command in subprocesses
# ---------------------------------------------------------------------------

pytestmark_process = pytest.mark.process


@pytest.mark.parametrize(
    ("command", "phrases"),
    [
        (
            None,
            [
                "usage: gracestop",
                "demo",
                "config",
                "dump",
                "profile",
                "--version",
                "graceful shutdown",
                "examples:\n  gracestop demo ",
                "gracestop config --file app.yaml --section Shutdown",
            ],
        ),
        (
            "demo",
            [
                "usage: gracestop demo",
                "--backend {asyncio,trio}",
                "the service's event loop (default asyncio",
                "--jobs N",
                "--drain-delay D",
                "(default 300ms)",
                "--json",
            ],
        ),
        (
            "config",
            [
                "usage: gracestop config",
                "--file FILE",
                "--section KEY",
                "--margin D",
                "(default GRACESTOP_)",
                "--env",
                "--prefix",
                "--section",
                "wait_time + watchdog_grace + margin, rounded up",
                "terminationGracePeriodSeconds",
                "TimeoutStopSec",
            ],
        ),
        ("dump", ["usage: gracestop dump", "PID", "--dir DIR", "--timeout D", "SIGUSR1"]),
        ("profile", ["usage: gracestop profile", "--duration D", "SIGUSR2"]),
    ],
)
def test_help(
    command: str | None,
    phrases: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exit_info:
        main([*([command] if command else []), "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for phrase in phrases:
        assert phrase in out
    # The hidden option stays hidden.
    assert "--stop-signal" not in out


@pytestmark_process
def test_no_command_is_a_usage_error() -> None:
    proc = gracestop_cmd()
    assert proc.returncode == 2
    assert "the following arguments are required: COMMAND" in proc.stderr


@pytestmark_process
def test_console_script_is_the_same_command(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("gracestop")
    if not script.exists():
        pytest.skip(f"no console script at {script} (package not installed)")
    path = write(tmp_path / "orders.yaml", GO_ZERO_YAML)
    for args in (["--help"], ["config", "--file", str(path), "--section", "Shutdown"]):
        module = gracestop_cmd(*args)
        console = subprocess.run(
            [str(script), *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert module.returncode == console.returncode == 0
        assert console.stdout == module.stdout.replace("python -m gracestop", "gracestop")


def run_main(
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    cwd: Path,
    env: dict[str, str],
) -> tuple[int, str, str]:
    """``main(argv)`` in *cwd* with exactly the ``GRACESTOP_*`` variables of *env*."""
    for name in os.environ:
        if name.startswith("GRACESTOP_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cwd)
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytestmark_process
def test_config_in_a_fresh_interpreter(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(GO_ZERO_YAML)
    proc = gracestop_cmd("config", "--file", "app.yaml", "--section", "Shutdown", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "systemd:    TimeoutStopSec=16\n" in proc.stdout
    proc = gracestop_cmd("config", "--env", env={"GRACESTOP_DRAIN_DELAY": "soon"}, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == ""
    assert proc.stderr == (
        "gracestop config: error: GRACESTOP_DRAIN_DELAY: drain_delay must be a duration such "
        "as '500ms', '5.5s', '1m30s' or '2' (seconds); got 'soon'\n"
    )


@pytest.mark.parametrize(
    ("files", "args", "env", "expected"),
    [
        ({"app.yaml": GO_ZERO_YAML}, ["--file", "app.yaml", "--section", "Shutdown"], {}, 16),
        (
            {"app.toml": '[shutdown]\nwait_time = "20s"\ndrain_delay = "5s"\n'},
            ["--file", "app.toml", "--section", "shutdown"],
            {},
            26,
        ),
        ({"app.json": '{"WaitTime": "2s", "WrapUpTime": 1}'}, ["--file", "app.json"], {}, 8),
        ({}, ["--env"], {"GRACESTOP_WAIT_TIME": "25s", "GRACESTOP_DRAIN_DELAY": "5s"}, 31),
        ({}, ["--env", "--prefix", "APP_"], {"APP_WAIT_TIME": "1m"}, 66),
    ],
)
def test_config_on_good_input(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    files: dict[str, str],
    args: list[str],
    env: dict[str, str],
    expected: int,
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    status, out, err = run_main(["config", *args, "--json"], monkeypatch, capsys, tmp_path, env)
    assert status == 0, err
    assert err == ""
    data = json.loads(out)
    assert data["stop_timeout"] == expected
    assert data["kubernetes"]["terminationGracePeriodSeconds"] == expected
    status, out, err = run_main(["config", *args], monkeypatch, capsys, tmp_path, env)
    assert f"TimeoutStopSec={expected}\n" in out


@pytest.mark.parametrize(
    ("files", "args", "env", "message"),
    [
        (
            {"app.yaml": "Shutdown:\n  WaitTime: 10s\n  Drain: 1s\n"},
            ["--file", "app.yaml", "--section", "Shutdown"],
            {},
            "unknown key 'Drain'",
        ),
        (
            {"app.yaml": "Shutdown:\n  WaitTime: ten seconds\n"},
            ["--file", "app.yaml", "--section", "Shutdown"],
            {},
            "WaitTime: wait_time must be a duration such as '500ms', '5.5s', '1m30s' or "
            "'2' (seconds); got 'ten seconds'",
        ),
        ({}, ["--file", "nowhere.yaml"], {}, "no such file: nowhere.yaml"),
        (
            {"app.yaml": GO_ZERO_YAML},
            ["--file", "app.yaml", "--section", "Shutdwn"],
            {},
            "no section 'Shutdwn' in app.yaml",
        ),
        ({"app.toml": "[shutdown\n"}, ["--file", "app.toml"], {}, "cannot parse app.toml"),
        (
            {},
            ["--env"],
            {"GRACESTOP_WAIT_TIMEOUT": "3s"},
            "unknown environment variable 'GRACESTOP_WAIT_TIMEOUT'",
        ),
        ({}, ["--env"], {"GRACESTOP_DRAIN_DELAY": "-1s"}, "GRACESTOP_DRAIN_DELAY"),
        (
            {"app.yaml": GO_ZERO_YAML},
            ["--file", "app.yaml", "--section", ""],
            {},
            "section must be a dotted key such as Shutdown or app.shutdown; got ''",
        ),
        ({}, ["--section", ""], {}, "--section needs --file"),
        (
            {"app.yaml": "- WaitTime: 10s\n"},
            ["--file", "app.yaml"],
            {},
            "the top level of app.yaml is a list, not a mapping of settings",
        ),
        (
            {"app.yaml": GO_ZERO_YAML},
            ["--file", "app.yaml"],
            {},
            "the settings look nested: use --section Shutdown",
        ),
    ],
)
def test_config_on_bad_input_exits_2_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    files: dict[str, str],
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    status, out, err = run_main(["config", *args], monkeypatch, capsys, tmp_path, env)
    assert status == 2, out
    assert out == ""
    assert err.startswith("gracestop config: error: ")
    assert err.count("\n") == 1, err
    assert message in err


@pytestmark_process
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_loses_nothing(backend: str) -> None:
    # A drain delay long enough that a load balancer polling /readyz on a busy
    # machine still sees it fail before the listener closes.
    proc = gracestop_cmd("demo", "--backend", backend, "--drain-delay", "1s", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    jobs = data["jobs"]
    assert data["ok"] is True, data["problems"]
    assert jobs["lost"] == 0
    # The signal came mid-flight: jobs were done, others still queued and flushed.
    assert jobs["acknowledged_done"] >= 1
    assert jobs["rows_pending"] >= 1
    assert jobs["rows_done"] == jobs["acknowledged_done"]
    assert jobs["rows_done"] + jobs["rows_pending"] == jobs["queued"]
    assert data["service_exit_code"] == 0
    shutdown = data["shutdown"]
    assert shutdown["ok"] is True
    assert shutdown["trigger"]["signal"] == "SIGTERM"
    hooks = {r["name"]: r["status"] for r in shutdown["results"]}
    server = {"asyncio": "uvicorn", "trio": "hypercorn"}[backend]
    assert hooks == {
        "stop-workers": "ok",
        "flush-queue": "ok",
        server: "ok",
        "close-db": "ok",
    }
    http = data["http"]
    assert data["skipped"] == []
    assert http["server"] == server
    assert http["failed"] == 0
    assert http["served"] >= 1
    assert http["served"] + http["refused"] == http["sent"]
    assert http["readiness_off_after"] is not None
    # The server logs at WARNING: its startup lines would only repeat the port.
    assert not [line for line in data["service_log"] if "Running on" in line]


@pytestmark_process
def test_demo_without_the_serving_extra_runs_the_worker_part_and_says_so() -> None:
    # What a base install sees: uvicorn and hypercorn cannot be imported.
    code = (
        "import sys; sys.modules['uvicorn'] = sys.modules['hypercorn'] = None; "
        "from gracestop._cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run(
        [sys.executable, "-c", code, "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["skipped"] == [
        "HTTP part skipped: uvicorn is not installed (pip install 'gracestop[uvicorn]')"
    ]
    assert data["http"] is None
    assert data["jobs"]["lost"] == 0
    assert "uvicorn" not in {r["name"] for r in data["shutdown"]["results"]}


@pytestmark_process
def test_demo_with_the_defaults_tells_the_story_in_one_screen(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    status = main(["demo"])
    captured = capsys.readouterr()
    out = captured.out
    assert status == 0, out + captured.err
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80, out
    assert len(lines) <= 36, out
    assert lines[0] == "gracestop demo: a job worker and an HTTP endpoint (uvicorn) on asyncio"
    # Said once, by the timeline, not again by the log line before it.
    assert len(re.findall(r"shutdown ok in \d", out)) == 1, out
    assert "received SIGTERM, shutting down" in out
    assert re.search(r"flush-queue: \d+ queued jobs saved as pending", out)
    assert out.index("flush-queue: ") < out.index("close-db: database closed")
    assert "stage / hook" in out  # the rendered timeline
    assert re.search(r"^      lost 0$", out, re.M)
    assert re.search(r"served \d+, failed 0, refused \d+; after SIGTERM", out)
    assert re.search(
        r"^http: 4 clients on uvicorn stop once /readyz fails: [0-9.]+s after", out, re.M
    )
    assert out.rstrip().endswith(
        "ok: no job lost, no request failed, shutdown ok, service exit status 0"
    )


@pytestmark_process
def test_demo_no_http_on_a_wide_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["demo", "--no-http", "--backend", "trio"]) == 0
    out = capsys.readouterr().out
    assert "  HTTP part skipped: --no-http was given\n" in out
    assert "http:" not in out
    assert out.rstrip().endswith("ok: no job lost, shutdown ok, service exit status 0")
    # The timeline follows the terminal, up to 100 columns.
    timeline = [line for line in out.splitlines() if line.startswith("  stage / hook")]
    assert [len(line) for line in timeline] == [100], out
    assert max(map(len, out.splitlines())) <= 100, out


@pytestmark_process
def test_demo_counts_a_job_lost_when_wrap_up_time_is_too_short() -> None:
    # Jobs take ~2 s; wrap-up time is 0.5 s, so the database is closed under the job
    # in hand: the demo must find that job missing from the file and fail.
    proc = gracestop_cmd(
        "demo",
        "--jobs",
        "6",
        "--job-time",
        "2s",
        "--drain-delay",
        "0",
        "--wrap-up-time",
        "0.5s",
        "--wait-time",
        "1s",
        "--json",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] is False
    assert data["jobs"]["lost"] >= 1
    assert "acknowledged jobs are not in the database" in " ".join(data["problems"])
    lost = set(data["jobs"]["lost_ids"])
    open_holds = {hold.removeprefix("job-") for hold in data["shutdown"]["open_holds"]}
    assert {str(job) for job in lost} <= open_holds


# ---------------------------------------------------------------------------
# dump and profile against a real service
# ---------------------------------------------------------------------------

DIAGNOSTICS_SERVICE = """\
import sys, anyio, gracestop

async def main(coord):
    print("READY", flush=True)
    await anyio.sleep_forever()

gracestop.run(
    main, backend=sys.argv[1], hooks=gracestop.Hooks(),
    diagnostics=True, diagnostics_dir=sys.argv[2],
)
"""


class Service:
    """A coordinator with diagnostics on, in a child process, ended by SIGTERM."""

    def __init__(self, backend: str, directory: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRACESTOP_")}
        env.pop("PYTHONWARNINGS", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-c", DIAGNOSTICS_SERVICE, backend, str(directory)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(
            target=lambda: lines.put(self.proc.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        try:
            first = lines.get(timeout=30)
        except queue.Empty:
            first = "(nothing within 30s)"
        if first.strip() != "READY":
            self.stop()
            pytest.fail(f"service did not start: {first!r}; stderr:\n{self.proc.stderr.read()}")  # type: ignore[union-attr]

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            pytest.fail(f"service ignored SIGTERM; stderr:\n{err}")
        return self.proc.returncode, err


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Callable[[str], Service]]:
    started: list[Service] = []

    def start(backend: str) -> Service:
        started.append(Service(backend, tmp_path / "diag"))
        return started[-1]

    yield start
    for svc in started:
        svc.stop()


@pytestmark_process
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_dump_prints_the_path_of_the_task_dump(
    backend: str, tmp_path: Path, service: Callable[[str], Service]
) -> None:
    svc = service(backend)
    directory = tmp_path / "diag"
    proc = gracestop_cmd("dump", str(svc.proc.pid), "--dir", str(directory), "--timeout", "20s")
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip())
    assert path.parent == directory
    assert re.fullmatch(rf".+-{svc.proc.pid}-tasks-[0-9]{{10}}(-[0-9]+)?\.dump", path.name)
    assert "sleep_forever" in path.read_text()
    rc, err = svc.stop()
    assert rc == 0, err


@pytestmark_process
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_profile_prints_the_paths_of_the_profile(
    backend: str, tmp_path: Path, service: Callable[[str], Service]
) -> None:
    svc = service(backend)
    directory = tmp_path / "diag"
    proc = gracestop_cmd(
        "profile",
        str(svc.proc.pid),
        "--dir",
        str(directory),
        "--duration",
        "300ms",
        "--timeout",
        "20s",
    )
    assert proc.returncode == 0, proc.stderr
    stats_path, text_path = (Path(line) for line in proc.stdout.splitlines())
    assert stats_path.suffix == ".pstats"
    assert text_path == stats_path.with_suffix(".txt")
    assert pstats.Stats(str(stats_path)).total_calls > 0  # type: ignore[attr-defined]
    assert text_path.read_text()
    rc, err = svc.stop()
    assert rc == 0, err


@pytestmark_process
def test_dump_refuses_a_process_without_diagnostics() -> None:
    # A process with no SIGUSR1 handler would die of the signal: it must not be sent.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc = gracestop_cmd("dump", str(sleeper.pid), "--timeout", "1s")
        assert proc.returncode == 1
        assert proc.stderr == (
            f"gracestop dump: error: pid {sleeper.pid} has no handler for SIGUSR1: it does "
            "not run gracestop with diagnostics=True; not sending SIGUSR1, which would end it\n"
        )
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait(10)


def test_yaml_without_pyyaml_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "orders.yaml", GO_ZERO_YAML)
    monkeypatch.setitem(sys.modules, "yaml", None)  # what an install without PyYAML sees
    with pytest.raises(
        ConfigSourceError,
        match=re.escape(f"reading {path} needs PyYAML: pip install 'gracestop[yaml]'"),
    ):
        load_config(file=path, section="Shutdown")


def test_toml_without_a_toml_parser_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "app.toml", "wait_time = 3\n")
    # What Python 3.10 without tomli sees (tomllib is in the standard library from 3.11).
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(
        ConfigSourceError,
        match=re.escape(
            f"reading {path} needs tomli on Python < 3.11: pip install 'gracestop[toml]'"
        ),
    ):
        load_config(file=path)


def test_unreadable_file(tmp_path: Path) -> None:
    directory = tmp_path / "conf.json"
    directory.mkdir()
    with pytest.raises(ConfigSourceError, match=re.escape(f"cannot read {directory}: ")):
        load_config(file=directory)


@pytestmark_process
def test_demo_reports_a_service_that_does_not_start() -> None:
    from gracestop._demo import DemoOptions, format_result, run_demo

    # The CLI checks this rule before starting anything; run_demo leaves it to the
    # service, which refuses the configuration and dies before READY.
    result = run_demo(DemoOptions(http=False, wrap_up_time=10, wait_time=1))
    assert not result.ok
    assert result.returncode == 1
    # Told apart from a service that is slow to start.
    assert result.problems[0] == "the service exited before READY (status 1)"
    assert "the service exited with status 1" in result.problems
    assert "the service printed no shutdown report" in result.problems
    assert any("must not exceed wait_time" in line for line in result.log)
    assert result.jobs.offered == 0
    text = format_result(result)
    assert "(no shutdown report)" in text
    assert "FAILED: the service exited with status 1" in text


@pytestmark_process
def test_demo_counts_the_acknowledged_jobs_a_killed_service_loses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # SIGKILL instead of SIGTERM: no report, no flush; the jobs acknowledged as
    # queued and never committed must be counted lost from the file alone.
    argv = ["demo", "--no-http", "--job-time", "1s", "--stop-signal", "KILL", "--json"]
    assert main(argv) == 1
    data = json.loads(capsys.readouterr().out)
    jobs = data["jobs"]
    assert data["ok"] is False
    assert data["shutdown"] is None
    assert data["service_exit_code"] == -signal.SIGKILL
    assert jobs["queued"] > jobs["acknowledged_done"]
    assert jobs["lost"] == jobs["queued"] - jobs["rows_done"] >= 1
    assert jobs["rows_pending"] == 0
    assert f"{jobs['lost']} acknowledged jobs are not in the database" in data["problems"]
    assert "the service printed no shutdown report" in data["problems"]


def test_demo_on_trio_without_trio_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "trio", None)  # what an install without trio sees
    assert main(["demo", "--backend", "trio"]) == 2
    assert capsys.readouterr().err == (
        "gracestop demo: error: --backend trio needs trio: pip install 'gracestop[trio]'\n"
    )


@pytestmark_process
def test_demo_interrupted_with_ctrl_c_exits_130_and_stops_the_service() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRACESTOP_")}
    env.pop("PYTHONWARNINGS", None)
    # A child inherits an ignored SIGINT, and Python then installs no KeyboardInterrupt
    # handler: start the demo with SIGINT as a terminal would deliver it.
    start = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from gracestop._cli import main; sys.exit(main(sys.argv[1:]))"
    )
    demo = subprocess.Popen(
        [sys.executable, "-c", start, "demo", "--no-http", "--job-time", "5s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    children = Path(f"/proc/{demo.pid}/task/{demo.pid}/children")
    service: list[int] = []
    end = time.monotonic() + 30
    tasks = Path(f"/proc/{demo.pid}/task")
    # Wait (bounded) until the demo has started its service and the threads that read
    # the service's output (so it is past Popen), then interrupt it.
    while demo.poll() is None and time.monotonic() < end:
        service = [int(pid) for pid in children.read_text().split()]
        if service and len(list(tasks.iterdir())) >= 3:
            break
        threading.Event().wait(0.05)
    try:
        assert service, "the demo started no service within 30s"
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate(timeout=10)
    assert demo.returncode == 130, out + err
    assert err == "gracestop demo: interrupted\n"
    assert not Path(f"/proc/{service[0]}").exists() or (
        Path(f"/proc/{service[0]}/stat").read_text().split()[2] == "Z"
    )


def test_count_losses_reads_the_file_whatever_happened(tmp_path: Path) -> None:
    from gracestop._demo import JobCounts, count_losses
    from gracestop._demo_service import JobStore

    def acknowledged() -> JobCounts:
        return JobCounts(offered=4, queued={1, 2, 3, 4}, done={1, 2})

    db = tmp_path / "jobs.sqlite3"
    store = JobStore(db)
    store.save([1, 2], "done")
    store.save([3], "pending")
    store.close()
    counts = acknowledged()
    assert count_losses(db, counts) == []
    assert (counts.rows_done, counts.rows_pending, counts.lost) == (2, 1, [4])

    counts = acknowledged()
    assert count_losses(tmp_path / "nowhere.sqlite3", counts) == [
        "the service left no job database"
    ]
    assert counts.lost == [1, 2, 3, 4]

    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database, " * 100)
    counts = acknowledged()
    [problem] = count_losses(garbage, counts)
    assert problem.startswith("cannot read the job database: ")
    assert counts.lost == [1, 2, 3, 4]
