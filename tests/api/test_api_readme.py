"""The README's feedback-export command, run as written against a served API."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from flask import Flask

from tests.support.api import API_KEY, serve_in_thread

README = Path(__file__).resolve().parents[2] / "README.md"


def _export_command() -> str:
    (line,) = [
        line
        for line in README.read_text().splitlines()
        if "/v1/admin/feedback.csv" in line and "curl" in line
    ]
    return line


def _run(command: str, cwd: Path, key: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BUZZWATCH_API_KEY": key}
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.integration
def test_the_readme_export_fails_on_a_refused_key_and_writes_nothing(app: Flask, tmp_path: Path) -> None:
    with serve_in_thread(app) as base_url:
        command = _export_command().replace("localhost:8080", base_url.removeprefix("http://"))
        refused = _run(command, tmp_path, "not-the-key")
        assert refused.returncode != 0
        assert not (tmp_path / "feedback.csv").exists()
        exported = _run(command, tmp_path, API_KEY)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "feedback.csv").read_text().startswith("text,label,predicted_label")
