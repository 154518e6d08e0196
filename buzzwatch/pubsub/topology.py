"""Names and idempotent creation of the stream's topics and subscriptions.

`ensure_topic` / `ensure_subscription` create what is missing and bring an existing subscription's push
endpoint, dead-letter and retry policies in line with the request (safe to call at every start-up, which
the emulator needs: a restart loses everything). `StreamTopology` is the one place that says what the
BuzzWatch subscriptions look like; each entry point builds it once from its `CommonSettings`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry, if_exception_type
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2, field_mask_pb2

from buzzwatch.pubsub.clients import PubSubUnreachableError, publisher_client, subscriber_client
from buzzwatch.settings import DEFAULT_PUBSUB_START_TIMEOUT_S, CommonSettings

log = logging.getLogger("buzzwatch.pubsub")


def until_answered(timeout_s: float) -> dict[str, Any]:
    """Per-call options: retry an unavailable service for `timeout_s` in all, then raise RetryError."""
    retry = Retry(
        predicate=if_exception_type(api_exceptions.ServiceUnavailable),
        initial=0.25,
        maximum=4.0,
        multiplier=2.0,
        timeout=timeout_s,
    )
    return {"retry": retry, "timeout": timeout_s}


def topic_path(project: str, topic: str) -> str:
    """projects/P/topics/T (a full path is returned unchanged)."""
    return topic if topic.startswith("projects/") else f"projects/{project}/topics/{topic}"


def subscription_path(project: str, subscription: str) -> str:
    """projects/P/subscriptions/S (a full path is returned unchanged)."""
    if subscription.startswith("projects/"):
        return subscription
    return f"projects/{project}/subscriptions/{subscription}"


def ensure_topic(
    project: str,
    topic: str,
    client: pubsub_v1.PublisherClient | None = None,
    timeout_s: float = DEFAULT_PUBSUB_START_TIMEOUT_S,
) -> str:
    """Create the topic unless it exists (waiting at most `timeout_s` for Pub/Sub); returns its path."""
    path = topic_path(project, topic)
    client = client or publisher_client()
    try:
        client.create_topic(request={"name": path}, **until_answered(timeout_s))
        log.info("created topic", extra={"topic": path})
    except api_exceptions.AlreadyExists:
        pass
    return path


def _seconds(value: float) -> duration_pb2.Duration:
    whole = int(value)
    return duration_pb2.Duration(seconds=whole, nanos=round((value - whole) * 1e9))


@dataclass(frozen=True)
class SubscriptionSpec:
    """What a subscription should look like; `push_endpoint=None` means a pull subscription.

    `oidc_service_account` (and optionally `oidc_audience`) make Pub/Sub sign each push with an OIDC token,
    as Cloud Run requires in production; the emulator sends no token. `filter` (set at creation only, as
    Pub/Sub allows) keeps only matching messages, e.g. one brand partition's (`buzzwatch.partitions`); the
    emulator stores it but delivers every message, so consumers check the attributes themselves too.
    """

    name: str
    topic: str
    push_endpoint: str | None = None
    oidc_service_account: str | None = None
    oidc_audience: str | None = None
    dead_letter_topic: str | None = None
    max_delivery_attempts: int = 5
    ack_deadline_s: int = 60
    retry_min_backoff_s: float = 1.0
    retry_max_backoff_s: float = 60.0
    filter: str = ""
    # The retry and dead-letter policies. The emulator (0.8.20) never pushes again a message whose push
    # failed (its endpoint down) on a subscription with either: the tweets published while the push worker
    # was down were lost (`tests/worker/test_stream_push.py`). Its push subscriptions go without them.
    policies: bool = True

    def request(self, project: str) -> dict[str, Any]:
        """The create_subscription request."""
        body: dict[str, Any] = {
            "name": subscription_path(project, self.name),
            "topic": topic_path(project, self.topic),
            "ack_deadline_seconds": self.ack_deadline_s,
            "push_config": self.push_config(),
        }
        if self.policies:
            body["retry_policy"] = {
                "minimum_backoff": _seconds(self.retry_min_backoff_s),
                "maximum_backoff": _seconds(self.retry_max_backoff_s),
            }
        if self.filter:
            body["filter"] = self.filter
        if self.dead_letter_topic and self.policies:
            body["dead_letter_policy"] = {
                "dead_letter_topic": topic_path(project, self.dead_letter_topic),
                "max_delivery_attempts": self.max_delivery_attempts,
            }
        return body

    def push_config(self) -> dict[str, Any]:
        """The push config; empty for a pull subscription."""
        if not self.push_endpoint:
            return {}
        config: dict[str, Any] = {"push_endpoint": self.push_endpoint}
        if self.oidc_service_account:
            config["oidc_token"] = {
                "service_account_email": self.oidc_service_account,
                "audience": self.oidc_audience or self.push_endpoint,
            }
        return config


def ensure_subscription(
    project: str,
    spec: SubscriptionSpec,
    client: pubsub_v1.SubscriberClient | None = None,
    update: bool = True,
    timeout_s: float = DEFAULT_PUBSUB_START_TIMEOUT_S,
) -> str:
    """Create the subscription; with `update`, align an existing one whose push/dead-letter/retry differ.

    `update=False` only fills in what is missing: an ingester recovering from an emulator restart uses it,
    so it never turns the worker's push subscription back into a pull one. Each call waits at most
    `timeout_s` for Pub/Sub to answer.
    """
    client = client or subscriber_client()
    request = spec.request(project)
    patience = until_answered(timeout_s)
    try:
        client.create_subscription(request=request, **patience)
        log.info("created subscription", extra={"subscription": request["name"], "push": spec.push_endpoint})
        return request["name"]
    except api_exceptions.AlreadyExists:
        if not update:
            return request["name"]
    current = client.get_subscription(request={"subscription": request["name"]}, **patience)
    wanted = type(current)(request)
    changed = [
        name
        for name in ("push_config", "dead_letter_policy", "retry_policy", "ack_deadline_seconds")
        if getattr(current, name) != getattr(wanted, name)
    ]
    if changed:
        client.update_subscription(
            request={"subscription": wanted, "update_mask": field_mask_pb2.FieldMask(paths=changed)},
            **patience,
        )
        log.info("updated subscription", extra={"subscription": request["name"], "fields": changed})
    return request["name"]


@dataclass(frozen=True)
class StreamTopology:
    """The topics and subscriptions of the BuzzWatch stream, named by settings.

    tweets --(push or pull: the scoring workers)--> tweets-scored --(pull: the single detection service)
    Deliveries that fail `max_delivery_attempts` times go to the dead-letter topic, kept by a pull
    subscription for inspection. After an emulator restart each role recreates what is missing
    (`ensure(update=False)`, or only the scored path with `ensure_scored_path`), never altering what exists.
    """

    project: str
    tweets_topic: str
    scored_topic: str
    dead_letter_topic: str
    tweets_subscription: str = "tweets-worker"
    scored_subscription: str = "tweets-scored-detector"
    dead_letter_subscription: str = "tweets-dead-letter-keep"
    max_delivery_attempts: int = 5
    emulator_host: str | None = None  # None: PUBSUB_EMULATOR_HOST if set, else Google Cloud
    start_timeout_s: float = DEFAULT_PUBSUB_START_TIMEOUT_S  # how long `ensure` waits for Pub/Sub

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> StreamTopology:
        """The names an entry point read from the environment (PUBSUB_* in `CommonSettings`)."""
        return cls(
            project=settings.gcp_project,
            tweets_topic=settings.tweets_topic,
            scored_topic=settings.scored_topic,
            dead_letter_topic=settings.dead_letter_topic,
            tweets_subscription=settings.tweets_subscription,
            scored_subscription=settings.scored_subscription,
            dead_letter_subscription=settings.dead_letter_subscription,
            max_delivery_attempts=settings.max_delivery_attempts,
            emulator_host=settings.pubsub_emulator_host,
            start_timeout_s=settings.pubsub_start_timeout_s,
        )

    def tweets_spec(
        self,
        push_endpoint: str | None = None,
        oidc_service_account: str | None = None,
        oidc_audience: str | None = None,
    ) -> SubscriptionSpec:
        """The scoring workers' subscription: push to `push_endpoint`, or pull without one (on the emulator,
        a push subscription has no retry or dead-letter policy: `SubscriptionSpec.policies`)."""
        emulated = bool(self.emulator_host or os.environ.get("PUBSUB_EMULATOR_HOST"))
        return SubscriptionSpec(
            name=self.tweets_subscription,
            topic=self.tweets_topic,
            push_endpoint=push_endpoint,
            oidc_service_account=oidc_service_account,
            oidc_audience=oidc_audience,
            dead_letter_topic=self.dead_letter_topic,
            max_delivery_attempts=self.max_delivery_attempts,
            policies=not (push_endpoint and emulated),
        )

    def scored_spec(self) -> SubscriptionSpec:
        """The detection service's pull subscription of scored tweets."""
        return SubscriptionSpec(
            name=self.scored_subscription,
            topic=self.scored_topic,
            dead_letter_topic=self.dead_letter_topic,
            max_delivery_attempts=self.max_delivery_attempts,
        )

    def dead_letter_spec(self) -> SubscriptionSpec:
        """The pull subscription that keeps dead letters for inspection."""
        return SubscriptionSpec(
            name=self.dead_letter_subscription, topic=self.dead_letter_topic, ack_deadline_s=600
        )

    def ensure(
        self,
        push_endpoint: str | None = None,
        oidc_service_account: str | None = None,
        oidc_audience: str | None = None,
        update: bool = True,
    ) -> dict[str, str]:
        """Create every missing topic and subscription (and align existing ones with `update`).

        `update=False` only fills in what is missing: the ingester and pull scoring, recovering from an
        emulator restart, use it so they never turn the worker's push subscription back into a pull one.
        """
        topics = {
            "tweets_topic": self.tweets_topic,
            "scored_topic": self.scored_topic,
            "dead_letter_topic": self.dead_letter_topic,
        }
        specs = {
            "tweets_subscription": self.tweets_spec(push_endpoint, oidc_service_account, oidc_audience),
            "scored_subscription": self.scored_spec(),
            "dead_letter_subscription": self.dead_letter_spec(),
        }
        return self._ensure(topics, specs, update)

    def ensure_scored_path(self) -> dict[str, str]:
        """The scored and dead-letter topics, the detection and dead-letter subscriptions; only what is
        missing (a scoring worker or the detection service recovering from an emulator restart)."""
        topics = {"scored_topic": self.scored_topic, "dead_letter_topic": self.dead_letter_topic}
        specs = {
            "scored_subscription": self.scored_spec(),
            "dead_letter_subscription": self.dead_letter_spec(),
        }
        return self._ensure(topics, specs, update=False)

    def ensure_before_pulling(self, specs: Sequence[SubscriptionSpec]) -> None:
        """A detection puller's start: the scored and dead-letter topics and `specs`, only what is missing.

        A Pub/Sub that does not answer is `PubSubUnreachableError` after `start_timeout_s` (the command's one
        line, not a pull retried for ever). A service account that may only pull (Cloud Run's bw-detection:
        infra/gcp/pubsub.sh made them) cannot create them: said in a WARNING, and it pulls what exists.
        """
        topics = {"scored_topic": self.scored_topic, "dead_letter_topic": self.dead_letter_topic}
        try:
            self._ensure(topics, {spec.name: spec for spec in specs}, update=False)
        except api_exceptions.PermissionDenied as exc:
            log.warning(
                "not allowed to make the subscriptions; pulling those the deployment made",
                extra={"error": str(exc)[:300]},
            )

    def _ensure(
        self, topics: dict[str, str], specs: dict[str, SubscriptionSpec], update: bool
    ) -> dict[str, str]:
        """Create `topics`, then `specs`, through one pair of clients closed after; paths by role.

        A Pub/Sub that does not answer within `start_timeout_s` is `PubSubUnreachableError`: one line
        that says where it was looked for (a command's start-up; the recovery hooks log it and retry).
        """
        publisher = publisher_client(self.emulator_host)
        subscriber = subscriber_client(self.emulator_host)
        wait = self.start_timeout_s
        try:
            paths = {role: ensure_topic(self.project, name, publisher, wait) for role, name in topics.items()}
            for role, spec in specs.items():
                paths[role] = ensure_subscription(self.project, spec, subscriber, update, wait)
        except (api_exceptions.RetryError, api_exceptions.ServiceUnavailable) as exc:
            raise PubSubUnreachableError(self.emulator_host, wait, exc) from None
        finally:
            subscriber.close()
            publisher.api.transport.close()
        return paths
