"""Pub/Sub adapter configuration: subscription requests (push, OIDC, dead letter, retry) and settings."""

from __future__ import annotations

import pytest

from buzzwatch.pubsub import (
    PublisherSettings,
    StreamTopology,
    SubscriptionSpec,
    subscription_path,
    topic_path,
)
from buzzwatch.settings import CommonSettings, SettingsError


def test_a_push_subscription_with_oidc_dead_letter_and_retry_policy():
    spec = SubscriptionSpec(
        name="tweets-worker",
        topic="tweets",
        push_endpoint="https://worker-abc.a.run.app/pubsub/push",
        oidc_service_account="pubsub-push@proj.iam.gserviceaccount.com",
        dead_letter_topic="tweets-dead-letter",
        max_delivery_attempts=7,
        retry_min_backoff_s=0.5,
    )
    request = spec.request("proj")
    assert request["name"] == "projects/proj/subscriptions/tweets-worker"
    assert request["topic"] == "projects/proj/topics/tweets"
    assert request["push_config"] == {
        "push_endpoint": "https://worker-abc.a.run.app/pubsub/push",
        "oidc_token": {
            "service_account_email": "pubsub-push@proj.iam.gserviceaccount.com",
            "audience": "https://worker-abc.a.run.app/pubsub/push",
        },
    }
    assert request["dead_letter_policy"] == {
        "dead_letter_topic": "projects/proj/topics/tweets-dead-letter",
        "max_delivery_attempts": 7,
    }
    assert request["retry_policy"]["minimum_backoff"].nanos == 500_000_000


def test_a_pull_subscription_has_an_empty_push_config_and_no_dead_letter_unless_asked():
    request = SubscriptionSpec(name="keep", topic="dead").request("p")
    assert request["push_config"] == {}
    assert "dead_letter_policy" not in request


def test_full_paths_pass_through():
    assert topic_path("p", "projects/q/topics/t") == "projects/q/topics/t"
    assert subscription_path("p", "s") == "projects/p/subscriptions/s"


def test_publisher_settings_from_env_and_block_flow_control():
    settings = PublisherSettings.from_env(
        {"PUBSUB_PUBLISH_MAX_MESSAGES": "50", "PUBSUB_PUBLISH_FLOW_MESSAGES": "9"}
    )
    assert settings.batch_settings().max_messages == 50
    assert settings.publisher_options().flow_control.message_limit == 9
    assert settings.publisher_options().flow_control.limit_exceeded_behavior.value == "block"
    with pytest.raises(SettingsError, match="PUBSUB_PUBLISH_MAX_ATTEMPTS"):
        PublisherSettings.from_env({"PUBSUB_PUBLISH_MAX_ATTEMPTS": "many"})


def test_topology_names_come_from_settings():
    env = {
        "PUBSUB_TWEETS_TOPIC": "twt",
        "PUBSUB_TWEETS_SUBSCRIPTION": "twt-push",
        "GOOGLE_CLOUD_PROJECT": "prod",
    }
    topology = StreamTopology.from_settings(CommonSettings.from_env(env))
    assert (topology.project, topology.tweets_topic, topology.tweets_subscription) == (
        "prod",
        "twt",
        "twt-push",
    )
    assert topology.scored_subscription == "tweets-scored-detector"
