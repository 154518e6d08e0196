"""Poison messages through the real emulator: each bad one dead-lettered (or skipped) alone, never retried.

A lone surrogate in a tweet's text, a document nested past Python's recursion limit, bytes that are not
UTF-8, an integer of more digits than Python converts: each must be set aside once while every valid
neighbour is scored once. Before, the surrogate made the push answer 500 (Pub/Sub redelivered it, with the
tweets of its scoring group), a deeply nested scored message stopped the detection service, and the long
integer failed a whole pull batch.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from buzzwatch.pubsub import Publisher, StreamTopology
from buzzwatch.schema import ScoredTweet
from buzzwatch.settings import CommonSettings
from stack.emulator import PubSubEmulator
from stack.ports import free_port
from tests.support.polling import wait_for
from tests.support.pubsub import pull_until
from tests.support.stack import buzzwatch, stack_env, start_push_worker, stop, stream_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SURROGATE = (
    b'{"id":"poison-surrogate","created_at":"2015-02-20T06:00:30Z",'
    b'"text":"@acme bad \\ud800 tweet","brands":["acme"]}'
)
DEEP = b"[" * 30_000 + b"]" * 30_000  # under the 64 KiB message limit, past the recursion limit
NOT_UTF8 = b'{"id":"poison-bytes","text":"\xff\xfe"}'
# json.loads raises a bare ValueError past 4,300 digits: it failed the whole pull batch, neighbours included.
HUGE_NUMBER = (
    b'{"id":' + b"9" * 5000 + b',"created_at":"2015-02-20T06:00:30Z","text":"@acme x","brands":["acme"]}'
)
POISON = (SURROGATE, DEEP, NOT_UTF8, HUGE_NUMBER)


def _publish_mixed(
    settings: CommonSettings, topic: str, valid: list[bytes], poison: tuple[bytes, ...]
) -> None:
    """Valid messages with the poison ones spread among them, published at once (pushed concurrently)."""
    spacing = len(valid) // (len(poison) + 1)
    with Publisher(settings.gcp_project, topic) as publisher:
        for index, data in enumerate(valid):
            publisher.publish(data, brand="acme")
            if index % spacing == spacing - 1 and index // spacing < len(poison):
                publisher.publish(poison[index // spacing], brand="acme")


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_push_dead_letters_each_poison_message_alone_and_scores_its_neighbours_once(
    private_emulator: PubSubEmulator, tmp_path: Path
) -> None:
    env = stack_env(tmp_path, private_emulator.env(), WORKER_THREADS="16")
    settings = CommonSettings.from_env(env)
    topology = StreamTopology.from_settings(settings)
    events = stream_events(calm_minutes=200, buzz_minutes=0, tail_minutes=0)  # 400 valid tweets
    worker, port = start_push_worker(env, tmp_path / "worker.log")
    try:
        topology.ensure(push_endpoint=f"http://127.0.0.1:{port}/pubsub/push")
        _publish_mixed(settings, settings.tweets_topic, [event.to_json() for event in events], POISON)
        # Posted to the route directly: an envelope nested 100,000 levels deep, and one whose attribute holds
        # a lone surrogate (Pub/Sub refuses to publish that as it is, so its dead letter must escape it).
        nested = json.dumps({"message": {"data": ""}})[:-1] + "[" * 100_000 + "]" * 100_000 + "}"
        forged = {
            "message": {"data": "bm90IGEgdHdlZXQ=", "attributes": {"brand": "\ud800"}, "messageId": "f1"}
        }
        for body in (nested.encode(), json.dumps(forged).encode()):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/pubsub/push",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 204

        scored = pull_until(
            settings.gcp_project, topology.scored_subscription, len(events), 90, then_after_s=2
        )
        ids = Counter(ScoredTweet.from_dict(json.loads(m.data)).tweet.id for m in scored)
        assert set(ids) == {event.id for event in events}
        assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1][:10]

        dead = pull_until(
            settings.gcp_project, topology.dead_letter_subscription, len(POISON) + 2, 30, then_after_s=2
        )
        assert sorted(m.data for m in dead if m.data in POISON) == sorted(POISON)
        assert len(dead) == len(POISON) + 2  # each poison message once, and the two posted envelopes
        assert [m.attributes["brand"] for m in dead if m.data == b"not a tweet"] == ["\\ud800"]
        assert all(m.attributes["buzzwatch_stage"] == "worker" for m in dead)  # by the worker, first time
        errors = " | ".join(m.attributes["buzzwatch_error"] for m in dead)
        assert "not valid Unicode" in errors and "nested too deeply" in errors, errors
        assert "4300 digits" in errors, errors

        stats = _get_json(f"http://127.0.0.1:{port}/stats")
        assert stats["scored"] == len(events)
        assert stats["dead_lettered_malformed"] == len(POISON) + 2
    finally:
        stop([worker])
    assert "transient failure" not in (tmp_path / "worker.log").read_text()


def test_pull_scoring_and_detection_survive_poison_messages(
    private_emulator: PubSubEmulator, tmp_path: Path
) -> None:
    """Pull mode dead-letters poison tweets; the detection consumer skips poison scored messages, goes on."""
    health_port = free_port()
    env = stack_env(tmp_path, private_emulator.env(), PORT=str(health_port))
    settings = CommonSettings.from_env(env)
    topology = StreamTopology.from_settings(settings)
    topology.ensure()
    events = stream_events(calm_minutes=100, buzz_minutes=0, tail_minutes=0)  # 200 valid tweets
    processes = [
        buzzwatch("worker", "--mode", "pull", env=env, log_path=tmp_path / "pull.log"),
        buzzwatch("detect", env=env, log_path=tmp_path / "det.log"),
    ]
    try:
        _publish_mixed(settings, settings.tweets_topic, [event.to_json() for event in events], POISON)
        # Poison on the scored topic itself: the same ones, and a scored tweet with a lone surrogate.
        surrogate_scored = json.dumps(
            {
                "id": "poison-scored",
                "created_at": "2015-02-20T06:00:30Z",
                "text": "@acme bad \udfff tweet",
                "brands": ["acme"],
                "label": "negative",
                "probabilities": {"negative": 1.0},
                "model_version": "x",
            }
        ).encode()
        with Publisher(settings.gcp_project, settings.scored_topic) as publisher:
            for data in (*POISON, surrogate_scored):
                publisher.publish(data)

        def totals() -> dict:
            try:
                return _get_json(f"http://127.0.0.1:{health_port}/healthz")
            except OSError:
                return {}

        wait_for(
            lambda: (
                totals().get("counted", 0) >= len(events) and totals().get("malformed", 0) >= len(POISON) + 1
            ),
            90,
            "every valid tweet counted and the scored poison skipped",
            processes[1],
            tmp_path / "det.log",
        )
        time.sleep(1)
        assert (totals()["counted"], totals()["malformed"]) == (len(events), len(POISON) + 1)
        dead = pull_until(
            settings.gcp_project, topology.dead_letter_subscription, len(POISON), 30, then_after_s=2
        )
        assert sorted(m.data for m in dead) == sorted(POISON)
        assert all(process.poll() is None for process in processes)
    finally:
        stop(processes)
