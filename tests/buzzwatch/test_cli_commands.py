"""`buzzwatch` finds its subcommands through entry points; a missing or broken one is named, not fatal."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from buzzwatch.cli import COMMANDS_GROUP, build_command_line, installed_commands, main
from tests.support.commands import assert_one_line, run_buzzwatch

REPO_ROOT = Path(__file__).resolve().parents[2]


def declared() -> dict[str, str]:
    """Subcommand -> `module:register`, as pyproject.toml declares them."""
    with open(REPO_ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]["entry-points"][COMMANDS_GROUP]


def entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=COMMANDS_GROUP)


def subcommands(parser: argparse.ArgumentParser) -> set[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def test_the_installed_entry_points_are_the_declared_ones() -> None:
    installed = {e.name: e.value for e in installed_commands()}
    assert installed == declared(), "stale package metadata: run pip install --no-deps -e . again"


def test_every_declared_subcommand_registers_and_each_component_adds_exactly_its_own() -> None:
    line = build_command_line()
    assert line.unavailable == {}
    assert subcommands(line.parser) == set(declared())
    for value in set(declared().values()):
        alone = build_command_line([entry("x", value)])
        assert alone.unavailable == {}
        assert subcommands(alone.parser) == {name for name, v in declared().items() if v == value}, value


def test_a_missing_component_leaves_help_and_the_others_working(capsys: pytest.CaptureFixture[str]) -> None:
    commands = [
        entry("replay", "worker.cli_replay:register"),
        entry("train", "no_such_component.cli:register"),
        entry("score", "no_such_component.cli:register"),
    ]
    with pytest.raises(SystemExit) as exited:
        main(["--help"], commands=commands)
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "replay" in out
    assert "unavailable here: score, train (no_such_component.cli:register: ModuleNotFoundError" in out
    assert main(["train", "--epochs", "3"], commands=commands) == 2
    err = capsys.readouterr().err
    assert err.startswith("buzzwatch train: unavailable here: no_such_component.cli:register: ")
    assert "No module named 'no_such_component'" in err


def test_a_broken_component_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One whose register() raises (it adds a subcommand another component has), one without register()."""
    (tmp_path / "clashing_component.py").write_text(
        "def register(subparsers):\n    subparsers.add_parser('worker')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    commands = [
        entry("worker", "worker.cli:register"),
        entry("clash", "clashing_component:register"),
        entry("nameless", "worker.cli:no_such_register"),
    ]
    line = build_command_line(commands)
    assert subcommands(line.parser) >= {"worker"}
    assert "ArgumentError" in line.unavailable["clash"]
    assert "AttributeError" in line.unavailable["nameless"]
    assert main(["clash"], commands=commands) == 2
    assert "buzzwatch clash: unavailable here: clashing_component:register: " in capsys.readouterr().err


def test_without_any_entry_point_help_says_to_install_the_project(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], commands=[]) == 2
    assert "install the project" in capsys.readouterr().out


def test_the_command_line_answers_help_through_the_installed_entry_points() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "buzzwatch.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in declared():
        assert f"    {name} " in done.stdout
    assert "unavailable" not in done.stdout


def test_ctrl_c_is_one_line_and_exit_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command that handles no signal itself (buzzwatch score) printed KeyboardInterrupt's traceback."""
    (tmp_path / "busy_component.py").write_text(
        "import signal\n"
        "def register(subparsers):\n"
        "    busy = subparsers.add_parser('busy')\n"
        "    busy.set_defaults(handler=lambda args: signal.raise_signal(signal.SIGINT))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code = main(["busy"], commands=[entry("busy", "busy_component:register")])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main() as KeyboardInterrupt (a traceback at a shell)")
    assert code == 130
    assert capsys.readouterr().err == "buzzwatch busy: interrupted\n"


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """`buzzwatch detect --owners | head -3` ended in a BrokenPipeError traceback; now as `cat` ends: no
    word, exit status 141 (128 + SIGPIPE), as a shell's pipefail sees it."""
    (tmp_path / "chatty_component.py").write_text(
        "def register(subparsers):\n"
        "    chatty = subparsers.add_parser('chatty')\n"
        "    chatty.set_defaults(handler=lambda args: [print('line', n) for n in range(200_000)] and 0)\n"
    )
    code = (
        "import sys; from importlib.metadata import EntryPoint; from buzzwatch.cli import main; "
        "sys.exit(main(['chatty'], commands=[EntryPoint('chatty', 'chatty_component:register', "
        "'buzzwatch.commands')]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)])}
    with subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout.readline() == b"line 0\n"
        process.stdout.close()
        _, err = process.communicate(timeout=60)
    assert err.decode() == ""
    assert process.returncode == 141


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("score", "--input", "{missing}", "--output", "{tmp}/out.csv"), "input file not found: {missing}"),
        (("evaluate", "--data", "{missing}"), "input file not found: {missing}"),
        (("train", "--extra-data", "{missing}"), "extra data file not found: {missing}"),
        (
            ("replay", "--input", "{missing}", "--alerts-out", "{tmp}/a.jsonl", "--oracle"),
            "input file not found: {missing}",
        ),
        (("detect", "--move", "1"), "--move GROUPS --to INSTANCE: give both"),
    ],
    ids=["score", "evaluate", "train", "replay", "detect-move"],
)
def test_a_commands_error_is_the_one_line_every_command_gives(
    tmp_path: Path, arguments: tuple[str, ...], message: str
) -> None:
    """`buzzwatch COMMAND: ...` through buzzwatch.cli.main, as a SettingsError is (was `error: ...` here)."""
    names = {"missing": str(tmp_path / "no.csv"), "tmp": str(tmp_path)}
    env = {**os.environ, "BUZZWATCH_VAR_DIR": str(tmp_path / "var")}
    result = run_buzzwatch(env, *(argument.format(**names) for argument in arguments))
    line = assert_one_line(result, arguments[0])
    assert line == f"buzzwatch {arguments[0]}: {message.format(**names)}"
