"""The worker image's file tree serves a real Pub/Sub push: scored with the shipped champion and reason
model, published to the scored topic of the real emulator; a malformed envelope goes to the dead letter."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from stack.emulator import PubSubEmulator
from stack.ports import free_port
from tests.support.integration import server_fixture

from .dockerfiles import IMAGES
from .layout import build_layout, run_in_layout, start_in_layout
from .test_compose import compose

pytestmark = pytest.mark.integration

# Runs inside the worker image's tree: topology, the app, one good and one malformed push, then a pull.
SCRIPT = """
import base64, json, os
from buzzwatch.pubsub import StreamTopology, pull_messages
from buzzwatch.schema import TweetEvent
from buzzwatch.settings import CommonSettings
from worker.app import create_app

settings = CommonSettings.from_env()
topology = StreamTopology.from_settings(settings)
topology.ensure()
client = create_app().test_client()
tweet = TweetEvent.from_dict({"id": "42", "created_at": "2015-02-24T11:35:52Z", "brands": ["united"],
    "text": "@united lost my bag again and nobody at the desk cares. worst airline"})
envelope = {"message": {"data": base64.b64encode(tweet.to_json()).decode(), "messageId": "m1",
    "attributes": {"brand": "united"}}, "subscription": "projects/p/subscriptions/tweets-worker"}
good = client.post("/pubsub/push", json=envelope)
bad = client.post("/pubsub/push", data=b"not an envelope", content_type="application/json")
scored = pull_messages(settings.gcp_project, topology.scored_subscription, timeout_s=10)
dead = pull_messages(settings.gcp_project, topology.dead_letter_subscription, timeout_s=10)
print(json.dumps({"ready": client.get("/readyz").get_json(), "good": good.status_code, "bad": bad.status_code,
    "scored": [json.loads(m.data) for m in scored], "dead": len(dead)}))
"""


@server_fixture(scope="module")
def emulator():
    with PubSubEmulator() as running:
        yield running


def test_the_worker_image_scores_a_push_and_dead_letters_garbage(emulator: PubSubEmulator, tmp_path: Path):
    app = build_layout(next(image for image in IMAGES if image.name == "worker"), tmp_path)
    environment = {**emulator.env(), "GOOGLE_CLOUD_PROJECT": f"p{uuid.uuid4().hex[:8]}"}
    result = run_in_layout(app, SCRIPT, tmp_path, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["ready"]["model_version"], outcome
    assert (outcome["good"], outcome["bad"]) == (204, 204)
    (scored,) = outcome["scored"]
    assert scored["id"] == "42" and scored["label"] in {"negative", "neutral", "positive"}
    assert scored["label"] != "negative" or scored["negative_reason"], "the reason model ships in the image"
    assert outcome["dead"] == 1


def test_the_detection_role_starts_from_the_compose_command_and_stops_on_sigterm(
    emulator: PubSubEmulator, tmp_path: Path
):
    config = json.loads(compose("config", "--format", "json").stdout)
    command = config["services"]["detection"]["command"]
    assert command[:2] == ["python", "image_cli.py"]
    app = build_layout(next(image for image in IMAGES if image.name == "worker"), tmp_path)
    port = free_port()
    argv = ["buzzwatch", *command[2:]]
    code = f"import runpy; sys.argv = {argv!r}; runpy.run_path('image_cli.py', run_name='__main__')"
    environment = {**emulator.env(), "GOOGLE_CLOUD_PROJECT": f"p{uuid.uuid4().hex[:8]}", "PORT": str(port)}
    log_path = tmp_path / "detection.log"
    process = start_in_layout(app, code, tmp_path, log_path, env=environment)
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    health = json.loads(response.read())
                    break
            except OSError:
                time.sleep(0.2)
        assert health is not None and health["status"] == "ok", log_path.read_text()[-3000:]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, log_path.read_text()[-3000:]
