"""The one Pub/Sub adapter: client creation (`clients`), topology (`topology`), the publisher and its
confirmed mode (`publisher`), pull (`pull`). Every service goes through it; each entry point builds one
`StreamTopology` from its settings.

The client library switches to the emulator by itself when `PUBSUB_EMULATOR_HOST` is set, so nothing here
branches on emulator or Google Cloud; a topology built from settings names its emulator explicitly (the
local stack sets no variable in its own process). Missing Google credentials are `PubSubCredentialsError`,
one line, not a traceback.
"""

from buzzwatch.pubsub.clients import (
    PubSubCredentialsError,
    PubSubUnreachableError,
    check_credentials,
    publisher_client,
    subscriber_client,
)
from buzzwatch.pubsub.publisher import (
    TRANSIENT_ERRORS,
    Publisher,
    PublishError,
    PublisherSettings,
    PublishStats,
)
from buzzwatch.pubsub.pull import (
    UNAVAILABLE,
    PullTarget,
    ReceivedMessage,
    ack,
    attempt,
    nack,
    pull_batch,
    pull_loop,
    pull_messages,
    pull_targets,
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
    "PubSubCredentialsError",
    "PubSubUnreachableError",
    "PublishError",
    "PublishStats",
    "Publisher",
    "PublisherSettings",
    "PullTarget",
    "ReceivedMessage",
    "StreamTopology",
    "SubscriptionSpec",
    "ack",
    "attempt",
    "check_credentials",
    "ensure_subscription",
    "ensure_topic",
    "nack",
    "publisher_client",
    "pull_batch",
    "pull_loop",
    "pull_messages",
    "pull_targets",
    "subscriber_client",
    "subscription_path",
    "topic_path",
]
