"""The scoring side of the stream: settings, group-commit scoring and confirmed publishing, one push message.

Scoring scales out (any number of instances, each stateless): a TweetEvent in, a ScoredTweet published on the
scored topic, nothing else. Counting, dedupe and detection happen once, in the detection service
(`worker.detection_service`, its own entry point `buzzwatch detect`), which consumes the scored topic.

`ScoringService.handle(data, attributes, message_id)` is the domain step shared by the push route and pull
mode. It returns normally when the message is done (scored and published, or dead-lettered because it is
malformed) and raises `TransientError` when it should be delivered again (Pub/Sub retries it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from buzzwatch import telemetry as names
from buzzwatch.partitions import DEFAULT_PARTITIONS, check_partitions, partition_attributes
from buzzwatch.pubsub import Publisher, PublishError, StreamTopology
from buzzwatch.schema import SchemaError, ScoredTweet, TweetEvent, check_not_ahead
from buzzwatch.settings import CommonSettings, SettingsError, env_float, env_int, env_str
from buzzwatch.telemetry import Telemetry
from models.language import gate_for
from worker.auth import IdTokenPolicy

if TYPE_CHECKING:
    from models.reasons import ReasonModel

log = logging.getLogger("buzzwatch.worker")

MAX_FORWARDED_ATTRIBUTES = 97  # Pub/Sub allows 100 attributes a message; the dead letter adds three


class TransientError(RuntimeError):
    """The message could not be processed now (model, Pub/Sub); it must be delivered again."""


@dataclass(frozen=True)
class WorkerSettings:
    """The scoring worker's settings (environment variables in brackets); detection has its own."""

    push_auth: IdTokenPolicy  # PUSH_AUTH_*: who may push (worker.auth)
    push_endpoint: str | None  # PUBSUB_PUSH_ENDPOINT: used when pull mode recreates a lost subscription
    max_batch: int  # WORKER_MAX_BATCH: most tweets scored and published in one group
    flushes: int  # WORKER_FLUSHES: most groups scored and published at once per process
    max_envelope_bytes: int  # WORKER_MAX_ENVELOPE_BYTES: larger push requests are dead-lettered
    publish_timeout_s: float  # WORKER_PUBLISH_TIMEOUT_S: wait for the scored publish before a retry
    partitions: int = DEFAULT_PARTITIONS  # BUZZWATCH_PARTITIONS: brand partitions the scored tweets carry

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerSettings:
        """Read the variables above, with local defaults."""
        partitions = env_int(env, "BUZZWATCH_PARTITIONS", DEFAULT_PARTITIONS)
        try:
            check_partitions(partitions)
        except ValueError as exc:
            raise SettingsError(f"BUZZWATCH_PARTITIONS: {exc}") from exc
        return cls(
            push_auth=IdTokenPolicy.from_env(env, "PUSH_AUTH"),
            push_endpoint=env_str(env, "PUBSUB_PUSH_ENDPOINT"),
            max_batch=env_int(env, "WORKER_MAX_BATCH", 256),
            flushes=env_int(env, "WORKER_FLUSHES", 1),
            max_envelope_bytes=env_int(env, "WORKER_MAX_ENVELOPE_BYTES", 1_000_000, minimum=1024),
            publish_timeout_s=env_float(env, "WORKER_PUBLISH_TIMEOUT_S", 30.0, minimum=0.1),
            partitions=partitions,
        )


class SentimentModel(Protocol):
    """What the worker needs from `models.predictor.Predictor`."""

    model_version: str

    def predict(self, texts: Sequence[str]) -> list[Any]: ...


def load_models(settings: CommonSettings) -> tuple[SentimentModel, ReasonModel | None]:
    """The shared Predictor and the reason classifier (None when unusable: `load_reason_model`).

    A model URI that leads to no usable artifact is a `SettingsError` naming BUZZWATCH_MODEL_URI: one
    line from the command, not a traceback.
    """
    from models.predictor import ModelLoadError, Predictor
    from models.reasons import load_reason_model

    try:
        model = Predictor.load(settings.model_uri)
    except ModelLoadError as exc:
        uri = settings.model_uri
        raise SettingsError(f"cannot load the model BUZZWATCH_MODEL_URI={uri}: {exc}") from None
    return model, load_reason_model()


def score_events(
    events: Sequence[TweetEvent], model: SentimentModel, reasons: ReasonModel | None
) -> list[ScoredTweet]:
    """Score a batch; negative tweets get their reason; each tweet its language (a guess is flagged)."""
    texts = [event.text for event in events]
    predictions = model.predict(texts)
    languages = gate_for(model).identify_many(texts, [event.lang for event in events])
    negatives = [i for i, p in enumerate(predictions) if p.label == "negative" and languages[i].supported]
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
            language=language.code,
            language_supported=language.supported,
        )
        for index, (event, prediction, language) in enumerate(
            zip(events, predictions, languages, strict=True)
        )
    ]


class _Request:
    """One caller's tweets, and the lock its thread sleeps on: released to say "done" or "lead a group"."""

    __slots__ = ("called", "jobs", "pending", "wake")

    def __init__(self, events: Sequence[TweetEvent]) -> None:
        self.jobs = [_Job(event, self) for event in events]
        self.pending = len(self.jobs)
        self.called = False  # woken to lead a group and not back at the check yet
        self.wake = threading.Lock()
        self.wake.acquire()


@dataclass
class _Job:
    event: TweetEvent
    request: _Request
    scored: ScoredTweet | None = None
    error: Exception | None = None


class ScoringPipeline:
    """Scores tweets and publishes them, confirmed, in groups formed by whoever is waiting (a group commit).

    A request's thread queues its tweets; then, while fewer than `flushes` groups are in flight, it takes
    everything queued (its own tweets and those of the requests behind it, at most `max_batch`) and
    flushes the group: one model call, one confirmed Publish RPC. Otherwise it sleeps until its tweets are
    done or it is called to lead the next group. No hand-off to another thread and no timer: a lone push is
    scored and published at once on its own thread, and under load the groups grow by themselves while
    flushes are in flight. Each sleeping thread is woken once for its answer (not every thread at every
    flush): with one request per tweet, wake-ups are a cost per tweet.
    """

    def __init__(
        self,
        model: SentimentModel,
        reasons: ReasonModel | None,
        publisher: Publisher,
        telemetry: Telemetry,
        max_batch: int = 256,
        flushes: int = 1,
        partitions: int = DEFAULT_PARTITIONS,
    ) -> None:
        self.model = model
        self.partitions = partitions  # each scored message is marked with its brands' partitions
        self.reasons = reasons
        self.publisher = publisher
        self.telemetry = telemetry
        self.max_batch = max(1, max_batch)
        self.flushes = max(1, flushes)
        self._queue: deque[_Job] = deque()
        self._in_flight = 0
        self._sleepers: dict[_Request, None] = {}  # sleeping requests, oldest first
        self._called = 0  # requests woken to lead a group, on their way
        self._lock = threading.Lock()

    def process(self, events: Sequence[TweetEvent], timeout_s: float) -> list[ScoredTweet]:
        """Score and publish `events`: their ScoredTweets, once confirmed (else TransientError)."""
        request = _Request(events)
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._queue.extend(request.jobs)
        try:
            while True:
                with self._lock:
                    self._arrived(request)
                    if not request.pending:
                        break
                    group = None
                    if self._in_flight < self.flushes and self._queue:
                        group = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                        self._in_flight += 1
                    else:
                        self._sleepers[request] = None
                if group is not None:
                    self._lead(group)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not request.wake.acquire(timeout=remaining):
                    raise TransientError(f"not scored and published within {timeout_s:g} s")
        finally:
            with self._lock:
                self._arrived(request)
                self._sleepers.pop(request, None)
                self._call_next_leader()
        failed = next((job.error for job in request.jobs if job.error is not None), None)
        if failed is not None:
            raise TransientError(str(failed)) from failed
        return [job.scored for job in request.jobs if job.scored is not None]

    def _lead(self, group: list[_Job]) -> None:
        """Flush a group, then wake each sleeping request whose tweets are now all done."""
        try:
            self._flush(group)
        finally:
            with self._lock:
                self._in_flight -= 1
                for job in group:
                    request = job.request
                    request.pending -= 1
                    if not request.pending and request in self._sleepers:
                        del self._sleepers[request]
                        request.wake.release()

    def _arrived(self, request: _Request) -> None:
        """Under the lock: a request called to lead is at the check (or leaving)."""
        if request.called:
            request.called = False
            self._called -= 1

    def _call_next_leader(self) -> None:
        """Under the lock, as a request leaves: wake the oldest sleeper with queued tweets to lead a group."""
        if not self._queue or self._in_flight + self._called >= self.flushes:
            return
        for request in self._sleepers:
            if request.pending:
                del self._sleepers[request]
                request.called = True
                self._called += 1
                request.wake.release()
                return

    def _flush(self, group: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            scored = score_events([job.event for job in group], self.model, self.reasons)
            self.publisher.publish_confirmed(
                [(s.to_json(), _scored_attributes(s, self.partitions)) for s in scored]
            )
        except Exception as exc:  # the model or Pub/Sub failed: every request of the group is retried
            log.warning("scoring or publishing failed", extra={"batch": len(group), "error": str(exc)})
            for job in group:
                job.error = exc
            return
        for job, result in zip(group, scored, strict=True):
            job.scored = result
        self.telemetry.metric(
            names.PROCESSING_LATENCY_MS, (time.perf_counter() - started) * 1000, {"stage": "score_batch"}
        )


class ScoringService:
    """Validate, score and publish (the group-commit pipeline); malformed input goes to the dead letter."""

    def __init__(
        self,
        pipeline: ScoringPipeline,
        dead_letter: Publisher,
        telemetry: Telemetry,
        publish_timeout_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pipeline = pipeline
        self.clock = clock
        self.dead_letter = dead_letter
        self.telemetry = telemetry
        self.publish_timeout_s = publish_timeout_s
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[key] += amount

    def _event(self, data: bytes) -> TweetEvent:
        """The message's tweet (SchemaError if malformed or dated from the future, which would silence its
        brand in the detector until then)."""
        return check_not_ahead(TweetEvent.from_json(data), self.clock())

    def handle(self, data: bytes, attributes: Mapping[str, str], message_id: str) -> str:
        """Process one message; returns "scored" or "dead_lettered"; raises TransientError to be retried."""
        try:
            event = self._event(data)
        except SchemaError as exc:
            self.send_to_dead_letter(data, attributes, message_id, str(exc))
            return "dead_lettered"
        self.pipeline.process([event], self.publish_timeout_s)
        self._count("scored")
        return "scored"

    def handle_batch(
        self, messages: Sequence[tuple[bytes, Mapping[str, str], str]]
    ) -> tuple[list[int], list[int]]:
        """Pull mode: process many at once; returns (indexes done: ack, indexes to deliver again: nack)."""
        done: list[int] = []
        valid: list[tuple[int, TweetEvent]] = []
        for index, (data, attributes, message_id) in enumerate(messages):
            try:
                valid.append((index, self._event(data)))
            except SchemaError as exc:
                try:
                    self.send_to_dead_letter(data, attributes, message_id, str(exc))
                    done.append(index)
                except TransientError:
                    pass
        if valid:
            try:
                self.pipeline.process([event for _, event in valid], self.publish_timeout_s)
                done.extend(index for index, _ in valid)
                self._count("scored", len(valid))
            except TransientError as exc:
                log.warning(
                    "scoring or publishing failed; messages will come again", extra={"error": str(exc)}
                )
        done_set = set(done)
        return sorted(done), [i for i in range(len(messages)) if i not in done_set]

    def send_to_dead_letter(
        self, data: bytes, attributes: Mapping[str, str], message_id: str, reason: str
    ) -> None:
        """Publish the original bytes with the reason to the dead-letter topic and count it (or raise).

        The attributes are made valid for Pub/Sub (UTF-8, its size limits): whatever the bad message carried,
        its dead-letter publish must not fail and turn it into a retry.
        """
        tagged = {
            _attribute(str(key), 256): _attribute(str(value), 1024)
            for key, value in list(attributes.items())[:MAX_FORWARDED_ATTRIBUTES]
        }
        tagged.update(
            buzzwatch_error=_attribute(reason, 1024),
            buzzwatch_stage="worker",
            original_message_id=_attribute(message_id, 1024),
        )
        try:
            self.dead_letter.publish_confirmed([(data, tagged)])
        except PublishError as exc:
            raise TransientError(str(exc)) from exc
        kind = "oversized" if "larger than" in reason else "malformed"
        self._count(f"dead_lettered_{kind}")
        self.telemetry.metric(names.DEAD_LETTERED, 1, {"reason": kind, "stage": "worker"})
        log.warning("message dead-lettered", extra={"message_id": message_id, "reason": reason[:300]})

    def close(self) -> None:
        """Close the Pub/Sub channels."""
        self.pipeline.publisher.close()
        self.dead_letter.close()


def _attribute(text: str, max_bytes: int) -> str:
    """`text` as a Pub/Sub attribute: valid UTF-8 (lone surrogates escaped), at most `max_bytes` bytes."""
    return text.encode("utf-8", "backslashreplace")[:max_bytes].decode("utf-8", "ignore")


def _scored_attributes(scored: ScoredTweet, partitions: int) -> dict[str, str]:
    brands = scored.tweet.brands
    return {"brand": ",".join(brands), "label": scored.label, **partition_attributes(brands, partitions)}


def build_scoring_service(
    settings: CommonSettings,
    topology: StreamTopology,
    worker_settings: WorkerSettings,
    telemetry: Telemetry,
    model: SentimentModel | None = None,
    reasons: ReasonModel | None = None,
) -> ScoringService:
    """Wire the service from settings (models loaded unless given); its path of the stream made sure of."""
    if model is None:
        model, reasons = load_models(settings)
    topology.ensure_scored_path()

    def publisher(topic: str) -> Publisher:
        # A topic lost with an emulator restart comes back with the subscriptions that read it.
        return Publisher(
            topology.project, topic, create_topic=False, on_topic_missing=topology.ensure_scored_path
        )

    return ScoringService(
        ScoringPipeline(
            model,
            reasons,
            publisher(topology.scored_topic),
            telemetry,
            worker_settings.max_batch,
            worker_settings.flushes,
            worker_settings.partitions,
        ),
        publisher(topology.dead_letter_topic),
        telemetry,
        worker_settings.publish_timeout_s,
    )
