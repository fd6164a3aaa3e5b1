"""The ``console`` examples of docs/cli.md, run as written: output and status must match.

Blocks tagged ``yaml title="NAME"`` (or toml, json) are the files the commands read;
each ``console`` block is one ``$ [VAR=value ...] gracestop ...`` line and its output
(stdout, then stderr). A block with stderr output must exit with status 2, one
without with 0.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
FENCE = re.compile(r"^```(\w+)(?: title=\"([^\"]+)\")?\n(.*?)^```$", re.M | re.S)

pytestmark = pytest.mark.process


def blocks() -> tuple[dict[str, str], list[tuple[str, str]]]:
    files: dict[str, str] = {}
    sessions: list[tuple[str, str]] = []
    for lang, title, body in FENCE.findall(DOC.read_text()):
        if title:
            files[title] = body
        elif lang == "console":
            command, _, output = body.partition("\n")
            assert command.startswith("$ "), command
            sessions.append((command[2:], output))
    return files, sessions


FILES, SESSIONS = blocks()


def test_the_page_has_examples() -> None:
    assert {"orders.yaml", "app.toml", "typo.yaml"} <= set(FILES)
    assert len(SESSIONS) >= 8


@pytest.mark.parametrize(("command", "output"), SESSIONS, ids=[c for c, _ in SESSIONS])
def test_console_example(tmp_path: Path, command: str, output: str) -> None:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    words = shlex.split(command)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRACESTOP_")}
    env.pop("PYTHONWARNINGS", None)
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[0] == "gracestop"
    proc = subprocess.run(
        [sys.executable, "-m", "gracestop", *words[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert proc.stdout + proc.stderr == output
    assert proc.returncode == (2 if proc.stderr else 0)


def demo_example() -> list[str]:
    """The lines of the page's ``$ gracestop demo`` example output."""
    for lang, _, body in FENCE.findall(DOC.read_text()):
        if lang == "text" and body.startswith("$ gracestop demo\n"):
            return str(body).splitlines()[1:]
    raise AssertionError("docs/cli.md has no `$ gracestop demo` example")


def test_demo_example_matches_a_real_run() -> None:
    # Times and counts vary; the header, the timeline's columns, the zeros and the
    # verdict do not, so those lines of the page must be what the command prints.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRACESTOP_")}
    env.pop("PYTHONWARNINGS", None)
    env["COLUMNS"] = "80"
    proc = subprocess.run(
        [sys.executable, "-m", "gracestop", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    real, page = proc.stdout.splitlines(), demo_example()
    assert page[:3] == real[:3]
    columns = "  stage / hook    status   start    took  0s"
    assert [line for line in page if line.startswith(columns)]
    assert [line for line in real if line.startswith(columns)]
    for stable in ("      lost 0", page[-1]):
        assert stable in page
        assert stable in real
    assert (
        page[-1]
        == real[-1]
        == ("ok: no job lost, no request failed, shutdown ok, service exit status 0")
    )
    assert max(map(len, page)) <= 80
