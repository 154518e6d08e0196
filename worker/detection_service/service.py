"""The detection service's domain step: dedupe, detect, commit, dispatch (no Pub/Sub in here).

`DetectionService.process` counts a batch of scored-topic messages in memory; `checkpoint` commits what was
processed (ids + detector state + alerts, one transaction) and then dispatches the alerts; the caller
(`worker.detection_service.consumer`) acknowledges its held messages only after a checkpoint succeeded.

Late tweets: the detector counts a redelivered tweet in its own minute while that minute is retained
(about 2 h of event time); an older one is dropped, counted in the detector's `stats["late"]` and reported
as `dead_lettered{reason=late, stage=detection}`. Its id is stored like any other, so it is not retried.
A tweet dated more than `MAX_AHEAD_S` ahead of this machine's clock is dropped the same way, as
`reason=ahead`: the edges let through up to 15 h ahead (a local time read as UTC), and one such tweet moved
the single event-time watermark hours ahead, so every brand's live tweets were dropped as late until the
clock caught up.
A brand not seen yet is the exception: its older tweets (its past, which the ingester fetches) wait
in memory as its history and are learned at its first live tweet, or two minutes of event time after the
last of them (`BuzzDetector`, "history"); then the brand is saved with the state. A restart while they wait
loses them and the brand starts new.

Idle watermark: the detector closes minutes as tweets advance event time, so on a quiet stream the last
minutes (an episode's end, the per-minute metrics) would wait for the next tweet. When the pull loop finds
nothing, `tick()` moves the watermark on by itself once no message has come for `idle_quiet_s`: to the
event clock's estimated "now" minus the lateness tolerance minus `idle_margin_s`, never backwards. The
event clock is assumed to run no faster than the wall clock since the newest tweet arrived: estimated now =
min(wall now, newest event time + wall time since it arrived). That holds live (event time = wall time
minus the pipeline's latency) and stays safe when event time is far behind the wall clock, e.g. an ingest
replay of 2015 tweets at speed x1 or faster: the estimate never passes what the replay has reached. Before
the first tweet after a start, a resumed service counts from the newest event time of its saved state as
if it had just arrived (a smaller estimate). `buzzwatch replay` and the benchmark run the detector in pure
event time and never tick.

`BUZZWATCH_CRASH_AT` names a point where the process kills itself (`crash_point`): the crash-safety tests
use it, nothing else sets it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from buzzwatch import telemetry as names
from buzzwatch.partitions import DEFAULT_PARTITIONS, partition_of
from buzzwatch.schema import Alert, SchemaError, ScoredTweet, format_timestamp, load_json
from buzzwatch.telemetry import Telemetry
from worker.detection import BuzzDetector, DetectorConfig
from worker.detection_service.dispatcher import AlertDispatcher
from worker.detection_service.store import RESET_HINT, DetectionStore, FencedError, StateError, retryable

log = logging.getLogger("buzzwatch.detection")

CRASH_AT_VARIABLE = "BUZZWATCH_CRASH_AT"
# A partition group spools an alert only while its lease has at least this long to run (the dispatcher's
# module docstring): room for writing the spool file and for the machines' clocks disagreeing.
CLAIM_MARGIN_S = 0.5
# How far ahead of this machine's clock a tweet's event time may be and still be counted: the clocks of X,
# the ingester and this machine disagreeing. It moves the watermark at most this far (less the lateness
# tolerance) past the wall clock; tweets dated now are then counted late in their minute, not dropped.
MAX_AHEAD_S = 120.0


def crash_point(name: str) -> None:
    """Die here at once (SIGKILL, as a power cut or an OOM kill would) when BUZZWATCH_CRASH_AT names it."""
    if os.environ.get(CRASH_AT_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class PendingWork:
    """What was processed since the last commit."""

    ids: list[str] = field(default_factory=list)
    id_set: set[str] = field(default_factory=set)
    alerts: list[Alert] = field(default_factory=list)
    scored: Counter[tuple[str, str]] = field(default_factory=Counter)
    brands: set[str] = field(default_factory=set)
    messages: int = 0
    duplicates: int = 0
    late: int = 0  # tweets the detector dropped: their minute was no longer retained
    ahead: int = 0  # tweets dropped as dated ahead of the clock (MAX_AHEAD_S) ...
    first_ahead: str = ""  # ... and the first of them, for the log
    started: float = 0.0  # perf_counter() when its commit began


class CommitPending(RuntimeError):
    """A commit the database could not take for now; its work is kept for the next `checkpoint`."""


class DetectionService:
    """Dedupe, detect, checkpoint, dispatch; `DetectionConsumer` acks its messages only after `checkpoint()`.

    `clock` (wall time, seconds since the epoch) drives only the idle watermark (`tick`).
    """

    def __init__(
        self,
        store: DetectionStore,
        dispatcher: AlertDispatcher,
        telemetry: Telemetry,
        config: DetectorConfig | None = None,
        tokenizer: Any = None,
        reason_model: Any = None,
        idle_quiet_s: float = 10.0,
        idle_margin_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        reset_state: bool = False,
        owned_partitions: frozenset[int] | None = None,
        partitions: int = DEFAULT_PARTITIONS,
    ) -> None:
        self.store = store
        # A static split by brand (DETECTION_PARTITIONS): only the brands of these partitions are counted
        # here, the others by the instance owning theirs (its own database). None: every brand, here.
        self.owned_partitions = owned_partitions
        self.partitions = partitions
        self.reset_state = reset_state
        self.dispatcher = dispatcher
        self.telemetry = telemetry
        self.config = config
        self.tokenizer = tokenizer
        self.reason_model = reason_model
        self.idle_quiet_s = idle_quiet_s
        self.idle_margin_s = idle_margin_s
        self.clock = clock
        self.detector = self._load_detector()
        # Each brand's phase as of the last commit (`BuzzDetector.brand_states`), for /healthz and the feed.
        self.brand_states: dict[str, dict[str, Any]] = self.detector.brand_states()
        self.pending = PendingWork()
        self.totals: Counter[str] = Counter()
        # While commits fail: since when (wall time), how many, the last error (/healthz answers 503).
        self.failing: dict[str, Any] | None = None
        self._stale = False  # a failed commit could not reload the committed state: the next one does
        self._kept = False  # a commit the database could not take waits, kept, in `pending`
        self._ahead_said: float | None = None  # when tweets dated ahead of the clock were last logged
        self._lock = threading.Lock()
        self._last_message = clock()
        latest = self.detector.latest_event_time
        # (newest event time, wall time it arrived): the event clock runs no faster than the wall clock since.
        self._event_clock: tuple[float, float] | None = (
            None if latest is None else (latest, self._last_message)
        )

    def _load_detector(self) -> BuzzDetector:
        """The detector from the saved state; a fresh one, said in a WARNING, when none is saved.

        A saved state that cannot be read is a StateError naming the database, unless `reset_state`: then
        the row is set aside and the detector starts afresh.
        """
        where = self.store.location
        try:
            state = self.store.load_state()
            if state is not None:
                detector = BuzzDetector.from_state(state, self.tokenizer, self.reason_model, self.config)
                log.info("detector state resumed", extra={"database": where, "brands": len(detector.brands)})
                return detector
        except Exception as exc:  # whatever the row holds, a state that does not rebuild is unreadable
            if not self.reset_state:
                raise StateError(
                    f"the detector state in {where} is unreadable ({type(exc).__name__}: {exc}); {RESET_HINT}"
                ) from exc
            aside = self.store.set_aside_state()
            log.warning(
                f"the detector state in {where} was unreadable: set aside as {aside!r}",
                extra={"database": where, "set_aside_as": aside, "error": str(exc)[:300]},
            )
        log.warning(
            f"no saved detector state in {where}: the detector starts afresh, with no baselines",
            extra={"database": where, "seen_tweet_ids": self.store.counts()["tweets"]},
        )
        return BuzzDetector(self.config or DetectorConfig(), self.tokenizer, self.reason_model)

    def process(self, payloads: Sequence[bytes]) -> None:
        """Count and detect a batch of scored-topic messages (in delivery order)."""
        parsed: list[ScoredTweet] = []
        for data in payloads:
            try:
                parsed.append(ScoredTweet.from_dict(load_json(data)))
            except (SchemaError, ValueError, TypeError, KeyError, AttributeError) as exc:
                self.totals["malformed"] += 1
                self.telemetry.metric(names.DEAD_LETTERED, 1, {"reason": "malformed", "stage": "detection"})
                log.error("unreadable scored message skipped", extra={"error": str(exc)[:300]})
        if self.owned_partitions is not None:
            owned = [self._owned_part(one) for one in parsed]
            self.totals["not_owned"] += owned.count(None)
            parsed = [one for one in owned if one is not None]
        with self._lock:
            self._last_message = self.clock()
            not_after = self._last_message + MAX_AHEAD_S
            late_before = self.detector.stats["late"]
            candidates = [s.tweet.id for s in parsed if s.tweet.id not in self.pending.id_set]
            known = self.store.known(candidates)
            for scored in parsed:
                tweet_id = scored.tweet.id
                self.pending.messages += 1
                if tweet_id in known or tweet_id in self.pending.id_set:
                    self.totals["duplicates"] += 1
                    self.pending.duplicates += 1
                    continue
                self.pending.ids.append(tweet_id)
                self.pending.id_set.add(tweet_id)
                if scored.tweet.created_at.timestamp() > not_after:  # stored as seen, in no brand's figures
                    self.pending.ahead += 1
                    self.pending.first_ahead = self.pending.first_ahead or (
                        f"{tweet_id}, created_at {format_timestamp(scored.tweet.created_at)}"
                    )
                    continue
                for brand in dict.fromkeys(scored.tweet.brands):
                    self.pending.scored[(brand, scored.label)] += 1
                    self.pending.brands.add(brand)
                self.pending.alerts.extend(self.detector.observe(scored))
            self.pending.late += self.detector.stats["late"] - late_before
            latest = self.detector.latest_event_time
            if latest is not None and (self._event_clock is None or latest > self._event_clock[0]):
                self._event_clock = (latest, self._last_message)

    def _owned_part(self, scored: ScoredTweet) -> ScoredTweet | None:
        """The tweet restricted to the brands this instance owns (None: none of them)."""
        assert self.owned_partitions is not None
        brands = tuple(
            b for b in scored.tweet.brands if partition_of(b, self.partitions) in self.owned_partitions
        )
        if brands == scored.tweet.brands:
            return scored
        return replace(scored, tweet=replace(scored.tweet, brands=brands)) if brands else None

    def tick(self) -> bool:
        """On a quiet stream, close the minutes the event clock has passed; commit and dispatch their alerts.

        Call it whenever a pull brings nothing. It acts only when nothing is waiting for a commit and no
        message has come for `idle_quiet_s` (see the module docstring for how far it moves the watermark).
        Returns whether it closed minutes (and committed them). A failed commit is raised, as by
        `checkpoint`.
        """
        with self._lock:
            now = self.clock()
            if (
                self.pending.messages
                or self._event_clock is None
                or now - self._last_message < self.idle_quiet_s
            ):
                return False
            newest, arrived = self._event_clock
            event_now = min(now, newest + (now - arrived))
            before = self.detector.watermark
            alerts = self.detector.advance_watermark(
                event_now - self.detector.config.lateness_tolerance_s - self.idle_margin_s
            )
            if self.detector.watermark == before:
                return False
            self.pending.alerts.extend(alerts)
            self.pending.brands.update(self.detector.brands)  # every brand's minute closed: fresh metrics
            pending = self._commit()
        self._report(pending)
        return True

    @property
    def kept(self) -> bool:
        """Whether the work of a commit the database could not take waits for the next `checkpoint`."""
        return self._kept

    def checkpoint(self) -> None:
        """Commit ids + state + alerts in one transaction, then dispatch alerts and emit metrics.

        A commit the database cannot take for now (`store.retryable`: full, unreachable, failing over) is
        `CommitPending`: the work is kept, and the next checkpoint tries the same commit again; the caller
        holds its messages meanwhile. On any other failure the detector is reloaded from the last committed
        state and the error is raised: the caller must not ack, so the messages come again.
        """
        with self._lock:
            pending = self._commit()
        self._report(pending)

    def _commit(self) -> PendingWork:
        """Commit and reset the pending work (the lock is held); on failure see `checkpoint`."""
        pending, self.pending = self.pending, PendingWork()
        pending.started = time.perf_counter()
        self._kept = False
        try:
            if self._stale:  # it holds work no commit took (its reload failed): reloaded below, not committed
                raise StateError("the committed state had not been reloaded after a failed commit")
            changed = self.detector.changed_brands()
            state = self.detector.global_state_dict()
            state["brands"] = {brand: self.detector.brand_state_dict(brand) for brand in changed}
            self.store.commit(pending.ids, state, pending.alerts)
            self.detector.mark_saved(changed)
        except FencedError as exc:  # another instance holds the database or group now: not a failure here
            log.warning(f"commit refused: {exc}")
            self._reload()
            raise
        except Exception as exc:
            self._failed(exc)
            if not retryable(exc):  # a refused row: from the committed state, its messages again
                self._reload()
                raise
            self.pending, self._kept = pending, True  # the same commit next time (nothing came meanwhile)
            raise CommitPending(str(exc)) from exc
        if self.failing is not None:
            log.warning(
                "checkpoints work again",
                extra={"failures": self.failing["failures"], "failing_since": self.failing["since"]},
            )
            self.failing = None
        self.brand_states = self.detector.brand_states()
        self.totals["counted"] += len(pending.ids) - pending.ahead
        self.totals["alerts"] += len(pending.alerts)
        self.totals["late"] += pending.late
        self.totals["ahead"] += pending.ahead
        return pending

    def _failed(self, exc: Exception) -> None:
        """A commit failed: say so (a traceback once per run of failures), for the log and /healthz."""
        error = f"{type(exc).__name__}: {exc}"[:500]
        if self.failing is None:
            log.exception("checkpoint failed")
            since = format_timestamp(datetime.fromtimestamp(self.clock(), UTC))
            self.failing = {"database": self.store.location, "since": since, "failures": 0}
        else:
            log.warning(
                "checkpoint failed again", extra={"failures": self.failing["failures"], "error": error}
            )
        self.failing = {**self.failing, "failures": self.failing["failures"] + 1, "error": error}

    def _reload(self) -> None:
        """Back to the last committed state after a failed commit (at the next commit if unreadable)."""
        try:
            self.detector = self._load_detector()
            self._stale = False
        except Exception as exc:
            self._stale = True
            log.warning("the committed state could not be reloaded", extra={"error": str(exc)[:300]})

    def _report(self, pending: PendingWork) -> None:
        """Metrics of committed work, then the alerts out of the outbox."""
        for (brand, label), count in pending.scored.items():
            self.telemetry.metric(names.TWEETS_SCORED, count, {"brand": brand, "label": label})
        if pending.duplicates:
            self.telemetry.metric(names.DUPLICATES_SKIPPED, pending.duplicates, {"stage": "detection"})
        if pending.late:
            self.telemetry.metric(names.DEAD_LETTERED, pending.late, {"reason": "late", "stage": "detection"})
        if pending.ahead:
            ahead = {"reason": "ahead", "stage": "detection"}
            self.telemetry.metric(names.DEAD_LETTERED, pending.ahead, ahead)
            if self._ahead_said is None or self.clock() - self._ahead_said >= 60.0:
                self._ahead_said = self.clock()  # once a minute at most while a source keeps its clock wrong
                log.warning(
                    f"{pending.ahead:,} tweets dated more than {MAX_AHEAD_S:g} s ahead of this machine's "
                    f"clock were not counted (the first: {pending.first_ahead}; {self.totals['ahead']:,} "
                    "since the start): a clock or time zone is wrong where they come from (a local time "
                    "read as UTC?)",
                    extra={"tweets": pending.ahead, "since_start": self.totals["ahead"]},
                )
        watermark = self.detector.watermark  # the event time the figures are of (the app's time axis)
        for brand in sorted(pending.brands):
            snapshot = self.detector.snapshot(brand)
            dimensions = {"brand": brand}
            if watermark is not None:
                dimensions["event_time"] = format_timestamp(datetime.fromtimestamp(watermark, UTC))
            self.telemetry.metric(names.NEGATIVE_SHARE, snapshot["negative_share"], dimensions)
            self.telemetry.metric(names.BASELINE_NEGATIVE_SHARE, snapshot["baseline_share"], dimensions)
            self.telemetry.metric(names.SPIKE_SCORE, snapshot["score"], dimensions)
            self.telemetry.metric(names.TWEET_VOLUME, snapshot["volume"], dimensions)
            phase = self.brand_states.get(brand)
            if phase is not None:  # learning (it can alert meanwhile), normal or bad_buzz
                state_dimensions = {**dimensions, "state": phase["state"]}
                self.telemetry.metric(names.BRAND_STATE, phase["learning_progress"], state_dimensions)
        if pending.ids:
            self.telemetry.metric(
                names.PROCESSING_LATENCY_MS,
                (time.perf_counter() - pending.started) * 1000,
                {"stage": "checkpoint"},
            )
        if pending.alerts:
            crash_point("alert-committed")
        self.dispatch_outbox()

    def dispatch_outbox(self) -> int:
        """Claim, spool, mark and announce every committed, unsent alert (also at start-up, after a crash).

        Safe to repeat at any point: the spool is idempotent per alert key and only the dispatch that marks
        the row records the event (the dispatcher's module docstring gives the order and why). A partition
        group spools only what it claimed, with its lease at least `CLAIM_MARGIN_S` from running out; a
        claim refused by the epoch check raises FencedError (nothing spooled): the group has moved on.
        """
        sent = 0
        for key, alert in self.store.undispatched():
            try:
                claimed_until = self.store.claim_dispatch(key)
                if claimed_until is None:  # sent meanwhile, or claimed by the group's newer owner
                    continue
                if self.clock() + CLAIM_MARGIN_S >= claimed_until:  # kept for the next dispatch
                    log.warning("lease too close to its end to spool an alert", extra={"alert_key": key})
                    continue
                self.dispatcher.spool(key, alert)
                crash_point("alert-spooled")
                if self.store.mark_dispatched(key):
                    self.dispatcher.announce(key, alert)
                    sent += 1
                crash_point("alert-dispatched")
            except FencedError:
                log.warning("alert dispatch refused: the partition group moved on", extra={"alert_key": key})
                raise
            except Exception:  # kept in the outbox, tried again at the next checkpoint
                log.exception("alert dispatch failed; will retry", extra={"alert_key": key})
        return sent
