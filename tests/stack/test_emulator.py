"""The emulator launcher: a clear error without the jar, one process that starts, restarts and stops; and
`buzzwatch emulator`, the command around it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from stack.emulator import EmulatorError, PubSubEmulator, find_emulator_jar
from stack.ports import port_is_open


def test_a_missing_jar_gives_a_message_that_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("PUBSUB_EMULATOR_JAR", raising=False)
    with pytest.raises(EmulatorError, match="google-cloud-cli-pubsub-emulator"):
        find_emulator_jar(str(tmp_path / "nothing-*.jar"))
    monkeypatch.setenv("PUBSUB_EMULATOR_JAR", str(tmp_path / "absent.jar"))
    with pytest.raises(EmulatorError, match="does not point to a file"):
        find_emulator_jar()


def test_the_command_is_one_small_java_process(tmp_path):
    jar = tmp_path / "cloud-pubsub-emulator-0.0.0-all.jar"
    jar.write_bytes(b"")
    emulator = PubSubEmulator(port=18001, jar=jar, java="/usr/bin/java")
    assert emulator.command() == [
        "/usr/bin/java",
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-jar",
        str(jar),
        "--host=127.0.0.1",
        "--port=18001",
    ]
    assert emulator.env()["PUBSUB_EMULATOR_HOST"] == "127.0.0.1:18001"


@pytest.mark.integration
def test_start_restart_and_stop_on_the_same_port(private_emulator):
    port, first_pid = private_emulator.port, private_emulator.pid
    assert port_is_open("127.0.0.1", port)
    private_emulator.restart()
    assert private_emulator.port == port
    assert private_emulator.pid != first_pid
    assert port_is_open("127.0.0.1", port)
    private_emulator.stop()
    assert not private_emulator.is_running()
    assert not port_is_open("127.0.0.1", port)


@pytest.mark.integration
def test_emulator_command_creates_the_topology_and_stops_on_sigterm(tmp_path):
    env = dict(os.environ, BUZZWATCH_VAR_DIR=str(tmp_path), LOG_LEVEL="WARNING")
    env.pop("PUBSUB_EMULATOR_HOST", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "buzzwatch.cli",
            "emulator",
            "--port",
            "0",
            "--push-endpoint",
            "http://127.0.0.1:18498/push",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        announcement = None
        for line in process.stdout:
            if line.startswith('{"emulator"'):
                announcement = json.loads(line)
                break
        assert announcement is not None, process.stderr.read()
        host, port = announcement["emulator"].split(":")
        assert port_is_open(host, int(port))
        assert set(announcement["created"]) == {
            "tweets_topic", "scored_topic", "dead_letter_topic",
            "tweets_subscription", "scored_subscription", "dead_letter_subscription",
        }  # fmt: skip
        assert announcement["export"].startswith(f"export PUBSUB_EMULATOR_HOST={host}:{port}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0
    assert not port_is_open(host, int(port))
