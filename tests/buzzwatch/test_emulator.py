"""The emulator manager: a clear error without the jar, one process that starts, restarts and stops."""

from __future__ import annotations

import pytest

from buzzwatch.emulator import EmulatorError, PubSubEmulator, find_emulator_jar, port_is_open


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
