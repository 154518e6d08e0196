"""The scoring side of the stream: settings, micro-batched scoring, confirmed publishing, one push message.

Scoring scales out (any number of instances, each stateless): a TweetEvent in, a ScoredTweet published on the
scored topic, nothing else. Counting, dedupe and detection happen once, in the detection service
(`worker.detection_service`), which consumes the scored topic.

`ScoringService.handle(data, attributes, message_id)` is the domain step shared by the push route and pull
mode. It returns normally when the message is done (scored and published, or dead-lettered because it is
malformed) and raises `TransientError` when it should be delivered again (Pub/Sub retries it).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from buzzwatch import telemetry as names
from buzzwatch.schema import SchemaError, ScoredTweet, TweetEvent
from buzzwatch.settings import CommonSettings, env_float, env_int, env_str
from buzzwatch.telemetry import Telemetry

log = logging.getLogger("buzzwatch.worker")


class TransientError(RuntimeError):
    """The message could not be processed now (model, Pub/Sub); it must be delivered again."""


@dataclass(frozen=True)
class WorkerSettings:
    """The worker's own settings (environment variables in brackets)."""

    push_audience: str | None  # PUSH_AUTH_AUDIENCE: verify the push OIDC token for this audience
    push_service_account: str | None  # PUSH_AUTH_SERVICE_ACCOUNT: the token's expected email
    push_endpoint: str | None  # PUBSUB_PUSH_ENDPOINT: used when pull mode recreates a lost subscription
    max_batch: int  # WORKER_MAX_BATCH: most tweets scored in one model call
    batch_wait_ms: float  # WORKER_BATCH_WAIT_MS: how long a batch waits for more tweets
    max_envelope_bytes: int  # WORKER_MAX_ENVELOPE_BYTES: larger push requests are dead-lettered
    publish_timeout_s: float  # WORKER_PUBLISH_TIMEOUT_S: wait for the scored publish before a retry
    checkpoint_interval_s: float  # DETECTION_CHECKPOINT_S: how often the detection service commits
    checkpoint_max_messages: int  # DETECTION_CHECKPOINT_MESSAGES: ... or after this many messages
    seen_retention_days: float  # DETECTION_SEEN_RETENTION_DAYS: how long tweet ids are remembered
    health_port: int  # PORT: the detection service's health endpoint

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerSettings:
        """Read the variables above, with local defaults."""
        return cls(
            push_audience=env_str(env, "PUSH_AUTH_AUDIENCE"),
            push_service_account=env_str(env, "PUSH_AUTH_SERVICE_ACCOUNT"),
            push_endpoint=env_str(env, "PUBSUB_PUSH_ENDPOINT"),
            max_batch=env_int(env, "WORKER_MAX_BATCH", 256),
            batch_wait_ms=env_float(env, "WORKER_BATCH_WAIT_MS", 5.0),
            max_envelope_bytes=env_int(env, "WORKER_MAX_ENVELOPE_BYTES", 1_000_000),
            publish_timeout_s=env_float(env, "WORKER_PUBLISH_TIMEOUT_S", 30.0),
            checkpoint_interval_s=env_float(env, "DETECTION_CHECKPOINT_S", 2.0),
            checkpoint_max_messages=env_int(env, "DETECTION_CHECKPOINT_MESSAGES", 2000),
            seen_retention_days=env_float(env, "DETECTION_SEEN_RETENTION_DAYS", 14.0),
            health_port=env_int(env, "PORT", 8081),
        )


class SentimentModel(Protocol):
    """What the worker needs from `models.predictor.Predictor`."""

    model_version: str

    def predict(self, texts: Sequence[str]) -> list[Any]: ...


class ReasonModel(Protocol):
    """What the worker needs from `models.reasons.ReasonClassifier`."""

    def predict(self, texts: Sequence[str]) -> list[str]: ...


def load_models(settings: CommonSettings) -> tuple[SentimentModel, ReasonModel | None]:
    """The shared Predictor and the reason classifier (None, logged, if its artifact is missing)."""
    from models.predictor import Predictor
    from models.reasons import ReasonClassifier

    predictor = Predictor.load(settings.model_uri)
    try:
        reasons: ReasonModel | None = ReasonClassifier.load()
    except (OSError, ValueError) as exc:
        log.warning("no reason classifier: alerts will carry no reasons", extra={"error": str(exc)})
        reasons = None
    return predictor, reasons


def score_events(
    events: Sequence[TweetEvent], model: SentimentModel, reasons: ReasonModel | None
) -> list[ScoredTweet]:
    """Score a batch; negative tweets get their reason."""
    predictions = model.predict([event.text for event in events])
    negatives = [i for i, p in enumerate(predictions) if p.label == "negative"]
    reason_for: dict[int, str] = {}
    if reasons is not None and negatives:
        for index, reason in zip(
            negatives, reasons.predict([events[i].text for i in negatives]), strict=True
        ):
            reason_for[index] = reason
    return [
        ScoredTweet(
            tweet=event,
            label=prediction.label,
            probabilities=dict(prediction.probabilities),
            model_version=prediction.model_version,
            negative_reason=reason_for.get(index),
        )
        for index, (event, prediction) in enumerate(zip(events, predictions, strict=True))
    ]


class MicroBatcher:
    """Scores tweets from many concurrent requests together: one model call per batch, not per tweet."""

    def __init__(
        self,
        model: SentimentModel,
        reasons: ReasonModel | None,
        telemetry: Telemetry,
        max_batch: int = 256,
        wait_ms: float = 5.0,
    ) -> None:
        self.model = model
        self.reasons = reasons
        self.telemetry = telemetry
        self.max_batch = max(1, max_batch)
        self.wait_s = max(0.0, wait_ms) / 1000
        self._queue: queue.Queue[tuple[TweetEvent, Future[ScoredTweet]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, event: TweetEvent) -> Future[ScoredTweet]:
        """Queue one tweet; the future holds its ScoredTweet (or the model's exception)."""
        future: Future[ScoredTweet] = Future()
        self._queue.put((event, future))
        return future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.wait_s
            stop = False
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._score(batch)
            if stop:
                return

    def _score(self, batch: list[tuple[TweetEvent, Future[ScoredTweet]]]) -> None:
        started = time.perf_counter()
        try:
            scored = score_events([event for event, _ in batch], self.model, self.reasons)
        except Exception as exc:  # the model failed: every request of the batch answers 500 and is retried
            log.exception("scoring failed", extra={"batch": len(batch)})
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, scored, strict=True):
            future.set_result(result)
        self.telemetry.metric(
            names.PROCESSING_LATENCY_MS, (time.perf_counter() - started) * 1000, {"stage": "score_batch"}
        )

    def close(self) -> None:
        """Score what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=30)


class ConfirmedPublisher:
    """Publishes and waits for Pub/Sub's confirmation of each message, so a delivery is acked only after.

    Built on buzzwatch.pubsub's settings (explicit batching, BLOCK flow control, retry of transient errors).
    A topic that vanished (an emulator restart) is recreated through `on_topic_missing`, then retried once.
    """

    def __init__(
        self,
        project: str,
        topic: str,
        on_topic_missing: Callable[[], object] | None = None,
        max_latency_s: float = 0.005,
    ) -> None:
        from dataclasses import replace

        from google.cloud import pubsub_v1

        from buzzwatch.pubsub import PublisherSettings, topic_path

        settings = replace(PublisherSettings(), max_latency_s=max_latency_s)
        self.topic = topic_path(project, topic)
        self.on_topic_missing = on_topic_missing
        self._client = pubsub_v1.PublisherClient(
            batch_settings=settings.batch_settings(), publisher_options=settings.publisher_options()
        )
        self._recover_lock = threading.Lock()

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> Future[str]:
        """Start one publish; the future resolves with the message id."""
        return self._client.publish(self.topic, data, **attributes)

    def wait(self, futures: Sequence[tuple[Future[str], bytes, Mapping[str, str]]], timeout_s: float) -> None:
        """Wait for every publish; retry once after recreating a missing topic; TransientError otherwise."""
        from google.api_core import exceptions as api_exceptions

        retry = []
        for future, data, attributes in futures:
            try:
                future.result(timeout=timeout_s)
            except api_exceptions.NotFound:
                retry.append((data, attributes))
            except Exception as exc:
                raise TransientError(f"publish to {self.topic} failed: {exc}") from exc
        if not retry:
            return
        self._recover()
        for data, attributes in retry:
            try:
                self.publish(data, attributes).result(timeout=timeout_s)
            except Exception as exc:
                raise TransientError(f"publish to {self.topic} failed after recreating it: {exc}") from exc

    def _recover(self) -> None:
        with self._recover_lock:
            if self.on_topic_missing is not None:
                try:
                    self.on_topic_missing()
                except Exception as exc:
                    raise TransientError(f"cannot recreate {self.topic}: {exc}") from exc

    def close(self) -> None:
        """Send what is batched and stop the client."""
        self._client.stop()


def ensure_scored_path(settings: CommonSettings, env: Mapping[str, str]) -> None:
    """Create the scored and dead-letter topics and the detection subscription if missing (never alter)."""
    from buzzwatch.pubsub import StreamTopology, SubscriptionSpec, ensure_subscription, ensure_topic

    topology = StreamTopology.from_settings(settings, env)
    ensure_topic(topology.project, topology.scored_topic)
    ensure_topic(topology.project, topology.dead_letter_topic)
    ensure_subscription(
        topology.project,
        SubscriptionSpec(
            name=topology.scored_subscription,
            topic=topology.scored_topic,
            dead_letter_topic=topology.dead_letter_topic,
            max_delivery_attempts=topology.max_delivery_attempts,
        ),
        update=False,
    )
    ensure_subscription(
        topology.project,
        SubscriptionSpec(
            name=topology.dead_letter_subscription, topic=topology.dead_letter_topic, ack_deadline_s=600
        ),
        update=False,
    )


class ScoringService:
    """Validate, score (micro-batched), publish the ScoredTweet; malformed input goes to the dead letter."""

    def __init__(
        self,
        batcher: MicroBatcher,
        scored: ConfirmedPublisher,
        dead_letter: ConfirmedPublisher,
        telemetry: Telemetry,
        publish_timeout_s: float = 30.0,
    ) -> None:
        self.batcher = batcher
        self.scored = scored
        self.dead_letter = dead_letter
        self.telemetry = telemetry
        self.publish_timeout_s = publish_timeout_s
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[key] += amount

    def handle(self, data: bytes, attributes: Mapping[str, str], message_id: str) -> str:
        """Process one message; returns "scored" or "dead_lettered"; raises TransientError to be retried."""
        try:
            event = TweetEvent.from_json(data)
        except SchemaError as exc:
            self.send_to_dead_letter(data, attributes, message_id, str(exc))
            return "dead_lettered"
        future = self.batcher.submit(event)
        try:
            scored = future.result(timeout=self.publish_timeout_s)
        except Exception as exc:
            raise TransientError(f"scoring failed: {exc}") from exc
        self.publish_scored([scored])
        return "scored"

    def handle_batch(
        self, messages: Sequence[tuple[bytes, Mapping[str, str], str]]
    ) -> tuple[list[int], list[int]]:
        """Pull mode: process many at once; returns (indexes done: ack, indexes to deliver again: nack)."""
        done: list[int] = []
        futures: list[tuple[int, Future[ScoredTweet]]] = []
        for index, (data, attributes, message_id) in enumerate(messages):
            try:
                event = TweetEvent.from_json(data)
            except SchemaError as exc:
                try:
                    self.send_to_dead_letter(data, attributes, message_id, str(exc))
                    done.append(index)
                except TransientError:
                    pass
                continue
            futures.append((index, self.batcher.submit(event)))
        scored: list[tuple[int, ScoredTweet]] = []
        for index, future in futures:
            try:
                scored.append((index, future.result(timeout=self.publish_timeout_s)))
            except Exception as exc:
                log.warning("scoring failed; message will come again", extra={"error": str(exc)})
        try:
            self.publish_scored([s for _, s in scored])
            done.extend(i for i, _ in scored)
        except TransientError as exc:
            log.warning("scored publish failed; messages will come again", extra={"error": str(exc)})
        done_set = set(done)
        return sorted(done), [i for i in range(len(messages)) if i not in done_set]

    def publish_scored(self, batch: Sequence[ScoredTweet]) -> None:
        """Publish and wait for confirmation (raises TransientError)."""
        pending = []
        for scored in batch:
            payload = _scored_json(scored)
            attributes = {"brand": ",".join(scored.tweet.brands), "label": scored.label}
            pending.append((self.scored.publish(payload, attributes), payload, attributes))
        self.scored.wait(pending, self.publish_timeout_s)
        self._count("scored", len(batch))

    def send_to_dead_letter(
        self, data: bytes, attributes: Mapping[str, str], message_id: str, reason: str
    ) -> None:
        """Publish the original bytes with the reason to the dead-letter topic and count it (or raise)."""
        tagged = {str(k): str(v) for k, v in attributes.items()}
        tagged.update(buzzwatch_error=reason[:1000], buzzwatch_stage="worker", original_message_id=message_id)
        self.dead_letter.wait(
            [(self.dead_letter.publish(data, tagged), data, tagged)], self.publish_timeout_s
        )
        kind = "oversized" if "larger than" in reason else "malformed"
        self._count(f"dead_lettered_{kind}")
        self.telemetry.metric(names.DEAD_LETTERED, 1, {"reason": kind, "stage": "worker"})
        log.warning("message dead-lettered", extra={"message_id": message_id, "reason": reason[:300]})

    def close(self) -> None:
        """Stop batching and publishing."""
        self.batcher.close()
        self.scored.close()
        self.dead_letter.close()


def _scored_json(scored: ScoredTweet) -> bytes:
    import json

    return json.dumps(scored.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()


def build_scoring_service(
    settings: CommonSettings,
    worker_settings: WorkerSettings,
    env: Mapping[str, str],
    telemetry: Telemetry,
    model: SentimentModel | None = None,
    reasons: ReasonModel | None = None,
) -> ScoringService:
    """Wire the service from settings (models loaded unless given)."""
    if model is None:
        model, reasons = load_models(settings)
    ensure_scored_path(settings, env)

    def recover() -> None:
        ensure_scored_path(settings, env)

    return ScoringService(
        MicroBatcher(model, reasons, telemetry, worker_settings.max_batch, worker_settings.batch_wait_ms),
        ConfirmedPublisher(settings.gcp_project, settings.scored_topic, recover),
        ConfirmedPublisher(settings.gcp_project, settings.dead_letter_topic, recover),
        telemetry,
        worker_settings.publish_timeout_s,
    )
