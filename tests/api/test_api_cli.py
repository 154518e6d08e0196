"""`buzzwatch ui` and `buzzwatch api` refuse what cannot work before their server starts, in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import gunicorn_options
from api.server import ApiServer
from buzzwatch.cli import build_parser, main
from buzzwatch.settings import DEFAULT_API_URL
from streamlit_app.settings import UiSettings
from tests.support.commands import assert_a_missing_model_is_refused


@pytest.mark.parametrize("port", ["99999", "0", "http"])
def test_a_bad_ui_port_is_one_clear_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Streamlit printed a bind traceback for these."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["ui", "--port", port])
    assert exited.value.code == 2
    assert f"argument --port: '{port}' is not a port number 1-65535" in capsys.readouterr().err
    assert build_parser().parse_args(["ui", "--port", "8502"]).port == 8502


@pytest.mark.parametrize("url", ["localhost:8080", "127.0.0.1:8080", "http://", "ftp://127.0.0.1:8080"])
def test_an_api_url_that_is_no_http_address_is_one_clear_error(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app started, and each page said the API at 'localhost:8080' "cannot be reached: InvalidSchema"."""
    message = f"argument --api-url: '{url}' is not an http(s) address such as http://127.0.0.1:8080"
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["ui", "--api-url", url])
    assert exited.value.code == 2 and message in capsys.readouterr().err
    monkeypatch.setenv("BUZZWATCH_API_URL", url)  # the option's default
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["ui"])
    assert exited.value.code == 2 and message in capsys.readouterr().err
    assert build_parser().parse_args(["ui", "--api-url", "https://api.example.com/"]).api_url == (
        "https://api.example.com"
    )


def test_ui_and_the_app_default_to_the_one_api_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """The address was written in api/cli.py and in streamlit_app/settings.py: one could change alone."""
    monkeypatch.delenv("BUZZWATCH_API_URL", raising=False)
    assert build_parser().parse_args(["ui"]).api_url == UiSettings.from_env({}).api_url == DEFAULT_API_URL


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
    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "1")  # what `buzzwatch api` sets: gone again after the test
    monkeypatch.setattr(ApiServer, "run", lambda self: pytest.fail("the server started with a bad setting"))
    assert main([command, "--port", "8502"]) == 2
    err = capsys.readouterr().err
    assert f"{name} {message}" in err and repr(value) in err and "Traceback" not in err


# `buzzwatch api` up to where gunicorn forks its workers, then one fork whose child exits as a worker does
# (interpreter finalisation, then the libraries' exit handlers); the parent gives it 20 s.
FORK_WHERE_GUNICORN_DOES = """
import os, signal, sys, time
from api.cli import gunicorn_options
from api.server import ApiServer
from buzzwatch.cli import main

def fork_a_worker_that_exits(server):
    worker = os.fork()
    if worker == 0:
        sys.exit(0)
    deadline = time.monotonic() + 20
    while not os.waitpid(worker, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(worker, signal.SIGKILL)
            sys.exit("the forked worker hung at its exit")
        time.sleep(0.05)

ApiServer.run = fork_a_worker_that_exits
sys.exit(main(["api", "--port", "8502"]))
"""


def test_a_worker_forked_after_the_checks_exits(tmp_path: Path) -> None:
    """ONNX Runtime, imported by the model check, ran its telemetry uploader's thread in the master: a worker
    forked beside it hung at its exit (waiting on that thread), until gunicorn killed it 20 s later."""
    result = subprocess.run(
        [sys.executable, "-c", FORK_WHERE_GUNICORN_DOES],
        env={**os.environ, "BUZZWATCH_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_gunicorn_reads_its_config_then_gunicorn_cmd_args_then_the_command_s_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The order the `gunicorn` command, which `buzzwatch api` exec'd until 2026-12-06, applied them in."""
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--threads 5 --timeout 7")
    config = ApiServer(gunicorn_options("127.0.0.1", 9123, workers=3, threads=2)).cfg
    assert (config.bind, config.workers, config.threads, config.timeout) == (["127.0.0.1:9123"], 3, 2, 7)
    assert config.worker_class_str == "api.gunicorn_worker.JsonErrorWorker"
    assert config.keepalive == 75 and not config.preload_app
    assert config.graceful_timeout < 10  # Cloud Run's SIGKILL comes 10 s after its SIGTERM
    assert config.control_socket_disable  # no socket at a path every server on the machine shares
    monkeypatch.delenv("GUNICORN_CMD_ARGS")
    assert ApiServer(gunicorn_options("127.0.0.1", 9123)).cfg.threads == 4  # the config's default
