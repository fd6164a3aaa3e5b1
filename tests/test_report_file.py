"""The JSON report file: written atomically at the end of every shutdown, never a
reason for a shutdown to fail."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from gracestop import Hooks, ShutdownConfig, ShutdownCoordinator
from gracestop._report_file import write_report_file

pytestmark = pytest.mark.anyio


def coordinator(path: os.PathLike[str] | str, **overrides: object) -> ShutdownCoordinator:
    return ShutdownCoordinator(
        hooks=Hooks(),
        report_file=path,
        signals=(),
        hard_exit=False,
        **overrides,  # type: ignore[arg-type]
    )


def read(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


async def test_report_is_written_at_the_end_of_the_shutdown(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    async with coordinator(target) as coord:

        @coord.on_shutdown(name="close-db")
        async def close_db() -> None:
            assert not target.exists()  # written once everything has ended

        coord.shutdown("deploy")
    assert coord.report is not None
    data = read(target)
    assert data == coord.report.to_dict()
    assert data["ok"] is True
    assert (data["trigger"]["kind"], data["trigger"]["reason"]) == ("manual", "deploy")
    assert target.read_text(encoding="utf-8").startswith('{\n  "schema": "gracestop.report"')
    assert target.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert os.listdir(tmp_path) == ["report.json"]  # no temporary file left behind


async def test_report_replaces_the_previous_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("previous run\n", encoding="utf-8")
    # A second name for the old file: if the report were written into the old
    # file in place, this name would show the new content (or half of it).
    old = tmp_path / "old-link.json"
    os.link(target, old)
    async with coordinator(str(target)):
        pass
    assert old.read_text(encoding="utf-8") == "previous run\n"
    assert target.stat().st_ino != old.stat().st_ino
    assert read(target)["trigger"]["kind"] == "exit"
    assert sorted(os.listdir(tmp_path)) == ["old-link.json", "report.json"]


async def test_report_of_a_forced_quit_and_a_failed_hook_is_written(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    async with coordinator(target, wait_time=1.5, wrap_up_time=0.2) as coord:

        @coord.on_wrap_up(name="stuck")
        async def stuck() -> None:
            await anyio.sleep_forever()

        @coord.on_shutdown(name="broken")
        async def broken() -> None:
            raise RuntimeError("no connection")

        coord.shutdown()
    data = read(target)
    assert data["forced"] is True
    assert data["forced_by"] == "deadline"
    statuses = {r["name"]: r["status"] for r in data["results"]}
    assert statuses == {"stuck": "timed_out", "broken": "failed"}


async def test_report_is_written_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    with pytest.raises(ZeroDivisionError):
        async with coordinator(target):
            raise ZeroDivisionError
    assert read(target)["trigger"]["kind"] == "error"


@pytest.mark.parametrize("where", ["missing-dir", "a-directory"])
async def test_a_report_that_cannot_be_written_is_logged_and_the_shutdown_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    if where == "missing-dir":
        target = tmp_path / "no" / "such" / "dir" / "report.json"
    else:
        target = tmp_path / "taken"
        (target / "child").mkdir(parents=True)  # a non-empty directory cannot be replaced
    with caplog.at_level(logging.ERROR, logger="gracestop"):
        async with coordinator(target) as coord:

            @coord.on_shutdown
            async def fine() -> None:
                pass

    assert coord.report is not None and coord.report.ok
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, caplog.text
    assert f"could not write the shutdown report to {target}" in errors[0].getMessage()
    assert errors[0].gracestop_report_file == str(target)  # type: ignore[attr-defined]
    leftovers = [name for _, _, files in os.walk(tmp_path) for name in files]
    assert leftovers == []


def test_write_report_file_reports_success(tmp_path: Path) -> None:
    from test_report import fixed_report

    target = tmp_path / "r.json"
    assert write_report_file(str(target), fixed_report()) is True
    assert read(target) == fixed_report().to_dict()
    assert write_report_file(str(tmp_path / "nope" / "r.json"), fixed_report()) is False


# ------------------------------------------------------------------ configuration


def test_report_file_field_accepts_paths_and_stores_a_str(tmp_path: Path) -> None:
    assert ShutdownConfig().report_file is None
    assert ShutdownConfig(report_file=tmp_path / "r.json").report_file == str(tmp_path / "r.json")
    assert ShutdownConfig(report_file="r.json").report_file == "r.json"
    assert ShutdownConfig.from_mapping({"ReportFile": "/var/run/r.json"}).report_file == (
        "/var/run/r.json"
    )
    cfg = ShutdownConfig(report_file="/tmp/r.json")
    assert ShutdownConfig.from_mapping(cfg.to_dict()) == cfg


def test_report_file_from_the_environment() -> None:
    env = {"GRACESTOP_REPORT_FILE": "/run/app/shutdown.json"}
    assert ShutdownConfig.from_env(environ=env).report_file == "/run/app/shutdown.json"
    assert ShutdownConfig.from_env(environ={"GRACESTOP_REPORT_FILE": ""}).report_file is None
    assert ShutdownConfig.from_env(environ={"GRACESTOP_REPORT_FILE": " "}).report_file is None


@pytest.mark.parametrize(
    ("value", "exc", "pattern"),
    [
        (42, TypeError, "report_file must be a str, an os.PathLike or None; got int 42"),
        (b"r.json", TypeError, "report_file must be a str, an os.PathLike or None; got bytes"),
        ("", ValueError, "report_file must be a file path, not an empty string; got ''"),
        ("  ", ValueError, "report_file must be a file path, not an empty string; got '  '"),
        ("a\0b", ValueError, "report_file must not contain a NUL character"),
    ],
)
def test_report_file_refuses_bad_values(value: object, exc: type[Exception], pattern: str) -> None:
    with pytest.raises(exc, match="^" + pattern.replace("\0", "\\\\x00")):
        ShutdownConfig(report_file=value)  # type: ignore[arg-type]


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize(("umask", "expected"), [(0o077, 0o600), (0o022, 0o644), (0o002, 0o664)])
def test_report_file_mode_follows_the_umask(tmp_path: Path, umask: int, expected: int) -> None:
    from test_report import fixed_report

    target = tmp_path / "report.json"
    previous = os.umask(umask)
    try:
        assert write_report_file(str(target), fixed_report())
    finally:
        os.umask(previous)
    assert target.stat().st_mode & 0o777 == expected


async def test_the_environment_names_the_report_file_without_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "env.json"
    monkeypatch.setenv("GRACESTOP_REPORT_FILE", str(target))
    async with ShutdownCoordinator(hooks=Hooks(), signals=()) as coord:
        assert coord.config.report_file is None
        coord.shutdown()
    assert coord.report is not None and read(target) == coord.report.to_dict()
    # An empty variable names no file; an explicit report_file wins over it.
    monkeypatch.setenv("GRACESTOP_REPORT_FILE", "")
    async with ShutdownCoordinator(hooks=Hooks(), signals=()) as coord:
        coord.shutdown()
    own = tmp_path / "own.json"
    monkeypatch.setenv("GRACESTOP_REPORT_FILE", str(tmp_path / "unused.json"))
    async with ShutdownCoordinator(hooks=Hooks(), signals=(), report_file=own) as coord:
        coord.shutdown()
    assert sorted(p.name for p in os.scandir(tmp_path)) == ["env.json", "own.json"]
