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


def test_a_missing_model_path_is_one_line_before_gunicorn_starts(tmp_path: Path) -> None:
    """It was a boot-failure traceback in each gunicorn worker, then 'Worker failed to boot.'"""
    assert_a_missing_model_is_refused(tmp_path, "api", "--host", "127.0.0.1")


@pytest.mark.parametrize(
    ("name", "value"), [("BUZZWATCH_DETECTION_AUTH", "cloudrun"), ("LOG_LEVEL", "verbose")]
)
def test_a_malformed_ui_setting_is_one_line_before_streamlit_starts(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt BUZZWATCH_DETECTION_AUTH silently called the detection feed without its ID token (401s)."""
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "execv", lambda *args: pytest.fail("streamlit started with a bad setting"))
    assert main(["ui", "--port", "8502"]) == 2
    err = capsys.readouterr().err
    assert f"{name} must be one of" in err and repr(value) in err and "Traceback" not in err
