"""With no emulator and no Google credentials, or an emulator that does not answer, every command that
talks to Pub/Sub says so in one line.

The commands run as a new user would run them, in a subprocess whose environment holds no credentials
(google.auth reads some of its switches once, at import, so they cannot be changed in this process) and
cannot reach Google: no metadata-server check, and its addresses pointed at a closed loopback port.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from buzzwatch.settings import REPO_ROOT
from stack.ports import free_port
from tests.support.commands import assert_one_line, run_buzzwatch

REPLAY_FILE = REPO_ROOT / "data" / "airline_us" / "train.csv"

CREDENTIAL_VARIABLES = (
    "PUBSUB_EMULATOR_HOST",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_CONFIG",
    "GOOGLE_CLOUD_PROJECT",
)


def no_credentials_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment less any Pub/Sub emulator or Google credentials, offline for google.auth."""
    env = {name: value for name, value in os.environ.items() if name not in CREDENTIAL_VARIABLES}
    env.update(
        HOME=str(home),  # no ~/.config/gcloud/application_default_credentials.json
        CLOUDSDK_CONFIG=str(home / "gcloud"),
        NO_GCE_CHECK="true",  # google-auth 2.x compares the lower-case value
        GCE_METADATA_HOST="127.0.0.1:9",
        GCE_METADATA_IP="127.0.0.1:9",
        BUZZWATCH_VAR_DIR=str(home / "var"),
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def assert_one_line_naming_both_ways_out(result: subprocess.CompletedProcess[str], command: str) -> str:
    """The missing-credentials line: both the emulator and Google's credentials, each with how."""
    line = assert_one_line(result, command)
    assert line.startswith(f"buzzwatch {command}: no Pub/Sub to talk to"), line
    for way_out in ("PUBSUB_EMULATOR_HOST=", "`buzzwatch emulator`", "Application Default Credentials"):
        assert way_out in line
    assert "GOOGLE_APPLICATION_CREDENTIALS" in line
    return line


COMMANDS = pytest.mark.parametrize(
    "arguments",
    [
        ("ingest", "--source", "replay", "--input", str(REPLAY_FILE)),
        ("worker", "--mode", "pull"),
        ("worker", "--mode", "push", "--host", "127.0.0.1"),  # fails before the server starts
        ("detect",),  # fails before its store and health server start
    ],
    ids=["ingest", "worker-pull", "worker-push", "detect"],
)


@COMMANDS
def test_no_emulator_and_no_credentials_is_one_line_and_exit_2(
    tmp_path: Path, arguments: tuple[str, ...]
) -> None:
    env = no_credentials_env(tmp_path, PORT=str(free_port()))
    result = run_buzzwatch(env, *arguments)
    assert_one_line_naming_both_ways_out(result, arguments[0])
    assert not (tmp_path / "var" / "buzzwatch.db").exists()  # detection opened no store


def test_a_credentials_file_that_is_not_there_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "key.json"
    env = no_credentials_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(missing))
    result = run_buzzwatch(env, "ingest", "--source", "replay", "--input", str(REPLAY_FILE))
    assert str(missing) in assert_one_line_naming_both_ways_out(result, "ingest")


@pytest.mark.parametrize(
    "arguments",
    [
        ("ingest", "--source", "replay", "--input", str(REPLAY_FILE)),
        ("worker", "--mode", "pull"),
        ("worker", "--mode", "push", "--host", "127.0.0.1"),  # not a crash loop in each server process
        ("detect",),  # was: its store and health server up, then a pull retried every minute, for ever
    ],
    ids=["ingest", "worker-pull", "worker-push", "detect"],
)
def test_an_emulator_that_is_not_running_is_one_line_after_the_start_timeout(
    tmp_path: Path, arguments: tuple[str, ...]
) -> None:
    """The library alone would wait 600 s in silence, then print a RetryError traceback."""
    assert_the_emulator_is_not_answering(tmp_path, arguments)


def test_detection_with_partition_groups_and_no_emulator_is_one_line_too(tmp_path: Path) -> None:
    """Was: a RetryError traceback after 30 s, whatever PUBSUB_START_TIMEOUT_S said."""
    assert_the_emulator_is_not_answering(tmp_path, ("detect",), DETECTION_GROUPS="all")


def assert_the_emulator_is_not_answering(tmp_path: Path, arguments: tuple[str, ...], **extra: str) -> None:
    """`buzzwatch ARGUMENTS` with PUBSUB_EMULATOR_HOST at a closed port ends in the one line within 2 s."""
    closed = free_port()  # nothing listens there
    env = no_credentials_env(
        tmp_path,
        PUBSUB_EMULATOR_HOST=f"127.0.0.1:{closed}",
        PUBSUB_START_TIMEOUT_S="2",
        PORT=str(free_port()),
        **extra,
    )
    line = assert_one_line(run_buzzwatch(env, *arguments), arguments[0])
    assert f"emulator at PUBSUB_EMULATOR_HOST=127.0.0.1:{closed} did not answer within 2 s" in line
    assert f"`buzzwatch emulator --port {closed}`" in line
