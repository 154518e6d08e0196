"""The one Pub/Sub adapter: topology (`topology`), the publisher and its confirmed mode (`publisher`), pull
(`pull`). Every service goes through it; each entry point builds one `StreamTopology` from its settings.

The client library switches to the emulator by itself when `PUBSUB_EMULATOR_HOST` is set, so nothing here
knows whether it talks to the emulator or to Google Cloud.
"""

from buzzwatch.pubsub.publisher import (
    TRANSIENT_ERRORS,
    Publisher,
    PublishError,
    PublisherSettings,
    PublishStats,
)
from buzzwatch.pubsub.pull import (
    UNAVAILABLE,
    ReceivedMessage,
    ack,
    attempt,
    nack,
    pull_batch,
    pull_loop,
    pull_messages,
)
from buzzwatch.pubsub.topology import (
    StreamTopology,
    SubscriptionSpec,
    ensure_subscription,
    ensure_topic,
    subscription_path,
    topic_path,
)

__all__ = [
    "TRANSIENT_ERRORS",
    "UNAVAILABLE",
    "PublishError",
    "PublishStats",
    "Publisher",
    "PublisherSettings",
    "ReceivedMessage",
    "StreamTopology",
    "SubscriptionSpec",
    "ack",
    "attempt",
    "ensure_subscription",
    "ensure_topic",
    "nack",
    "pull_batch",
    "pull_loop",
    "pull_messages",
    "subscription_path",
    "topic_path",
]
