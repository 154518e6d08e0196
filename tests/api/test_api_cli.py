"""`buzzwatch ui` and `buzzwatch api` refuse what cannot work before their server starts, in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from buzzwatch.cli import build_parser, main
from tests.support.commands import assert_a_missing_model_is_refused


@pytest.mark.parametrize("port", ["99999", "0", "http"])
def test_a_bad_ui_port_is_one_clear_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Streamlit printed a bind traceback for these."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["ui", "--port", port])
    assert exited.value.code == 2
    assert f"argument --port: '{port}' is not a port number 1-65535" in capsys.readouterr().err
    assert build_parser().parse_args(["ui", "--port", "8502"]).port == 8502


@pytest.mark.parametrize(("option", "value"), [("--threads", "0"), ("--threads", "-1"), ("--workers", "two")])
def test_a_bad_worker_or_thread_count_is_one_clear_error(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 was taken as 'not given' (the default, silently); -1 reached gunicorn, which exited 1 saying only
    'Error: Value must be positive: -1'."""
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["api", option, value])
    assert raised.value.code == 2
    assert f"argument {option}: '{value}' is not a positive whole number" in capsys.readouterr().err
    assert build_parser().parse_args(["api", option, "3"]).__dict__[option[2:]] == 3


def test_a_missing_model_path_is_one_line_before_gunicorn_starts(tmp_path: Path) -> None:
    """It was a boot-failure traceback in each gunicorn worker, then 'Worker failed to boot.'"""
    assert_a_missing_model_is_refused(tmp_path, "api", "--host", "127.0.0.1")


@pytest.mark.parametrize(
    ("command", "name", "value", "message"),
    [
        ("api", "LOG_LEVEL", "verbose", "must be one of"),
        ("api", "BUZZWATCH_API_MAX_BATCH", "0", "must be at least 1"),  # was a 400 for every batch
        # Pruned every row at once: feedback on a prediction was a 404 once its prediction was written.
        ("api", "BUZZWATCH_PREDICTION_LOG_MAX_ROWS", "0", "must be at least 1"),
        ("api", "BUZZWATCH_DRIFT_MIN_WRONG_SHARE", "30", "must be between 0 and 1"),  # a share, not a percent
    ],
)
def test_a_malformed_setting_is_one_line_before_the_server_starts(
    command: str,
    name: str,
    value: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "execv", lambda *args: pytest.fail("the server started with a bad setting"))
    assert main([command, "--port", "8502"]) == 2
    err = capsys.readouterr().err
    assert f"{name} {message}" in err and repr(value) in err and "Traceback" not in err
