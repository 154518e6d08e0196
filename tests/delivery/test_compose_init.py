"""The compose file's one-shot `pubsub-init` step, run for real: the ingest image's files against the
official Pub/Sub emulator, exactly the command and environment docker-compose.yml gives it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stack.emulator import PubSubEmulator
from tests.support.integration import server_fixture

from .dockerfiles import IMAGES
from .helpers import REPO_ROOT
from .layout import build_layout, run_in_layout
from .test_compose import compose

pytestmark = pytest.mark.integration


@server_fixture(scope="module")
def emulator():
    with PubSubEmulator() as running:
        yield running


def test_the_init_step_creates_the_topology_idempotently(
    emulator: PubSubEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from google.cloud import pubsub_v1

    config = json.loads(compose("config", "--format", "json").stdout)
    init = config["services"]["pubsub-init"]
    assert init["entrypoint"] == ["python", "-c"]
    (code,) = init["command"]
    environment = {key: str(value) for key, value in init["environment"].items() if value is not None}
    environment["PUBSUB_EMULATOR_HOST"] = emulator.endpoint  # the compose network name, here on loopback
    app = build_layout(next(image for image in IMAGES if image.name == "ingest"), tmp_path)
    for attempt in range(2):  # a restarted stack runs it again: it must succeed again
        result = run_in_layout(app, code, tmp_path, env=environment)
        assert result.returncode == 0, f"attempt {attempt}: {result.stderr[-3000:]}"

    project = environment["GOOGLE_CLOUD_PROJECT"]
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.endpoint)
    subscriber = pubsub_v1.SubscriberClient()
    try:
        push = subscriber.get_subscription(subscription=f"projects/{project}/subscriptions/tweets-worker")
        assert push.topic == f"projects/{project}/topics/tweets"
        assert push.push_config.push_endpoint == environment["PUBSUB_PUSH_ENDPOINT"]
        # no retry or dead-letter policy on the emulator's push subscription (it pushed no failed push again)
        assert not push.dead_letter_policy.dead_letter_topic and not push.retry_policy.maximum_backoff
        scored = subscriber.get_subscription(
            subscription=f"projects/{project}/subscriptions/tweets-scored-detector"
        )
        assert (
            scored.topic == f"projects/{project}/topics/tweets-scored"
            and not scored.push_config.push_endpoint
        )
    finally:
        subscriber.close()


def test_the_ingest_service_command_replays_the_mounted_data(emulator: PubSubEmulator, tmp_path: Path):
    config = json.loads(compose("config", "--format", "json").stdout)
    service = config["services"]["ingest"]
    (mount,) = service["volumes"]
    assert mount["source"] == str(REPO_ROOT / "data") and mount["read_only"]
    command = [part.replace(mount["target"], mount["source"]) for part in service["command"]]
    command[command.index("--speed") + 1] = "max"
    environment = {key: str(value) for key, value in service["environment"].items() if value is not None}
    environment["PUBSUB_EMULATOR_HOST"] = emulator.endpoint
    app = build_layout(next(image for image in IMAGES if image.name == "ingest"), tmp_path)
    init = config["services"]["pubsub-init"]
    init_env = {**environment, "PUBSUB_PUSH_ENDPOINT": init["environment"]["PUBSUB_PUSH_ENDPOINT"]}
    assert run_in_layout(app, init["command"][0], tmp_path, env=init_env).returncode == 0
    argv = ["buzzwatch", *command, "--limit", "25"]
    code = f"import runpy; sys.argv = {argv!r}; runpy.run_path('image_cli.py', run_name='__main__')"
    result = run_in_layout(app, code, tmp_path, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])["summary"]
    assert summary["published"] == 25 and summary["failed"] == 0, summary
