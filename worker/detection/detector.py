"""Per-brand bad-buzz detection in event time.

How it works (the README explains the why):
- Every tweet goes into its brand's minute bucket (event time). A minute is *closed* once the watermark,
  the latest event time seen minus `lateness_tolerance_s`, has passed its end. Before that, with
  `tick_seconds` set (30 s by default, see the config), the open minute is tested at each *tick* (every
  `tick_seconds` of watermark time, 30 s into it by default) over its tweets before the tick and
  the rest of the minute as usual traffic, against the whole minute's expectation, so a buzz is alerted
  once its evidence is in; a tick can start an episode (updates and ends wait for the closing), and is
  tested only when a tweet came since the previous one. A tick is passed once the watermark is, so all
  its tweets are in: a tweet up to the tolerance late is counted exactly as if it had come in order, and
  the alerts depend only on which tweets fell before which tick (or minute end): a replay gives the same
  alerts as live (and a restore: the ticks tested are saved, `tick_s`).
- Later tweets (a redelivery after a crash comes minutes late) are still counted in their own minute
  while that minute is *retained*, i.e. not yet learned by the baseline: the last
  `max(windows) + baseline_lag_minutes` closed minutes (2 h by default). Such a tweet is added to its
  minute's counts and to every window sum that holds that minute, and to the minute's tweets (so later
  alerts explain and sample it); it re-decides nothing: a minute is evaluated once, when it closes, so the
  alerts already emitted stand and none waits for stragglers; the windows evaluated from the next closed
  minute on include it. It counts in `stats["late_counted"]`. Baseline rule: a minute is learned once,
  when it leaves the retained history, with every tweet counted in it by then; a tweet for a minute
  already learned (older than the retained history, or before its brand's first tweet) is dropped and
  counted in `stats["late"]`, so no minute is learned twice. An outage is not learned: once the whole
  stream has been silent (no brand's tweet) for longer than a settled brand's traffic makes plausible
  (its hours' rates summed past `outage_silence_tweets`), its silent minutes are not learned, so the
  stream's return after an ingester or X outage is not a surge against a rate that learned it as zero
  (`DayProfileBaseline.outage`); a brand silent while others tweet learns its silence. A late tweet's
  weight (copies and authors, below) is taken against the tweets held when it arrives. A fresh detector
  starts at its earliest tweet minus the tolerance, and moves that start back for an earlier tweet until a
  brand has closed a minute, so a stream that starts out of order loses none of its first tweets.
- A brand not seen yet is the exception: its late tweets (within `max_gap_minutes`; the ingester fetches
  up to 7 days of a new brand from recent search, oldest first) wait as its history, up to
  `history_max_tweets` (its newest) for up to `history_max_brands` brands at once, counted in
  `stats["history"]`; at its first live tweet, or once the watermark is `HISTORY_SETTLE_MINUTES` past
  the last of them, a detector of its own replays them and the brand starts from that state, its past
  learned, its past buzzes neither alerted nor open (`_from_history`).
- At each closed minute, for each window (3, 5, 15, 60 minutes, and 30 for a quiet brand, one seen a
  day whose mean rate is under `thin_rate_per_minute`, or one still learning whose tweets so far per
  unit of its day shape are under it: `quiet_windows_minutes`, `_quiet_so_far`) ending there: the
  negative count is tested against the expected negatives (Poisson, signed-root deviance) and the
  negative share against the baseline share plus a margin (binomial likelihood ratio). Both must be
  significant (an intersection-union test): the window's score is min(count z, share z x fire_score /
  min_share_z), so
  it reaches `fire_score` only when the count z reaches `fire_score` AND the share z reaches
  `min_share_z` (`thin_min_share_z`, lower, for a quiet brand seen a day: under `thin_rate_per_minute`
  tweets a minute its share of a dozen tweets moves little; only while no episode is open nor ended
  within `thin_calm_minutes`, so a long storm's flare-ups are not each a new buzz), with enough
  negatives: more negatives than usual *and* a larger share of them. The
  negatives are tested against the non-negative volume: when more non-negative tweets came than
  expected, proportionally more negatives are expected too, so a surge of neutral or positive tweets, a
  news surge at the usual share or a day that does not follow the expected shape raises neither test.
  That surge is shrunk towards none by `surge_prior_tweets` (`_surge`): in a quiet brand's window of a
  few tweets one neutral tweet more than expected is no surge that multiplies the expected negatives.
  With a model's probabilities the non-negative tweets are estimated through its confusion (a calibrated
  model's negatives average E[p^2]/E[p], its other tweets (E[p] - E[p^2])/(1 - E[p])), so the 1 - p
  a buzz's negatives leak into the non-negative sum does not pass for a neutral surge.
- Each window's expected tweets and negatives are re-estimated at every minute from the brand's figures
  now (each hour of the day the window covers), and both tests are posterior-predictive: their variance
  adds the expectation's own (`Expectation.volume_tweets`, `share_tweets`: how many tweets it rests on),
  so a brand's first minutes, expected from a handful of tweets and the shipped prior, get wide tests
  that narrow as its data grows. There is no warm-up: a brand can alert from its first hour. The shipped
  prior's pseudo-tweets are scored as the brand's tweets will be: with the confusion of the scorer that
  the brands seen so far show (`_prior_confusion`; hard labels with human labels), so a model's mid
  probabilities in a new brand's first tweets are not read as sure as labels.
  While a brand's share rests on a few tweets the share test cannot pass in time (the prior is weak:
  real brands range from 7% to 79% negative); a window clearly more negative, by its own sampling
  noise, than both its null and a typical brand, yet short of the widened share test, is decided by the
  count test alone (`_share_can_tell`).
- Negatives are counted softly: each tweet adds its probability of being negative (`p_negative`; 1 or 0
  with hard labels, where everything below is exactly a count of labels). The model's probabilities
  carry its doubt: an unsure tweet adds little, so the expected negatives of normal traffic are right
  even though the model mislabels some of it. A soft count varies less than a count of labels, so both
  tests are quasi-likelihood tests: each signed-root deviance is divided by the root of the brand's
  dispersion (`DayProfileBaseline.expect`, learned from its normal traffic: 1 with hard labels).
  The share margin is meant on the true negative share; a calibrated model's mean probability moves by
  the share dispersion times the true share's move (Var(p) = Cov(p, label) when p is calibrated), so
  the soft share test uses `share_margin` x that dispersion. A window expected to hold more than
  `share_margin_tweets` tweets measures its share well: its margin shrinks as 1/sqrt(its expected tweets),
  so a brand at hundreds of tweets a minute fires on a share rise of a few points, which a brand at one
  tweet a minute could not tell from its usual wobble; but not below `share_margin_floor`: a brand's
  share wobbles from hour to hour by more than its sampling noise.
  Why: with hard labels the model's mistakes (a sixth of neutral tweets called negative, a sixth of
  negatives missed) both raise the baseline and dilute a buzz, so the tests needed more tweets to reach
  the same z than with human labels; soft counts with the right variance and margin recover most of
  that power (bench/detection.py; with human labels, p is 1 or 0 and nothing changes).
  The fewest-negatives rules (`min_negatives`, `min_excess_negatives`) are about tweets, so they count
  negative tweets: each tweet stands for (p - others' mean p) / (negatives' mean p - others'), between
  0 and 1 (`_negative_tweet`, through the confusion of its minute's expectation; p itself with hard
  labels), kept per minute and window beside the summed p (`negative_tweets`). Six complaints the model
  scores at 0.6 are six, not 3.6. The sum of p itself stays in the tests: no per-tweet weight of p
  separates a buzz much better (bench/soft_evidence.py).
- The baseline (hour-of-day volume and share, see `baseline.py`) learns from minutes once they are
  older than `baseline_lag_minutes`; until then a closed minute counts in the expectation (`recent`)
  once it is `reference_gap_minutes` old, and only in the tests of windows it is not part of (a window
  is compared with the data before it, so a buzz is never its own baseline). Both barely
  (`anomaly_weight`) count minutes that were unusual (inside an episode, with a score of `end_score`,
  or, once an episode starts, back to its estimated onset or its firing window), so a bad buzz does not
  hide itself, also while a brand learns;
  a volume surge of any sentiment is capped when learned, so a promotion does not dilute the share
  (against the expectation updated with the minute itself: a new brand's first minutes, expected from
  the vague prior, are learned as they come, so a brand at hundreds a minute knows its level in minutes).
- Hysteresis: an episode starts when a window with enough negatives scores `fire_score`; it ends after
  `end_quiet_minutes` closed minutes below `end_score` (`thin_end_quiet_minutes` for a quiet brand, whose
  15 minutes are three ordinary tweets: a storm's lull is not its end). A re-fire within
  `cooldown_minutes` of the end reopens the same episode, its flare-up counted afresh (an update once it
  holds `update_min_negatives` excess negatives: a second buzz soon after a first one is told, not
  swallowed). A quiet brand's flare-up after `end_quiet_minutes` quiet minutes (when a busy brand's episode
  would have ended), in its episode or within the cooldown, is told as an update as soon as it fires, by
  the tests of a new alert, counted afresh from its firing window. One episode = one "new" alert plus
  "update" alerts each time its excess negatives (observed minus expected, since the firing window) have
  grown by `update_growth` while the minute is still at the firing level.
- The tweet that triggered an alert is found exactly: the minute (closed, or up to the tick) is replayed
  tweet by tweet in (event time, id) order and the first prefix that crosses the threshold names it
  (`fired_at`).

Copies and authors: retweets and copies of a tweet (same `retweet_of`, or the same text without "RT @x:",
links and mentions) still in the 60-minute window count logarithmically in the test: n copies weigh
1 + ln(n), so a retweet storm of one (possibly mislabelled) tweet is not a bad buzz by itself, while a buzz
made of many distinct angry tweets is counted in full. One author's tweets (`TweetEvent.author_id`, when
known) still in the window count the same way, in the volume and the negatives alike: one person posting
ten complaints in an hour weighs 1 + ln(10) = 3.3 tweets, one voice, not a crowd. A tweet that is both (an
author's copies of their own tweet) takes the smaller of its two weights, not their product: it is
discounted once, so n copies of one's own tweet weigh 1 + ln(n), as n copies or n tweets do. Alerts report
the raw volume.

Duplicates: a tweet id already held for that brand (its open minutes and the last `max(windows)` minutes)
is ignored (`stats["duplicates"]`). Older redeliveries are the caller's job (the worker dedupes by id).
Event time is trusted: the caller should refuse timestamps from the future (the detection service does).
`stats["observed"]` counts every tweet with a brand; duplicates, late-counted and late (dropped) tweets are
counted per brand.
"""

from __future__ import annotations

import logging
import math
from bisect import insort
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from buzzwatch.schema import Alert, ScoredTweet
from worker.detection.baseline import (
    CLOCK_CHECK_MINUTES,
    HARD_LABELS,
    BrandLevel,
    DayProfileBaseline,
    Evidence,
    Expectation,
)
from worker.detection.config import BrandParams, DetectorConfig
from worker.detection.explain import (
    ReferenceCounts,
    Tokenizer,
    TweetRecord,
    default_tokenizer,
    explain,
    reference_counts,
)
from worker.detection.onset import estimate_onset
from worker.detection.state import (
    BrandState,
    ClosedMinute,
    Episode,
    MinuteTweets,
    WindowEval,
    WindowExpectation,
    WindowSums,
    brand_state_dict,
    brand_state_from_dict,
    inside_sums,
    recent_sum,
    weight_keys,
)
from worker.detection.stats import binomial_z, poisson_z

if TYPE_CHECKING:
    from models.reasons import ReasonModel

log = logging.getLogger(__name__)

STATE_VERSION = 1
MIN_SEPARATION = 0.1  # a model whose negatives' mean probability is this close to the others' says little
SECONDS_PER_MINUTE = 60
# A new brand's past comes in one burst (a poll of recent search, oldest first): once the watermark has
# moved this many minutes past its last tweet, the brand starts from it (and is saved with the state)
# without waiting for its first live tweet
HISTORY_SETTLE_MINUTES = 2
# A brand shows its scorer's confusion once it holds this many tweets, and a confusion closer than this
# gap (the mean p of a negative and of any other tweet) tells nothing: see `BuzzDetector._prior_confusion`
CONFUSION_MIN_TWEETS = 50.0
MIN_CONFUSION_GAP = 0.2
MIN_RECENT_MINUTES = 1e-6  # less recent evidence than this is rounding residue (a minute weighs >= 0.1)
SAVE_LAG_MINUTES = 15  # a brand's saved state is rewritten at least this often (see `changed_brands`)


@dataclass(slots=True)
class _Past:
    """A brand not seen yet: its tweets that came older than the watermark, waiting to be learned."""

    tweets: deque[ScoredTweet]
    seen: int  # the first minute not closed when its last tweet came


def _to_dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _episode_id(brand: str, minute: int) -> str:
    return f"{brand}:{_to_dt(minute * SECONDS_PER_MINUTE).strftime('%Y%m%dT%H%MZ')}"


class BuzzDetector:
    """Tracks every brand it sees; `observe` returns the alerts (new or update) a tweet's arrival fired.

    The tokenizer (default `models.text.tokenize`) and the negative-reason model (default none: reasons
    come from `ScoredTweet.negative_reason` only) are injected, so tests and oracle replays run without
    model files.
    """

    def __init__(
        self,
        config: DetectorConfig | None = None,
        tokenizer: Tokenizer | None = None,
        reason_model: ReasonModel | None = None,
    ) -> None:
        self.config = config or DetectorConfig()
        self._tokenizer = tokenizer
        self.reason_model = reason_model
        self._windows = tuple(self.config.windows_minutes)
        self._longest = max(self._windows)
        self._retained = self._longest + self.config.baseline_lag_minutes  # closed minutes not learned yet
        self._quiet_windows = frozenset(self.config.quiet_windows_minutes)
        self._brands: dict[str, BrandState] = {}
        self._order: list[str] = []  # brand names, sorted
        self._params: dict[str, BrandParams] = {}
        self._next_minute: int | None = None  # the first minute not closed yet
        self._ticked = 0.0  # seconds of the open minute (`_next_minute`) tested so far (see `_tick`)
        # The retained closed minutes in which any brand had a tweet: a brand's silent minute is an outage's
        # only when the whole stream was silent (`_learn`); rebuilt from the brands' minutes on a restore
        self._active: set[int] = set()
        self._closing = False  # a brand has closed a minute: the start no longer follows early tweets
        self._max_ts: float | None = None
        self._changed: set[str] = set()  # brands given tweets since their last save (`changed_brands`)
        self._saved_at: dict[str, int] = {}  # each brand's first minute not closed when it was last saved
        # Brands not seen yet: their tweets older than the watermark, learned at their first live tweet or
        # once the watermark is HISTORY_SETTLE_MINUTES past the last of them (`_from_history`)
        self._past: dict[str, _Past] = {}
        self._inherited_confusion: tuple[float, float] | None = None  # a history's detector: its parent's
        self.stats: dict[str, int] = {
            "observed": 0,
            "late_counted": 0,
            "late": 0,
            "duplicates": 0,
            "no_brand": 0,
            "unsupported_language": 0,
            "history": 0,
        }

    # ---- input ------------------------------------------------------------------------------------

    def observe(self, scored: ScoredTweet) -> list[Alert]:
        """Count one scored tweet for each of its brands; return the alerts closed minutes fired."""
        tweet = scored.tweet
        if not tweet.brands:
            self.stats["no_brand"] += 1
            return []
        ts = tweet.created_at.timestamp()
        self._note_active(int(ts // SECONDS_PER_MINUTE))
        if not scored.language_supported:
            # The model cannot read it: its verdict would raise or dilute the negative share alike, so it
            # is counted apart; its event time still moves the clock.
            self.stats["unsupported_language"] += 1
            return self._advance_to(ts) if self._next_minute is not None else []
        minute = int(ts // SECONDS_PER_MINUTE)
        if self._next_minute is None or (not self._closing and minute < self._next_minute):
            # The start is the earliest tweet seen minus the tolerance, until a brand closes a minute: a
            # stream that starts out of order (a replay, a service's first pull) loses none of its first
            # tweets.
            start = int((ts - self.config.lateness_tolerance_s) // SECONDS_PER_MINUTE)
            self._next_minute = start if self._next_minute is None else min(self._next_minute, start)
            self._ticked = 0.0
        record = TweetRecord(
            ts=ts,
            id=tweet.id,
            negative=scored.label == "negative",
            text=tweet.text,
            p_negative=float(
                scored.probabilities.get("negative", 1.0 if scored.label == "negative" else 0.0)
            ),
            reason=scored.negative_reason if scored.label == "negative" else None,
            retweet_of=tweet.retweet_of,
            author=tweet.author_id,
        )
        self.stats["observed"] += 1
        brands = tweet.brands if len(tweet.brands) == 1 else tuple(dict.fromkeys(tweet.brands))
        keys = weight_keys(record)
        for brand in brands:
            state = self._brands.get(brand)
            if state is not None and record.id in state.ids:
                self.stats["duplicates"] += 1
            elif minute >= self._next_minute:
                if state is None:
                    state = self._from_history(brand, minute, self._waiting(brand))
                state.ids[record.id] = keys
                state.pending.setdefault(minute, []).append(record)
                state.first_minute = min(state.first_minute, minute)
                self._changed.add(brand)
            elif state is not None and self._count_late(state, minute, record, keys):
                self.stats["late_counted"] += 1
                self._changed.add(brand)
            elif state is None and (past := self._past_of(brand, minute)) is not None:
                past.tweets.append(scored)
                past.seen = self._next_minute
                self.stats["history"] += 1
            else:
                self.stats["late"] += 1
        return self._advance_to(ts)

    def _advance_to(self, ts: float) -> list[Alert]:
        """Move the watermark when `ts` is the newest event time seen; return the alerts that fired."""
        if self._max_ts is None or ts > self._max_ts:
            self._max_ts = ts
            return self.advance_watermark(self._max_ts - self.config.lateness_tolerance_s)
        return []

    def advance_watermark(self, event_time: float | datetime) -> list[Alert]:
        """Close every minute that ends at or before `event_time` (seconds or datetime); return alerts.

        `observe` calls it; a live service may call it on a quiet stream with (event time it knows has
        passed) so the last minutes are evaluated without waiting for the next tweet.
        """
        if isinstance(event_time, datetime):
            event_time = event_time.timestamp()
        if self._next_minute is None:
            return []
        target = int(event_time // SECONDS_PER_MINUTE)
        alerts: list[Alert] = []
        while self._next_minute < target:
            if target - self._next_minute > self.config.max_gap_minutes and self._skip_gap(target):
                continue
            minute = self._next_minute
            for brand, past in list(self._past.items()):  # a past that came whole: its brand starts
                if minute - past.seen >= HISTORY_SETTLE_MINUTES:
                    self._from_history(brand, minute, self._waiting(brand))
            alerts.extend(self._tick_to(minute, SECONDS_PER_MINUTE))
            for brand in self._order:  # sorted: the alerts of one minute come out in one order
                state = self._brands[brand]
                if state.first_minute <= minute:
                    self._closing = True
                    alerts.extend(self._close_minute(state, minute))
            # learned by every brand, but one saved up to SAVE_LAG_MINUTES ago is closed again on a restore
            self._active.discard(minute - self._retained - SAVE_LAG_MINUTES)
            self._next_minute = minute + 1
            self._ticked = 0.0
        if self._next_minute == target:
            alerts.extend(self._tick_to(target, event_time - target * SECONDS_PER_MINUTE))
        return alerts

    def _note_active(self, minute: int) -> None:
        """Remember that the stream had a tweet in `minute`, while a brand may still learn that minute."""
        if self._next_minute is None or minute >= self._next_minute - self._retained:
            self._active.add(minute)

    def _ticks(self, after: float, until: float) -> list[float]:
        """The tick times (seconds into a minute, before its end) in (after, until]."""
        step = self.config.tick_seconds
        if step <= 0:
            return []
        ticks = []
        tick = (math.floor(after / step) + 1) * step
        while tick <= until and tick < SECONDS_PER_MINUTE:
            ticks.append(tick)
            tick += step
        return ticks

    def _tick_to(self, minute: int, seconds: float) -> list[Alert]:
        """Test the open `minute` at every tick up to `seconds` into it not tested yet; return the alerts."""
        alerts: list[Alert] = []
        for tick in self._ticks(self._ticked, seconds):
            for brand in self._order:
                state = self._brands[brand]
                if state.first_minute <= minute:
                    alerts.extend(self._tick(state, minute, tick))
            self._ticked = tick
        return alerts

    def flush(self) -> list[Alert]:
        """Close every minute up to the latest event seen (end of a replay)."""
        if self._max_ts is None:
            return []
        return self.advance_watermark((int(self._max_ts // SECONDS_PER_MINUTE) + 1) * SECONDS_PER_MINUTE)

    # ---- output -----------------------------------------------------------------------------------

    @property
    def latest_event_time(self) -> float | None:
        """The latest event time seen (seconds since the epoch), None before the first tweet."""
        return self._max_ts

    @property
    def watermark(self) -> float | None:
        """Event time up to which every minute is closed (seconds since the epoch), None before any tweet."""
        return None if self._next_minute is None else float(self._next_minute * SECONDS_PER_MINUTE)

    @property
    def brands(self) -> tuple[str, ...]:
        """The brands seen so far, in order of first appearance."""
        return tuple(self._brands)

    def brand_states(self) -> dict[str, dict[str, Any]]:
        """Each brand's phase, by brand name: see `brand_state`."""
        return {brand: self.brand_state(brand) for brand in self._order}

    def brand_state(self, brand: str) -> dict[str, Any]:
        """The brand's phase for status pages: "bad_buzz" while an episode is open, else "learning" until
        it has been seen `learning_minutes` closed minutes (it can alert meanwhile: its tests are wider
        while its data is thin), else "normal"; with the minutes seen and the learning progress (0-1).
        """
        state = self._brands.get(brand)
        if state is None:
            return {"state": "unknown", "minutes_seen": 0, "learning_progress": 0.0, "episode_id": None}
        minutes = _minutes_seen(state)
        progress = min(1.0, minutes / max(self.config.learning_minutes, 1))
        phase = "bad_buzz" if state.episode is not None else "learning" if progress < 1.0 else "normal"
        return {
            "state": phase,
            "minutes_seen": minutes,
            "learning_progress": round(progress, 4),
            "episode_id": state.episode.episode_id if state.episode else None,
        }

    def snapshot(self, brand: str) -> dict[str, Any]:
        """The brand's latest closed-minute figures for metrics and dashboards.

        Share and volume are those of the middle window (15 minutes by default); `score` is the alarm
        level: the best window score, min(count z, scaled share z), floored at 0 (it reaches
        `fire_score` when a window fires); `state` is the brand's phase (`brand_state`).
        """
        state = self._brands.get(brand)
        evals = state.last_evals if state else []
        phase = self.brand_state(brand)["state"]
        if not evals:
            return {
                "brand": brand,
                "known": state is not None,
                "state": phase,
                "negative_share": 0.0,
                "baseline_share": 0.0,
                "volume": 0,
                "baseline_volume": 0.0,
                "score": 0.0,
                "window_minutes": 0,
                "active": False,
                "episode_id": None,
            }
        window = evals[len(evals) // 2]
        return {
            "brand": brand,
            "known": True,
            "state": phase,
            "negative_share": round(window.negative_share, 4),
            "baseline_share": round(window.baseline_share, 4),
            "volume": round(window.volume, 2),
            "baseline_volume": round(window.expected_volume, 3),
            "score": round(self._alarm(evals), 3),
            "window_minutes": window.minutes,
            "active": state.episode is not None,
            "episode_id": state.episode.episode_id if state.episode else None,
        }

    # ---- the per-minute step ----------------------------------------------------------------------

    def _params_for(self, brand: str) -> BrandParams:
        params = self._params.get(brand)
        if params is None:
            params = self._params[brand] = self.config.params_for(brand)
        return params

    def _prior_confusion(self) -> tuple[float, float]:
        """How the scorer scores a negative tweet and any other (mean probabilities), as the brands seen so
        far show it: a new brand's prior pseudo-tweets are scored so (`DayProfileBaseline.prior_confusion`).

        Each brand holding `CONFUSION_MIN_TWEETS` tweets or more (learned and recent) weighs the same (a
        brand at hundreds of tweets a minute is one brand); for calibrated probabilities a negative's mean
        p is E[p^2] / E[p], any other's (E[p] - E[p^2]) / (1 - E[p]). Hard labels, (1, 0), before any
        brand holds that many, with human labels (exactly), or when the two are not `MIN_CONFUSION_GAP`
        apart. Why: with the prior's 2.45 pseudo-tweets as hard labels, a quiet new brand's first tweets
        scored by a model were read as far less uncertain than they are (a count dispersion near 1 where
        its tweets' is about 0.5), and its first buzz waited for more complaints.
        """
        if self._inherited_confusion is not None:
            return self._inherited_confusion
        moments = []
        for state in self._brands.values():
            overall, recent = state.baseline.overall, state.recent
            tweets = overall.total + recent.total
            if tweets >= CONFUSION_MIN_TWEETS:
                negative, squares = overall.negative + recent.negative, overall.squares + recent.squares
                moments.append((negative / tweets, squares / tweets))
        if not moments:
            return HARD_LABELS
        mean_p = sum(p for p, _ in moments) / len(moments)
        mean_square = sum(square for _, square in moments) / len(moments)
        if not 0.0 < mean_p < 1.0:
            return HARD_LABELS
        negative_p, other_p = mean_square / mean_p, max((mean_p - mean_square) / (1.0 - mean_p), 0.0)
        return (negative_p, other_p) if negative_p - other_p >= MIN_CONFUSION_GAP else HARD_LABELS

    def _new_brand(self, brand: str, minute: int) -> BrandState:
        baseline = DayProfileBaseline(
            self.config,
            utc_offset=self.config.utc_offset_of(brand, minute),
            zone=self.config.brand_zones.get(brand),
            prior_confusion=self._prior_confusion(),
        )
        state = BrandState(
            brand=brand,
            first_minute=minute,
            baseline=baseline,
            sums=[WindowSums() for _ in self._windows],
            inside=[Evidence() for _ in self._windows],
            reference=deque(maxlen=self.config.reference_size),
        )
        self._brands[brand] = state
        self._order = sorted(self._brands)
        return state

    def _past_of(self, brand: str, minute: int) -> _Past | None:
        """Where a late tweet of a brand not seen yet waits as its history, made if needed; None when it
        does not wait (older than `max_gap_minutes` before the watermark, or no room for its brand:
        `history_max_brands`)."""
        assert self._next_minute is not None
        if minute < self._next_minute - self.config.max_gap_minutes:
            return None
        past = self._past.get(brand)
        if past is None and len(self._past) < self.config.history_max_brands:
            past = self._past[brand] = _Past(deque(maxlen=self.config.history_max_tweets), self._next_minute)
        return past

    def _waiting(self, brand: str) -> Sequence[ScoredTweet]:
        """The brand's history, no longer waiting (none: empty)."""
        past = self._past.pop(brand, None)
        return () if past is None else past.tweets

    def _from_history(self, brand: str, minute: int, history: Sequence[ScoredTweet]) -> BrandState:
        """A brand that starts at `minute` (its first live tweet's, or the minute its past settled), learned
        first from its `history` (its tweets that came older than the watermark, in any order; none: a new
        brand) up to the first minute not closed, as if it had been watched then: a detector of its own
        replays them in event order and closes its minutes, and the brand's state moves here. The alerts
        of that replay are the past's and are not returned; a buzz of its history is learned as a buzz is
        (with little weight), and the brand starts calm (no open episode: a buzz still going on is alerted
        anew from its live tweets)."""
        if not history or self._next_minute is None:
            return self._new_brand(brand, minute)
        past = BuzzDetector(self.config, self._tokenizer)
        past._inherited_confusion = self._prior_confusion()  # the scorer's, as this detector's brands show it
        for scored in sorted(history, key=lambda s: (s.tweet.created_at, s.tweet.id)):
            past.observe(scored)
        past.advance_watermark(self._next_minute * SECONDS_PER_MINUTE)
        state = past._brands.get(brand)
        if state is None:  # no history, or none of it in a language the model reads
            return self._new_brand(brand, minute)
        state.episode = state.last_episode = None
        self._brands[brand] = state
        self._order = sorted(self._brands)
        self._changed.add(brand)
        return state

    def _evaluate(
        self,
        state: BrandState,
        params: BrandParams,
        observed: Sequence[tuple[float, float, float]] | None = None,
        expected_windows: Sequence[WindowExpectation] | None = None,
    ) -> list[WindowEval]:
        """Test every window: by default the closed windows (`state.sums` against `state.window_expected`),
        else each window's (tweets, negatives, negative tweets) in `observed` (a prefix of the newest
        minute's tweets)."""
        evals = []
        floor = self.config.min_rate_per_minute
        # A quiet brand (learned mean rate under thin_rate_per_minute, once it has been seen a day: a new
        # brand's first hours may be its night) is also tested on the quiet windows, and may need a smaller
        # share z (`thin_min_share_z`; a brand still learning keeps the usual one, its share is a guess)
        # while it is calm (`_calm`).
        quiet = self._quiet(state, params)
        share_at = params.thin_min_share_z if quiet and self._calm(state, params) else params.min_share_z
        # those windows are a quiet brand's (see the config), and a learning brand's that looks quiet so far
        skipped = () if quiet or self._quiet_so_far(state, params) else self._quiet_windows
        counts = (
            observed
            if observed is not None
            else [(sums.total, sums.negatives, sums.negative_tweets) for sums in state.sums]
        )
        for (volume, negative_count, negative_tweets), (
            expected_total,
            expected_negatives,
            expectation,
        ), minutes in zip(counts, expected_windows or state.window_expected, self._windows, strict=True):
            if minutes in skipped:  # a window only a quiet brand's tests use
                continue
            count_dispersion, share_dispersion = expectation.count_dispersion, expectation.share_dispersion
            share = expected_negatives / expected_total if expected_total > 0 else self.config.share_prior
            usual_volume = max(expected_total, floor * minutes)
            # The margin is on the true share (see above), and smaller for a window of thousands of tweets.
            relief = min(1.0, math.sqrt(params.share_margin_tweets / usual_volume))
            margin = max(
                params.share_margin * share_dispersion * relief, params.share_margin_floor * share_dispersion
            )
            expected = usual_volume * share
            # Posterior-predictive widening: the expectation is itself an estimate from
            # `volume_tweets` / `share_tweets` tweets, so its own variance adds to the window's.
            relative_variance = 1.0 / expectation.volume_tweets + share_dispersion * (1.0 - share) / (
                share * (expectation.share_tweets + 1.0)
            )
            count_factor = count_dispersion + expected * relative_variance
            # Negatives against the non-negative volume: when more non-negative tweets came than expected
            # (a news surge, a day shape the brand does not follow), proportionally more negatives are
            # expected too; the observed part of that expectation adds its noise (odds x its count).
            # With a model's probabilities, a negative tweet also adds 1 - p to the non-negative sum: the
            # non-negative tweets are estimated through the model's confusion (exact with hard labels).
            surge = _surge(
                _non_negatives(volume, negative_count, expectation),
                usual_volume * (1.0 - _true_share(share, expectation)),
                self.config.surge_prior_tweets,
            )
            expected_volume = usual_volume
            if surge > 1.0:
                expected *= surge
                expected_volume *= surge
                count_factor += count_dispersion * share / (1.0 - share) * (1.0 - 1.0 / surge)
            share_factor = share_dispersion * (1.0 + volume / (expectation.share_tweets + 1.0))
            count_z = poisson_z(negative_count, expected) / math.sqrt(count_factor)
            null_share = min(share + margin, 0.99)
            sampling_z = binomial_z(negative_count, volume, null_share)  # by its own sampling noise
            share_z = sampling_z / math.sqrt(share_factor)
            # a typical brand's share + margin, on the scorer's scale as the window's summed p is
            typical = _scored_share(self.config.share_prior, expectation) + margin
            if typical > null_share:  # must also be above a typical brand's share
                sampling_z = binomial_z(negative_count, volume, typical)
            share_score = share_z * params.fire_score / share_at  # its threshold reads as fire_score
            if not _share_can_tell(share_z, sampling_z, share_dispersion, share_at):
                share_score = count_z  # thin share data: the count test decides (see above)
                share_z = count_z * share_at / params.fire_score
            evals.append(
                WindowEval(
                    minutes=minutes,
                    volume=volume,
                    negatives=negative_count,
                    expected_volume=expected_total,
                    baseline_share=share,
                    expected_negatives=expected,
                    count_z=count_z,
                    share_z=share_z,
                    score=min(count_z, share_score),
                    eligible=_eligible(
                        negative_tweets,
                        (expected - expectation.other_p * expected_volume) / _spread(expectation),
                        params,
                    ),
                )
            )
        return evals

    def _quiet(self, state: BrandState, params: BrandParams) -> bool:
        """A quiet brand: seen a day (a new brand's first hours may be its night), its learned mean rate
        under `thin_rate_per_minute`."""
        overall = state.baseline.overall
        return (
            _minutes_seen(state) >= self.config.learning_minutes
            and overall.volume < params.thin_rate_per_minute * overall.minutes
        )

    def _quiet_so_far(self, state: BrandState, params: BrandParams) -> bool:
        """A brand still learning whose level so far is under `thin_rate_per_minute`: its tweets per unit of
        its day shape (mean 1), learned and recent, with the prior's tweet in one unit, so that a few tweets
        of its first night are not taken for a quiet brand, nor a busy brand's night, which its shape expects
        quiet. Only its windows are a quiet brand's: its thresholds stay those of a brand still learning."""
        if _minutes_seen(state) >= self.config.learning_minutes:
            return False
        overall, recent = state.baseline.overall, state.recent
        tweets = overall.volume + recent.volume + self.config.volume_prior_tweets
        return tweets < params.thin_rate_per_minute * (overall.exposure + recent.exposure + 1.0)

    def _flaring_up(self, state: BrandState, params: BrandParams, episode: Episode) -> bool:
        """A firing now is a quiet brand's flare-up, told at once as an update of `episode` (counted afresh
        from its firing window, not after `update_min_negatives` excess negatives): since its last alert
        the episode was quiet for `end_quiet_minutes` (`lapsed`), when a busy brand's would have ended and
        the firing been new (the minutes of its rise, above `end_score`, need not be quiet)."""
        return episode.lapsed and self._quiet(state, params)

    def _calm(self, state: BrandState, params: BrandParams) -> bool:
        """No episode open, nor one ended within `thin_calm_minutes`: a long storm's flare-ups, each tested
        against a share learned before it, passed the thin share z hour after hour as new buzzes."""
        if state.episode is not None:
            return False
        last = state.last_episode
        if last is None or last.ended_minute is None:
            return True
        assert self._next_minute is not None  # a brand with an episode has closed minutes
        return self._next_minute - last.ended_minute > params.thin_calm_minutes

    def _window_expected(
        self,
        state: BrandState,
        minute: int,
        newest_level: BrandLevel,
        newest: Expectation,
        pooled: Evidence,
    ) -> list[WindowExpectation]:
        """Each window's expected (tweets, negatives), from what the brand's data before the window says now.

        Re-estimated at every minute rather than summed from each minute's expectation when it closed: a
        new brand's first minutes were expected from a handful of tweets, and that guess must not stay in
        its windows for an hour. A window reaching into earlier hours of the day takes each hour's figures.
        A window is compared only with the data before it: its own minutes are left out of `recent`, so a
        buzz that began inside it (or fills a new brand's first hour) is not part of its own expectation.
        Their evidence is kept summed per window (`BrandState.inside`, moved on as minutes close), so
        leaving them out costs one subtraction, not one per minute. `newest` is the newest minute's
        expectation, from `newest_level` (the baseline's level with all of `recent`); the windows that
        hold none of `recent` share it and their other hours' expectations. `pooled`: the baseline's
        learned share evidence this minute (`DayProfileBaseline.pooled`), the same for every window.
        """
        gap = self.config.reference_gap_minutes
        held = len(state.closed)  # the newest minute is not appended yet: closed[-age] is `age` old
        baseline = state.baseline
        recent = state.recent
        hour_now = (minute // 60) % 24
        shared: dict[int, Expectation] = {hour_now: newest}  # the windows without minutes of `recent`
        shared_level: BrandLevel | None = None
        expected = []
        for window, inside in zip(self._windows, state.inside, strict=True):
            # `recent` holds the minutes from age gap + 1 on, the window those up to age window - 1
            span = min(window, held + 1)
            if span > gap + 1:  # the window's own minutes are left out of `recent`
                own = recent.minus(inside)
                # everything recent is inside: none left (no residue)
                level = baseline.level(own if own.minutes >= MIN_RECENT_MINUTES else Evidence(), pooled)
                by_hour: dict[int, Expectation] = {}
            else:
                if shared_level is None:
                    shared_level = (
                        newest_level
                        if recent.minutes >= MIN_RECENT_MINUTES
                        else baseline.level(Evidence(), pooled)
                    )
                level, by_hour = shared_level, shared
            tweets = negatives = 0.0
            last = minute
            remaining = span
            while remaining > 0:
                in_hour = min(remaining, last % 60 + 1)
                hour = baseline.hour_of(last)
                figures = by_hour.get(hour)
                if figures is None:
                    figures = by_hour[hour] = baseline.expect_hour(hour, level)
                tweets += in_hour * figures.rate
                negatives += in_hour * figures.rate * figures.share
                remaining -= in_hour
                last -= in_hour
            expected.append(WindowExpectation(tweets, negatives, by_hour[hour_now]))
        return expected

    @staticmethod
    def _alarm(evals: Sequence[WindowEval]) -> float:
        """How alarming the minute is: the best window score (0 when no window's share is high)."""
        return max(0.0, max(e.score for e in evals))

    @staticmethod
    def _firing(evals: Sequence[WindowEval], params: BrandParams) -> WindowEval | None:
        candidates = [e for e in evals if e.eligible and e.score >= params.fire_score]
        return max(candidates, key=lambda e: (e.score, -e.minutes)) if candidates else None

    def _close_minute(self, state: BrandState, minute: int) -> list[Alert]:
        if minute % CLOCK_CHECK_MINUTES == 0 and state.baseline.follow_clock(minute):
            self._clock_turned(state)
        params = self._params_for(state.brand)
        records = sorted(state.pending.pop(minute, ()), key=_arrival_order)
        weights = [_weight(state.copies, state.ids[record.id]) for record in records]
        total = sum(weights)
        negatives = sum(w * r.p_negative for w, r in zip(weights, records, strict=True))
        squares = sum(w * r.p_negative * r.p_negative for w, r in zip(weights, records, strict=True))
        expectation, state.window_expected = self._open_expected(state, minute)
        state.open_expected = None
        counted = sum(
            w * _negative_tweet(r.p_negative, expectation) for w, r in zip(weights, records, strict=True)
        )
        expected_total = expectation.rate
        expected_negatives = expected_total * expectation.share
        entry = ClosedMinute(
            minute,
            total,
            negatives,
            expected_total,
            expected_negatives,
            False,
            squares,
            expectation.volume_tweets,
            counted,
        )
        state.closed.append(entry)
        count = len(state.closed)
        for sums, window in zip(state.sums, self._windows, strict=True):  # (inline: the hottest loop)
            sums.total += total
            sums.negatives += negatives
            sums.expected_total += expected_total
            sums.expected_negatives += expected_negatives
            sums.negative_tweets += counted
            if count > window:
                leaving = state.closed[-window - 1]
                sums.total -= leaving.total
                sums.negatives -= leaving.negatives
                sums.expected_total -= leaving.expected_total
                sums.expected_negatives -= leaving.expected_negatives
                sums.negative_tweets -= leaving.negative_tweets
        state.chunks.append(MinuteTweets(minute, records))

        evals = self._evaluate(state, params)
        state.last_evals = evals
        top_score = self._alarm(evals)
        alerts: list[Alert] = []
        episode = state.episode
        firing = self._firing(evals, params)
        if episode is not None and (firing is None or not self._flaring_up(state, params, episode)):
            alerts.extend(
                self._continue_episode(state, params, episode, minute, records, weights, negatives, top_score)
            )
        elif firing is not None:
            alerts.extend(
                self._start_episode(
                    state, params, minute, records, weights, firing, negatives, counted, expectation
                )
            )
        entry.flagged = state.episode is not None or top_score >= params.end_score
        gap = self.config.reference_gap_minutes
        held = len(state.closed)
        if held > gap:  # the minute `gap` old joins `recent`, and the windows that hold it
            self._add_evidence(state, state.closed[-gap - 1], self._holding(state, gap, closing=False))
        for inside, window in zip(state.inside, self._windows, strict=True):
            if gap < window - 1 < held:  # the minute `window - 1` old leaves the next minute's window
                inside.add(state.closed[-window].evidence(self.config, state.baseline), -1.0)

        self._age_out(state, minute)
        return alerts

    def _adopt_zone(self, state: BrandState, minute: int) -> None:
        """On a restart, a brand follows the zone the brands file names for it now, from `minute` on: one
        saved before zones were kept, or whose zone was named, corrected or moved in the file since, takes
        it at its offset then, its learned hours as they are (UTC hours of its own traffic); see
        `DayProfileBaseline.adopt_zone`. A zone taken out of the file leaves the brand on the one it had."""
        configured = self.config.brand_zones.get(state.brand)
        if configured is None or configured == state.baseline.zone:
            return
        if state.baseline.adopt_zone(configured, minute):
            self._clock_turned(state)

    def _clock_turned(self, state: BrandState) -> None:
        """The brand's hours turned with its clock (`DayProfileBaseline.follow_clock`), between two
        closings: the running sums of its closed minutes' evidence are summed again with the new shape,
        so that each minute leaves them as it is counted now."""
        state.recent = recent_sum(state.closed, self.config, state.baseline)
        state.inside = inside_sums(state.closed, self.config, state.baseline)
        state.open_expected = None

    def _open_expected(self, state: BrandState, minute: int) -> tuple[Expectation, list[WindowExpectation]]:
        """The expectation of the minute not closed yet and of each window ending with it; kept between its
        ticks and its closing (nothing they rest on changes meanwhile but a late tweet, which drops it)."""
        if state.open_expected is None or state.open_expected[0] != minute:
            pooled = state.baseline.pooled(self._recent_hours(state))
            level = state.baseline.level(state.recent, pooled)
            expectation = state.baseline.expect_hour((minute // 60) % 24, level)
            windows = self._window_expected(state, minute, level, expectation, pooled)
            state.open_expected = (minute, expectation, windows)
        return state.open_expected[1], state.open_expected[2]

    def _recent_hours(self, state: BrandState) -> dict[int, tuple[float, int]]:
        """The tweets and minutes of `recent` (the closed minutes past the gap, not learned yet) by clock
        hour, while the brand learns (`DayProfileBaseline.surges` compares its first day's hours)."""
        hours: dict[int, tuple[float, int]] = {}
        if not state.baseline.first_day:
            return hours
        for entry in islice(state.closed, max(len(state.closed) - self.config.reference_gap_minutes, 0)):
            clock = entry.minute // 60
            tweets, minutes = hours.get(clock, (0.0, 0))
            hours[clock] = (tweets + entry.total, minutes + 1)
        return hours

    def _tick(self, state: BrandState, minute: int, tick: float) -> list[Alert]:
        """Test the open minute's first `tick` seconds: its tweets before then (all in: the watermark has
        passed) and the rest of the minute as usual traffic, against the whole minute's expectation; a
        window that fires starts the episode now, not when the minute closes.

        Only a brand with no episode open (nor one that ended within the cooldown), and only when a tweet
        came since the previous tick: the minute's closing does the rest, as without ticks.
        """
        if state.episode is not None:
            return []
        start = minute * SECONDS_PER_MINUTE
        records = state.pending.get(minute, ())
        if not any(start + tick - self.config.tick_seconds <= r.ts < start + tick for r in records):
            return []
        params = self._params_for(state.brand)
        last = state.last_episode
        if (
            last is not None
            and last.ended_minute is not None
            and minute - last.ended_minute <= params.cooldown_minutes
        ):
            return []
        seen = sorted((r for r in records if r.ts < start + tick), key=_arrival_order)
        # weighed as the closing will, registered nowhere: a copy of the counts of their groups
        held = {key: state.copies.get(key, 0) for record in seen for key in state.ids[record.id]}
        weights = [_weight(held, state.ids[record.id]) for record in seen]
        total = sum(weights)
        negatives = sum(w * r.p_negative for w, r in zip(weights, seen, strict=True))
        expectation, expected = self._open_expected(state, minute)
        counted = sum(
            w * _negative_tweet(r.p_negative, expectation) for w, r in zip(weights, seen, strict=True)
        )
        count = len(state.closed)
        bases = [  # each window's closed minutes once the open minute joins it
            (sums.total, sums.negatives, sums.negative_tweets)
            if count < window
            else (
                sums.total - state.closed[-window].total,
                sums.negatives - state.closed[-window].negatives,
                sums.negative_tweets - state.closed[-window].negative_tweets,
            )
            for sums, window in zip(state.sums, self._windows, strict=True)
        ]
        # The rest of the minute counted as usual traffic: the tick fires when the closing would, unless
        # the rest of the minute brings more non-negative tweets than usual.
        rest = (1.0 - tick / SECONDS_PER_MINUTE) * expectation.rate
        usual = (
            total + rest,
            negatives + rest * expectation.share,
            counted + rest * _negative_tweet(expectation.share, expectation),
        )
        evals = self._evaluate(
            state, params, [(t + usual[0], n + usual[1], c + usual[2]) for t, n, c in bases], expected
        )
        firing = self._firing(evals, params)
        if firing is None:
            return []
        carried = usual[1] - expectation.rate * expectation.share  # charged again at the closing
        return [
            self._open_episode(
                state, params, minute, seen, weights, firing, bases, expected, expectation, carried
            )
        ]

    def _holding(self, state: BrandState, age: int, closing: bool) -> list[Evidence]:
        """The running evidence sums (`recent`, the windows' `inside`) that hold the closed minute `age`
        minutes older than the newest; `closing`: while the newest is being closed, before `_close_minute`
        moves the sums on (the next minute's `recent` and windows then reach one minute further back)."""
        next_age = age + (0 if closing else 1)  # its age when the next minute is evaluated
        gap = self.config.reference_gap_minutes
        sums = [state.recent] if next_age >= gap + 1 else []
        sums.extend(
            inside
            for inside, window in zip(state.inside, self._windows, strict=True)
            if gap + 1 <= next_age <= window - 1
        )
        return sums

    def _add_evidence(
        self, state: BrandState, entry: ClosedMinute, sums: list[Evidence], sign: float = 1.0
    ) -> None:
        """Add (sign -1: take out) a closed minute's evidence to (from) the running sums that hold it."""
        if sums:
            evidence = entry.evidence(self.config, state.baseline)
            for held in sums:
                held.add(evidence, sign)

    def _count_late(self, state: BrandState, minute: int, record: TweetRecord, keys: tuple[str, ...]) -> bool:
        """Add a tweet to its closed minute if that minute is retained (see the module docstring)."""
        assert self._next_minute is not None
        age = self._next_minute - 1 - minute  # 0: the newest closed minute
        if age >= len(state.closed):  # learned by the baseline already, or before the brand's history
            return False
        entry = state.closed[-age - 1]
        assert entry.minute == minute, "closed minutes are consecutive"
        kept = age < len(state.chunks)  # the minute's tweets are still held (inside the longest window)
        weight = _weight(state.copies, keys, keep=kept)
        negative = weight * record.p_negative
        holding = self._holding(state, age, closing=False)
        self._add_evidence(state, entry, holding, -1.0)
        state.open_expected = None  # the open minute's expectation rests on what changes here
        # its negative tweets through the confusion of the newest closed minute (none after a restore)
        confusion = state.window_expected[0].expectation if state.window_expected else None
        counted = weight * (
            record.p_negative if confusion is None else _negative_tweet(record.p_negative, confusion)
        )
        entry.total += weight
        entry.negatives += negative
        entry.squares += negative * record.p_negative
        entry.negative_tweets += counted
        self._add_evidence(state, entry, holding)
        for sums, window in zip(state.sums, self._windows, strict=True):
            if age < window:
                sums.total += weight
                sums.negatives += negative
                sums.negative_tweets += counted
        if kept:
            insort(state.chunks[-age - 1].records, record, key=_arrival_order)
            state.ids[record.id] = keys
        elif not entry.flagged and record.negative:
            state.reference.append(record.text)
        return True

    def _start_episode(
        self,
        state: BrandState,
        params: BrandParams,
        minute: int,
        records: list[TweetRecord],
        weights: list[float],
        firing: WindowEval,
        negatives: float,
        counted: float,
        confusion: Expectation,
    ) -> list[Alert]:
        last = state.last_episode
        reopened = state.episode  # open only at a quiet brand's flare-up (`_flaring_up`)
        if (
            reopened is None
            and last is not None
            and last.ended_minute is not None
            and minute - last.ended_minute <= params.cooldown_minutes
        ):
            if self._quiet(state, params):  # it ended after `thin_end_quiet_minutes`: a flare-up
                reopened = last
            else:
                # Within the cooldown: the same bad buzz flaring up again, not a new one. The flare-up is
                # counted afresh, from its firing window's excess (the minute's own part is charged
                # below): an update once it holds `update_min_negatives` excess negatives, not once the
                # whole episode's excess has doubled, so a second buzz that starts soon after the first
                # one ended is told, not swallowed by the first one's episode.
                minute_excess = negatives - state.closed[-1].expected_negatives
                last.negatives = firing.negatives - firing.expected_negatives - minute_excess
                last.alerted_negatives = 0.0
                last.ended_minute = None
                last.quiet_minutes = 0
                state.episode = last
                return self._continue_episode(
                    state, params, last, minute, records, weights, negatives, firing.score
                )
        minute_total = sum(weights)
        bases = [
            (sums.total - minute_total, sums.negatives - negatives, sums.negative_tweets - counted)
            for sums in state.sums
        ]
        return [
            self._open_episode(
                state,
                params,
                minute,
                records,
                weights,
                firing,
                bases,
                state.window_expected,
                confusion,
                reopened=reopened,
            )
        ]

    def _open_episode(
        self,
        state: BrandState,
        params: BrandParams,
        minute: int,
        records: list[TweetRecord],
        weights: list[float],
        firing: WindowEval,
        bases: list[tuple[float, float, float]],
        expected: Sequence[WindowExpectation],
        confusion: Expectation,
        carried: float | None = None,
        reopened: Episode | None = None,
    ) -> Alert:
        """Start an episode at `minute` (closing it, or at a tick: `carried`, the excess of the minute's
        part its closing will charge again) and alert it from the tweet that made it certain: the first of
        `records` (the minute's, in arrival order) at which a window fires (`bases`: each window's counts
        without the minute; `confusion`: the minute's expectation, whose confusion counted its negative
        tweets). A quiet brand's flare-up (`_flaring_up`) is `reopened`'s instead: an update, its excess
        counted afresh from the firing window."""
        trigger_index, trigger_eval = len(records) - 1, firing
        prefix_total = prefix_neg = prefix_counted = 0.0
        for index, (record, weight) in enumerate(zip(records, weights, strict=True)):
            prefix_total += weight
            prefix_neg += weight * record.p_negative
            prefix_counted += weight * _negative_tweet(record.p_negative, confusion)
            observed = [
                (total + prefix_total, negatives + prefix_neg, counted + prefix_counted)
                for total, negatives, counted in bases
            ]
            crossing = self._firing(self._evaluate(state, params, observed, expected), params)
            if crossing is not None:
                trigger_index, trigger_eval = index, crossing
                break
        ticking = carried is not None
        excess = firing.negatives - firing.expected_negatives - (carried or 0.0)
        alerted = trigger_eval.negatives - trigger_eval.expected_negatives
        if reopened is None:
            kind = "new"
            episode = Episode(
                episode_id=_episode_id(state.brand, minute - trigger_eval.minutes + 1),
                start_minute=minute,
                negatives=excess,
                alerted_negatives=alerted,
                last_alert_minute=minute,
                onset_minute=self._onset(state),
            )
            since_onset = minute - episode.onset_minute + 1 if episode.onset_minute is not None else 0
            flagged = max(trigger_eval.minutes, since_onset)
        else:
            kind, episode, flagged = "update", reopened, trigger_eval.minutes
            episode.negatives, episode.alerted_negatives, episode.last_alert_minute = excess, alerted, minute
            episode.alerts += 1
            episode.quiet_minutes, episode.lapsed, episode.ended_minute = 0, False, None
        state.episode = episode
        if ticking:  # the minute is not closed yet: its closing flags it (an episode is open)
            self._flag_window(state, flagged - 1, closing=False)
        else:
            self._flag_window(state, flagged)
        return self._alert(state, episode, minute, records, trigger_index, trigger_eval, kind)

    def _flag_window(self, state: BrandState, minutes: int, closing: bool = True) -> None:
        """Mark the last `minutes` closed minutes (the firing window, or back to the buzz's onset) unusual:
        the buzz began before it was certain (a slow start), and must not be learned as normal."""
        if minutes <= 0:
            return
        state.open_expected = None  # rests on the evidence changed here
        for age, entry in enumerate(reversed(list(state.closed)[-minutes:])):
            if entry.flagged:
                continue
            holding = self._holding(state, age, closing=closing)
            self._add_evidence(state, entry, holding, -1.0)
            entry.flagged = True
            self._add_evidence(state, entry, holding)

    def _continue_episode(
        self,
        state: BrandState,
        params: BrandParams,
        episode: Episode,
        minute: int,
        records: list[TweetRecord],
        weights: list[float],
        negatives: float,
        top_score: float,
    ) -> list[Alert]:
        """Grow the episode by this minute's excess negatives; an update if it grew enough; end if quiet."""
        alerts = []
        expected_now = state.closed[-1].expected_negatives
        before = episode.negatives - expected_now  # the minute's expectation is charged first
        episode.negatives = before + negatives
        episode.quiet_minutes = 0 if top_score >= params.end_score else episode.quiet_minutes + 1
        episode.lapsed = episode.lapsed or episode.quiet_minutes >= params.end_quiet_minutes
        needed = max(
            episode.alerted_negatives * params.update_growth,
            episode.alerted_negatives + params.update_min_negatives,
        )
        if (
            episode.negatives >= needed
            and top_score >= params.fire_score
            and minute - episode.last_alert_minute >= params.update_min_interval_minutes
        ):
            trigger_index, running = len(records) - 1, before
            for index, (record, weight) in enumerate(zip(records, weights, strict=True)):
                running += weight * record.p_negative
                if running >= needed:
                    trigger_index = index
                    break
            window = max(state.last_evals, key=lambda e: (e.score, -e.minutes))
            episode.alerted_negatives = episode.negatives
            episode.last_alert_minute = minute
            episode.alerts += 1
            episode.lapsed = False
            alerts.append(self._alert(state, episode, minute, records, trigger_index, window, "update"))
        end_after = params.thin_end_quiet_minutes if self._quiet(state, params) else params.end_quiet_minutes
        if episode.quiet_minutes >= end_after:
            episode.ended_minute = minute
            state.last_episode = episode
            state.episode = None
        return alerts

    @staticmethod
    def _onset(state: BrandState) -> int | None:
        """The estimated start of a buzz firing at the newest closed minute, after the previous episode."""
        last = state.last_episode
        after = last.ended_minute if last is not None and last.ended_minute is not None else None
        entries = [e for e in state.closed if after is None or e.minute > after]
        return estimate_onset(
            [e.minute for e in entries],
            [e.negatives for e in entries],
            [e.expected_negatives for e in entries],
        )

    def _age_out(self, state: BrandState, minute: int) -> None:
        """Move tweets past the longest window to the reference corpus, and old minutes into the baseline."""
        oldest_kept = minute - self._longest + 1
        while state.chunks and state.chunks[0].minute < oldest_kept:
            chunk_minute, chunk = state.chunks.popleft()
            flagged = state.closed[-(minute - chunk_minute) - 1].flagged
            for record in chunk:
                _forget(state.copies, state.ids.pop(record.id))
                if not flagged and record.negative:  # the explanation compares with usual negatives
                    state.reference.append(record.text)
        while len(state.closed) > self._retained:
            self._learn(state, state.closed.popleft())

    def _learn(self, state: BrandState, entry: ClosedMinute) -> None:
        """Fold one old closed minute into the baseline, robustly (see `DayProfileBaseline.contribution`),
        unless it belongs to an outage: the whole stream silent for longer than the brand's traffic makes
        plausible (`DayProfileBaseline.outage`)."""
        evidence = entry.evidence(self.config, state.baseline)
        state.recent.add(evidence, -1.0)
        hour = state.baseline.hour_of(entry.minute)
        stream_tweets = entry.total or float(entry.minute in self._active)
        if not state.baseline.outage(hour, stream_tweets):
            state.baseline.learn(hour, evidence, entry.total, entry.minute // 60)

    def _skip_gap(self, target: int) -> bool:
        """Jump over a long event-time silence; False when a pending minute must be closed first.

        The windows are emptied into the baseline and open episodes end; the baseline learns the silence
        from `max_gap_minutes` before `target` (or from the first pending minute, if earlier), as closing
        those minutes would: by the clock hour (`DayProfileBaseline.learn_silence`) up to the retained
        history (`max(windows) + baseline_lag_minutes`) before `target` or the first pending minute, and
        closing resumes there, so the windows and the retained minutes are as the closings left them.
        """
        assert self._next_minute is not None
        pending = min((m for s in self._brands.values() for m in s.pending), default=target)
        resume = min(pending, target - self.config.max_gap_minutes)
        if resume <= self._next_minute:
            return False
        closing = max(resume, min(pending, target - self._retained))  # closed minute by minute from there on
        self._changed.update(self._brands)  # a saved brand cannot replay the jump: all are saved again
        for state in self._brands.values():
            for chunk in state.chunks:
                for record in chunk.records:
                    state.ids.pop(record.id, None)
            state.chunks.clear()
            state.copies.clear()
            while state.closed:
                self._learn(state, state.closed.popleft())
            state.recent = Evidence()  # nothing left unlearned (no float residue)
            state.inside = [Evidence() for _ in self._windows]
            state.sums = [WindowSums() for _ in self._windows]
            if state.episode is not None:
                state.episode.ended_minute = self._next_minute
                state.last_episode, state.episode = state.episode, None
            state.first_minute = max(state.first_minute, resume)
            if closing > state.first_minute:
                state.baseline.learn_silence(state.first_minute, closing - state.first_minute)
        self._active = {minute for minute in self._active if minute >= closing}  # the rest is learned
        self._next_minute = closing
        self._ticked = 0.0
        return True

    # ---- alerts -----------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer used for explanations (resolved on first use)."""
        if self._tokenizer is None:
            self._tokenizer = default_tokenizer()
        return self._tokenizer

    def _reference(self, state: BrandState, minute: int) -> ReferenceCounts:
        """The brand's reference term counts, recounted at most once an event-time hour (they are slow)."""
        hour = minute // 60
        if state.reference_hour != hour or state.reference_counts is None:
            state.reference_counts = reference_counts(
                list(state.reference), self.tokenizer, state.reference_forms, state.brand
            )
            state.reference_hour = hour
        return state.reference_counts

    def _alert(
        self,
        state: BrandState,
        episode: Episode,
        minute: int,
        records: list[TweetRecord],
        trigger_index: int,
        window: WindowEval,
        kind: str,
    ) -> Alert:
        if records:
            trigger = records[trigger_index]
        else:  # the window crossed without a tweet this minute: name the latest tweet it holds
            trigger = max((r for chunk in state.chunks for r in chunk.records), key=_arrival_order)
        window_start_minute = minute - window.minutes + 1

        chunks: Iterable[MinuteTweets] = state.chunks
        if not state.chunks or state.chunks[-1].minute != minute:  # at a tick: the open minute's tweets
            chunks = [*state.chunks, MinuteTweets(minute, records)]

        def held_since(first_minute: int) -> list[TweetRecord]:
            return [
                r
                for chunk in chunks
                if chunk.minute >= first_minute
                for r in chunk.records
                if (r.ts, r.id) <= (trigger.ts, trigger.id)
            ]

        in_window = held_since(window_start_minute)
        volume = len(in_window)
        negatives = sum(r.p_negative for r in in_window)
        authors = {r.author for r in in_window if r.author is not None}
        onset = episode.onset_minute
        # A first alert is explained from the buzz's estimated start: its whole run-up, not only the window.
        early = kind == "new" and onset is not None and onset < window_start_minute
        explained = held_since(onset) if early and onset is not None else in_window
        try:
            details = explain(
                explained,
                self._reference(state, minute),
                self.tokenizer,
                self.reason_model,
                top_terms=self.config.top_terms,
                samples=self.config.samples,
                brand=state.brand,
            )
        except Exception:  # an alert is never dropped: send it without the explanation
            log.exception("alert explanation failed", extra={"brand": state.brand})
            details = {"top_terms": (), "top_hashtags": (), "reasons": {}, "samples": (), "sample_ids": ()}
        return Alert(
            brand=state.brand,
            fired_at=_to_dt(trigger.ts),
            window_start=_to_dt(window_start_minute * SECONDS_PER_MINUTE),
            window_end=_to_dt(trigger.ts),
            negative_share=round(negatives / volume, 4) if volume else 0.0,
            baseline_share=round(window.baseline_share, 4),
            volume=volume,
            score=round(window.score, 3),
            top_terms=tuple(details["top_terms"]),
            sample_ids=tuple(details["sample_ids"]),
            kind=kind,
            episode_id=episode.episode_id,
            baseline_volume=round(window.expected_volume, 3),
            top_hashtags=tuple(details["top_hashtags"]),
            reasons=dict(details["reasons"]),
            samples=tuple(details["samples"]),
            authors=len(authors) if authors else None,
            started_at=_to_dt(onset * SECONDS_PER_MINUTE) if onset is not None else None,
            main_reason=details.get("main_reason"),
            samples_share=details.get("samples_share"),
            terms_share=details.get("terms_share"),
        )

    # ---- persistence ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The whole detector as JSON-ready plain data (the config included)."""
        return {
            **self.global_state_dict(),
            "brands": {brand: self.brand_state_dict(brand) for brand in self._brands},
        }

    def global_state_dict(self) -> dict[str, Any]:
        """What is not any brand's (the config, the watermark, the stats): `state_dict` without its brands."""
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "next_minute": self._next_minute,
            "tick_s": self._ticked,
            "max_ts": self._max_ts,
            "stats": dict(self.stats),
            "active": sorted(self._active),
        }

    def brand_state_dict(self, brand: str) -> dict[str, Any]:
        """One brand's part of `state_dict`, with the first minute not closed yet (its "next_minute")."""
        return {
            **brand_state_dict(self._brands[brand]),
            "next_minute": self._next_minute,
            "tick_s": self._ticked,
        }

    def changed_brands(self, max_lag_minutes: int = SAVE_LAG_MINUTES) -> list[str]:
        """The brands an incremental checkpoint must write, in order of first appearance.

        Closing a minute changes every brand, but a saved brand can replay its closings: `from_state`
        closes the minutes from the brand's saved "next_minute" to the saved watermark, from the pending
        tweets the brand was saved with, and gets the same state (the closing is deterministic). So a brand
        must be written only when it was given tweets since its last save (`mark_saved`), when a gap was
        skipped, or when it was last saved `max_lag_minutes` closed minutes ago or more: a restart replays
        at most that many minutes per brand.
        """
        if self._next_minute is None:
            return []
        oldest = self._next_minute - max_lag_minutes
        return [
            brand
            for brand in self._brands
            if brand in self._changed or self._saved_at.get(brand, oldest) <= oldest
        ]

    def mark_saved(self, brands: Iterable[str]) -> None:
        """These brands' `brand_state_dict` is committed (as of the current watermark)."""
        if self._next_minute is None:
            return
        for brand in brands:
            self._saved_at[brand] = self._next_minute
            self._changed.discard(brand)

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        tokenizer: Tokenizer | None = None,
        reason_model: ReasonModel | None = None,
        config: DetectorConfig | None = None,
    ) -> BuzzDetector:
        """Resume from `state_dict` output (optionally with a new config, e.g. changed thresholds).

        A brand saved at an earlier watermark than the state's (its own "next_minute", see
        `changed_brands`) closes its minutes up to the state's watermark, as it did before the restart;
        the alerts of those closings were committed then and are not returned again. A brand saved
        without its own watermark (a whole state saved by an earlier version) counts as changed, and so
        does every brand with a config other than the saved one. With other windows than the saved ones,
        each window's sums are rebuilt from the retained closed minutes (a window longer than that
        history starts partial, as on a fresh start).
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported detector state version {state.get('version')!r}")
        saved_config = DetectorConfig.from_dict(state["config"])
        detector = cls(config or saved_config, tokenizer, reason_model)
        saved_windows = tuple(saved_config.windows_minutes)
        saved_gap = saved_config.reference_gap_minutes
        next_minute = detector._next_minute = state["next_minute"]
        ticked = detector._ticked = float(state.get("tick_s", 0.0))  # saved before ticks: none tested
        detector._max_ts = state["max_ts"]
        detector.stats.update(state.get("stats", {}))
        loaded = []
        for brand, payload in state["brands"].items():
            brand_state = brand_state_from_dict(detector.config, brand, payload)
            saved_at = payload.get("next_minute", next_minute)
            if saved_at is not None:  # (the clock of its saved hours: closing its minutes since turns it)
                detector._adopt_zone(brand_state, saved_at)
            if detector._windows != saved_windows:  # new windows: summed again from the closed minutes
                brand_state.sums = [WindowSums.over(brand_state.closed, w) for w in detector._windows]
            if detector._windows != saved_windows or detector.config.reference_gap_minutes != saved_gap:
                brand_state.inside = inside_sums(brand_state.closed, detector.config, brand_state.baseline)
            detector._brands[brand] = brand_state
            if "next_minute" not in payload:  # saved whole by an earlier version: to be saved on its own
                detector._changed.add(brand)
            loaded.append((brand_state, payload, saved_at))
        detector._active = {  # as saved, and every brand's retained minutes with a tweet (a state saved
            # before it was kept), before any brand closes more
            *state.get("active", ()),
            *(
                minute
                for brand_state in detector._brands.values()
                for minute in chain(
                    (entry.minute for entry in brand_state.closed if entry.total > 0), brand_state.pending
                )
            ),
        }
        for brand_state, payload, saved_at in loaded:
            if saved_at is not None:
                detector._saved_at[brand_state.brand] = saved_at
                # its ticks and closings since, as they ran then (their alerts were committed then); a
                # brand saved before ticks were tested had none
                since = payload.get("tick_s")
                for minute in range(saved_at, next_minute + 1):
                    if brand_state.first_minute <= minute:
                        end = ticked if minute == next_minute else SECONDS_PER_MINUTE
                        after = float(since) if minute == saved_at and since is not None else 0.0
                        for tick in detector._ticks(after, end) if since is not None else ():
                            detector._tick(brand_state, minute, tick)
                        if minute < next_minute:
                            detector._close_minute(brand_state, minute)
        detector._order = sorted(detector._brands)
        detector._closing = any(s.closed or s.baseline.minutes_seen for s in detector._brands.values())
        if detector.config.to_dict() != saved_config.to_dict():
            detector._changed.update(detector._brands)
        return detector


def _minutes_seen(state: BrandState) -> int:
    """The brand's closed minutes: those its baseline learned and those still waiting to be."""
    return state.baseline.minutes_seen + len(state.closed)


def _spread(expectation: Expectation) -> float:
    """How much higher a negative tweet's mean probability is than any other's (1 with hard labels)."""
    return max(expectation.negative_p - expectation.other_p, MIN_SEPARATION)


def _true_share(share: float, expectation: Expectation) -> float:
    """The share of negative tweets behind a mean negative probability, through the model's confusion."""
    return min(max((share - expectation.other_p) / _spread(expectation), 0.01), 0.99)


def _scored_share(share: float, expectation: Expectation) -> float:
    """The mean negative probability of tweets at a true negative share, through the model's confusion
    (`_true_share` the other way; the share itself with hard labels)."""
    return share * expectation.negative_p + (1.0 - share) * expectation.other_p


def _negative_tweet(p_negative: float, expectation: Expectation) -> float:
    """How much of one negative tweet a tweet with that probability stands for, through the model's
    confusion and at most one (p itself with hard labels): the fewest-negatives rules are about tweets,
    and a buzz's complaints score 0.6 on average on general tweets while ordinary tweets score 0.14, so
    summed probabilities counted six complaints as 3.6; capped, a sure tweet never counts as two where
    the confusion is misjudged."""
    return min(max((p_negative - expectation.other_p) / _spread(expectation), 0.0), 1.0)


def _eligible(negative_tweets: float, expected: float, params: BrandParams) -> bool:
    """Enough negative tweets for a window to fire: `min_negatives` (or `thin_min_negatives` clear as a
    count of tweets) and `min_excess_negatives` above the `expected` ones."""
    expected = max(expected, 0.0)  # an hour's mean probability below the confusion's floor expects none
    return negative_tweets - expected >= params.min_excess_negatives and (
        negative_tweets >= params.min_negatives
        or (
            negative_tweets >= params.thin_min_negatives
            and poisson_z(negative_tweets, expected) >= params.fire_score
        )
    )


def _share_can_tell(share_z: float, sampling_z: float, dispersion: float, min_share_z: float) -> bool:
    """False when the window's share is clearly above both the null (baseline + margin) and a typical
    brand's share (the prior's + margin, as the scorer scores it: `_scored_share`) by its own sampling
    noise (`sampling_z`: the binomial z of the window against the larger of the two, before any widening),
    yet the share test (`share_z`, widened by the uncertainty of the baseline share) does not reach
    `min_share_z` in this window.

    The share test is posterior-predictive: its variance adds that of the baseline share, which for a new
    brand rests on the prior (a few tweets: real brands range from 7% to 79% negative) and the brand's first
    tweets, so even a window at 90% negative cannot pass it. What holds it back then is only how little
    the baseline share is known; the count test decides alone, as its own variance carries that same
    uncertainty, and the negatives are tested against the non-negative volume, so a surge at the usual
    share still does not fire it. The brand's own share estimate is unsure then (a first dozen tweets with
    one negative read as 8%), so the window must also be more negative than a typical brand.

    Asked of this window, not of a window of any length: asked whether the share test could pass at all
    (its bound as the window grows, 2 (share_tweets + 1) KL(share || null) / dispersion), a window all
    negative stood by a share test it could not pass in time while one at 95% went to the count test
    (tuning seed 3's Orbital, the labels: count z 4.1, share z 1.5 for nine tweets out of nine).
    """
    return share_z >= min_share_z or sampling_z / math.sqrt(dispersion) < min_share_z


def _surge(observed: float, expected: float, prior_tweets: float) -> float:
    """How many times more non-negative tweets came than expected, shrunk towards 1 by `prior_tweets`.

    A Gamma prior on the rate's multiplier, centred on 1 and weighing `prior_tweets` tweets: a quiet
    brand's 3-minute window expected to hold 0.4 non-negative tweets that holds one has not surged 2.5
    times (that guess multiplied its expected negatives, and hid a buzz of a few tweets), while a news
    surge of dozens of tweets is measured as before.
    """
    return (observed + prior_tweets) / (expected + prior_tweets)


def _non_negatives(volume: float, negatives: float, expectation: Expectation) -> float:
    """How many of `volume` tweets with `negatives` summed probabilities are not negative (estimated)."""
    others = volume - negatives
    return max(expectation.negative_p * others - (1.0 - expectation.negative_p) * negatives, 0.0) / _spread(
        expectation
    )


def _arrival_order(record: TweetRecord) -> tuple[float, str]:
    """The order tweets are replayed in within a minute: event time, then id."""
    return record.ts, record.id


def _weight(held: dict[str, int], keys: tuple[str, ...], keep: bool = True) -> float:
    """A tweet's weight given the tweets of its groups (`keys`: its `weight_keys`) already held; `keep`
    registers it among them.

    The k-th tweet of a group still in the window weighs ln(k) - ln(k - 1): n copies of a tweet count
    1 + ln(n), as in the explanation, and so do n tweets of one author. One amplified tweet, or one
    person's stream of tweets, is one opinion, not n. A tweet in two groups (an author's copy of their
    own tweet) takes the smaller weight: discounted once, not twice.
    """
    weight = 1.0
    for key in keys:
        seen = held.get(key, 0)
        if keep:
            held[key] = seen + 1
        if seen:
            weight = min(weight, math.log1p(1.0 / seen))
    return weight


def _forget(held: dict[str, int], keys: tuple[str, ...]) -> None:
    """Unregister a tweet that left the window from its groups (`keys`: its `weight_keys`)."""
    for key in keys:
        left = held.get(key, 0) - 1
        if left > 0:
            held[key] = left
        else:
            held.pop(key, None)
