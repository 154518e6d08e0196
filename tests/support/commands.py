"""Running `buzzwatch` as a person types it, and the one-line error a command must end with."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from stack.ports import free_port


def run_buzzwatch(env: Mapping[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """`buzzwatch ARGUMENTS` in a subprocess with `env`, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "buzzwatch.cli", *arguments],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], command: str) -> str:
    """Exit status 2 and exactly one stderr line, `buzzwatch COMMAND: ...`, no traceback; returns it."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"buzzwatch {command}: "), lines[0]
    return lines[0]


def assert_a_missing_model_is_refused(tmp_path: Path, *arguments: str, **env: str) -> None:
    """`buzzwatch ARGUMENTS` with BUZZWATCH_MODEL_URI naming no artifact: the one line that says so."""
    missing = tmp_path / "no-model"
    result = run_buzzwatch(
        {
            **os.environ,
            "BUZZWATCH_MODEL_URI": str(missing),
            "BUZZWATCH_VAR_DIR": str(tmp_path / "var"),
            "PORT": str(free_port()),
            **env,
        },
        *arguments,
    )
    assert assert_one_line(result, arguments[0]) == (
        f"buzzwatch {arguments[0]}: cannot load the model BUZZWATCH_MODEL_URI={missing}: "
        f"model path does not exist: {missing}"
    )
