"""A brand's normal traffic: volume per minute and negative share, by hour of day, adapting over days.

Each hour of the day keeps an EWMA of tweets per minute and decayed counts of (negative, total) tweets.
An hour bucket with little data leans on the brand's all-hours figures (shrinkage), which start from the
shipped prior (`detector_prior.json`: a day shape of volume and a negative share across real brands), so
a quiet night or a brand seen for minutes still gets a sensible expectation, and the share of a night
with three tweets is mostly the day's share. `Expectation` also says how many tweets the figures rest on,
so the detector's tests can widen while a brand is new.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from worker.detection.config import DetectorConfig, zone_offset_hours
from worker.detection.stats import poisson_z

HOURS = 24
# a brand's zone is asked for its offset this often (`follow_clock`): every zone's summer time begins and
# ends on a quarter hour of UTC
CLOCK_CHECK_MINUTES = 15
MIN_DISPERSION = 0.25  # a model whose probabilities barely vary must not make every wobble significant
HARD_LABELS = (1.0, 0.0)  # (mean p of a negative, of any other tweet) with human labels: no confusion
SETTLED_TWEETS = 1e9  # the evidence of an expectation saved without it: settled (the surge cap as before)


@dataclass
class Ewma:
    """Running mean until `horizon` observations, then an exponentially weighted one (weights allowed)."""

    mean: float = 0.0
    weight: float = 0.0

    def update(self, value: float, horizon: float, weight: float = 1.0) -> None:
        """Fold in one observation with the given weight."""
        self.weight = min(self.weight + weight, horizon)
        self.mean += (weight / self.weight) * (value - self.mean)

    def to_row(self) -> list[float]:
        """JSON-ready form: [mean, weight]."""
        return [self.mean, self.weight]

    @classmethod
    def from_row(cls, row: Sequence[float]) -> Ewma:
        """Rebuild from `to_row`."""
        mean, weight = row
        return cls(float(mean), float(weight))


@dataclass
class DecayedShare:
    """Negative and total counts, decayed geometrically so old days weigh less.

    `negative` sums each tweet's probability of being negative (1 or 0 with hard labels); `squares` sums
    the squared probabilities, which measure how uncertain the labels are (see `dispersion`).
    """

    negative: float = 0.0
    total: float = 0.0
    squares: float = 0.0

    def update(self, minute: Evidence, horizon: float) -> None:
        """Decay by one step of a `horizon`-minute memory (as long as the minute's weight), then add."""
        keep = 1.0 - minute.minutes / horizon
        self.negative = self.negative * keep + minute.negative
        self.total = self.total * keep + minute.total
        self.squares = self.squares * keep + minute.squares

    def to_row(self) -> list[float]:
        """JSON-ready form: [negative, total, squares]."""
        return [self.negative, self.total, self.squares]

    @classmethod
    def from_row(cls, row: Sequence[float]) -> DecayedShare:
        """Rebuild from `to_row`; a row saved before squares were kept counted hard labels (p^2 = p)."""
        negative, total = float(row[0]), float(row[1])
        return cls(negative, total, float(row[2]) if len(row) > 2 else negative)


@dataclass(slots=True)
class Evidence:
    """Weighted sums over minutes of a brand's traffic: what its rate and share are estimated from.

    A minute inside an episode weighs `anomaly_weight`, and a surge is capped (`DayProfileBaseline.
    contribution`). The volume is measured against the exposure, minutes weighted by the day shape of
    their hour, so a brand seen only at night still expects its afternoon to be busier.
    """

    minutes: float = 0.0
    exposure: float = 0.0
    volume: float = 0.0
    negative: float = 0.0  # summed negative probabilities of the tweets counted in the share
    total: float = 0.0  # tweets counted in the share
    squares: float = 0.0  # summed squared negative probabilities

    def add(self, other: Evidence, sign: float = 1.0) -> None:
        """Add (or with sign -1, remove) another minute's evidence."""
        self.minutes += sign * other.minutes
        self.exposure += sign * other.exposure
        self.volume += sign * other.volume
        self.negative += sign * other.negative
        self.total += sign * other.total
        self.squares += sign * other.squares

    def scale(self, factor: float) -> None:
        """Multiply every sum by `factor` (a decay step)."""
        self.minutes *= factor
        self.exposure *= factor
        self.volume *= factor
        self.negative *= factor
        self.total *= factor
        self.squares *= factor

    def minus(self, other: Evidence) -> Evidence:
        """New sums: these without `other`'s (a part of them)."""
        return Evidence(
            self.minutes - other.minutes,
            self.exposure - other.exposure,
            self.volume - other.volume,
            self.negative - other.negative,
            self.total - other.total,
            self.squares - other.squares,
        )

    def decay_add(self, other: Evidence, horizon: float) -> None:
        """Decay by one step of a `horizon`-minute memory (a step as long as `other`'s weight), then add."""
        keep = 1.0 - other.minutes / horizon
        self.minutes = self.minutes * keep + other.minutes
        self.exposure = self.exposure * keep + other.exposure
        self.volume = self.volume * keep + other.volume
        self.negative = self.negative * keep + other.negative
        self.total = self.total * keep + other.total
        self.squares = self.squares * keep + other.squares

    def to_list(self) -> list[float]:
        """JSON-ready form."""
        return [getattr(self, name) for name in self.__slots__]


@dataclass
class FirstDayHour:
    """One clock hour of a brand's first day as learned: its evidence, raw tweets and minutes."""

    evidence: Evidence = field(default_factory=Evidence)
    tweets: float = 0.0
    minutes: int = 0

    def to_list(self) -> list[float]:
        """JSON-ready form: [tweets, minutes, *evidence]."""
        return [self.tweets, self.minutes, *self.evidence.to_list()]

    @classmethod
    def from_row(cls, row: Sequence[float]) -> FirstDayHour:
        """Rebuild from `to_list`."""
        return cls(Evidence(*map(float, row[2:])), float(row[0]), int(row[1]))


class Expectation(NamedTuple):
    """A brand's expected traffic in one hour of the day, and how much data that expectation rests on.

    (A named tuple: the detector makes four or five a brand-minute, and a frozen dataclass costs three
    times as much to build.)"""

    rate: float  # tweets per minute
    share: float  # negative share
    count_dispersion: float  # see `DayProfileBaseline.expect`
    share_dispersion: float
    volume_tweets: float  # tweets (prior included) behind the rate: few while a brand is new
    share_tweets: float  # tweets (prior included) behind the share
    negative_p: float = 1.0  # mean negative probability of a negative tweet (1 with hard labels) ...
    other_p: float = 0.0  # ... and of any other tweet (0 with hard labels): the model's confusion


class BrandLevel(NamedTuple):
    """The hour-independent part of a brand's expectations (`DayProfileBaseline.level`)."""

    level: float  # tweets a minute per unit of day shape
    level_tweets: float  # tweets (prior included) behind the level
    share: float  # all-hours negative share, pooled with the prior
    share_tweets: float  # tweets (prior included) behind it
    count_dispersion: float  # before the floor (see `DayProfileBaseline.expect`)
    share_dispersion: float  # before the floor
    other_p: float  # mean negative probability of a tweet that is not negative, before the floor at 0


@dataclass
class DayProfileBaseline:
    """Expected tweets per minute and negative share for each hour of the day, for one brand."""

    config: DetectorConfig
    hourly_volume: list[Ewma] = field(default_factory=lambda: [Ewma() for _ in range(HOURS)])
    hourly_share: list[DecayedShare] = field(default_factory=lambda: [DecayedShare() for _ in range(HOURS)])
    overall: Evidence = field(default_factory=Evidence)
    minutes_seen: int = 0
    tweets_seen: float = 0.0
    # The brand's first day (its first `learning_minutes` learned), clock hour by clock hour as learned
    # (decayed as `overall` is), kept while it learns; see `surges`
    first_day: dict[int, FirstDayHour] = field(default_factory=dict)
    # Hours the brand's zone is ahead of UTC (None: no zone configured): its day shape, `shape`, is the
    # shipped day turned to its clock (`DetectorConfig.day_shape_at`), and its learned hours are UTC hours
    # of that clock; `zone`, whose summer time they follow (`follow_clock`): the brands file's when the
    # brand was first seen, or when a restart found another there (`adopt_zone`); None: no zone named (the
    # shipped day), or, in a state saved before zones were kept and none named since, its offset kept
    utc_offset: int | None = None
    zone: str | None = None
    # The minute of the last turn (`follow_clock`): a closed minute before it is still counted and learned
    # for a couple of hours after it, in the hour its own clock gave it (`hour_of`)
    turned_at: int | None = None
    # How the prior's pseudo-tweets are scored: (mean negative probability of a negative, of any other
    # tweet). (1, 0), hard labels, unless the detector knew its scorer's confusion when the brand was new
    # (`BuzzDetector._prior_confusion`): then the prior speaks the model's scale, as the brand's tweets do.
    prior_confusion: tuple[float, float] = HARD_LABELS
    # The tweets a settled brand's current run of empty learned minutes should have held, by its hours'
    # learned rates; over `outage_silence_tweets` the run is an outage and no longer learned (`learn`)
    silence_expected: float = 0.0
    # ... and a learning brand's run, by its expectations (`outage`)
    silence_learning: float = 0.0
    shape: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.shape = self.config.day_shape_at(self.utc_offset)

    def contribution(
        self,
        hour: int,
        total: float,
        negative: float,
        squares: float,
        expected_total: float,
        weight: float,
        expected_tweets: float = SETTLED_TWEETS,
    ) -> Evidence:
        """What one closed minute of that hour teaches (weight < 1 for minutes that looked unusual).

        `negative` and `squares` sum the minute's negative probabilities and their squares;
        `expected_tweets` is how many tweets the expectation `expected_total` rested on
        (`Expectation.volume_tweets`).

        Robust to surges: the volume is capped at `surge_cap` times the usual rate (at least
        `surge_floor` tweets), and a bigger minute's share counts as if it held only that many tweets,
        so one promotion or retweet storm neither inflates the volume nor dilutes the negative share.
        The usual rate is the expectation updated with the minute itself (a Gamma-Poisson posterior
        mean, the expectation weighing as `expected_tweets` tweets): once a brand's volume rests on
        thousands of tweets that is the expectation, but a new brand's first minutes, expected from
        the vague prior (one tweet), are learned as they come, so a brand at hundreds of tweets a
        minute learns its level in minutes rather than at `surge_cap` times a guess each minute.
        """
        cfg = self.config
        usual = expected_total * (expected_tweets + total) / (expected_tweets + expected_total)
        cap = max(cfg.surge_cap * usual, cfg.surge_floor)
        share_weight = weight * min(1.0, cap / total) if total else 0.0
        return Evidence(
            minutes=weight,
            exposure=weight * self.shape[hour],
            volume=weight * min(total, cap),
            negative=share_weight * negative,
            total=share_weight * total,
            squares=share_weight * squares,
        )

    def follow_clock(self, minute: int) -> bool:
        """Turn the hours of the day to the brand's clock when its zone's offset has changed by `minute`
        (minutes since the epoch): summer time begins or ends. People tweet by their clock, so what was
        learned of each local hour moves to the UTC hour that local hour now falls in, and the day shape
        with it. True when it turned (the caller's sums of closed minutes' evidence are then stale:
        their exposure reads the shape)."""
        if self.zone is None or self.utc_offset is None:
            return False
        offset = zone_offset_hours(self.zone, minute)
        turn = offset - self.utc_offset
        if not turn:
            return False
        self.hourly_volume = [self.hourly_volume[(hour + turn) % HOURS] for hour in range(HOURS)]
        self.hourly_share = [self.hourly_share[(hour + turn) % HOURS] for hour in range(HOURS)]
        self.utc_offset = offset
        self.shape = self.config.day_shape_at(offset)
        self.turned_at = minute
        return True

    def hour_of(self, minute: int) -> int:
        """The hour of the day a minute (since the epoch) is counted in, learned and expected: its UTC hour,
        on the brand's clock now. A minute before the last turn (`turned_at`), which the windows still hold
        and which is learned only after `baseline_lag_minutes`, came under its old clock: it belongs to the
        UTC hour that holds its local hour now, where the turn moved what was learned of that local hour."""
        hour = (minute // 60) % HOURS
        if self.turned_at is None or minute >= self.turned_at:
            return hour
        assert self.zone is not None and self.utc_offset is not None  # a turn follows a zone's clock
        return (hour + zone_offset_hours(self.zone, minute) - self.utc_offset) % HOURS

    def adopt_zone(self, zone: str, minute: int) -> bool:
        """Follow `zone`'s clock from `minute` on (a restart found it in the brands file, where the state
        kept none or another): its offset then, the hours learned so far kept as they are (UTC hours of the
        brand's own traffic, right whatever its clock), the day shape turned to it. True when the shape
        turned."""
        offset = zone_offset_hours(zone, minute)
        turned = offset != self.utc_offset
        self.zone, self.utc_offset = zone, offset
        self.shape = self.config.day_shape_at(offset)
        return turned

    def outage(self, hour: int, tweets: float) -> bool:
        """Whether a closed minute of that hour with `tweets` (the whole stream's: a brand silent while
        others tweet is not an outage) belongs to an outage, and so is not to be learned: a run of such
        empty minutes that should by now have held `outage_silence_tweets` tweets, by a settled brand's
        learned rate of each hour. A learning brand's rate is its expectation from what it has learned
        (its own run, `silence_learning`), as uncertain as the tweets it rests on: the run must be as
        unlikely under a negative binomial of that many tweets (a brand known from 10 tweets must miss 191
        expected ones, not 30). Counts the minute into the run (a minute with a tweet ends it)."""
        if tweets > 0:
            self.silence_expected = self.silence_learning = 0.0
            return False
        if self.first_day or self.minutes_seen < self.config.learning_minutes:
            self.silence_expected = 0.0
            expected = self.expect_hour(hour, self.level(Evidence(), self.overall))
            limit = self.config.outage_silence_tweets
            self.silence_learning, outage = _silence_run(
                self.silence_learning, expected.rate, limit, expected.volume_tweets
            )
            return outage
        self.silence_learning = 0.0
        return self._silent_minute(self.hourly_volume[hour].mean)

    def _silent_minute(self, rate: float) -> bool:
        """Count one more empty minute, expected to hold `rate` tweets, into a settled brand's run (no
        further once it is an outage); whether the run is now an outage."""
        self.silence_expected, outage = _silence_run(
            self.silence_expected, rate, self.config.outage_silence_tweets
        )
        return outage

    def learn(self, hour: int, minute: Evidence, tweets: float, clock_hour: int | None = None) -> None:
        """Fold in one closed minute's `contribution` (`tweets`: its raw count, for `tweets_seen`;
        `clock_hour`: its minute // 60, to keep the brand's first day by the hour, see `surges`). The
        detector learns no minute of an outage (`outage`)."""
        cfg = self.config
        self.hourly_volume[hour].update(
            minute.volume / minute.minutes, 60.0 * cfg.volume_horizon_days, minute.minutes
        )
        self.hourly_share[hour].update(minute, 60.0 * cfg.share_horizon_days)
        self.overall.decay_add(minute, cfg.global_horizon_minutes)
        if self.first_day:
            keep = 1.0 - minute.minutes / cfg.global_horizon_minutes
            for stretch in self.first_day.values():
                stretch.evidence.scale(keep)
        if self.minutes_seen < cfg.learning_minutes:
            if clock_hour is not None:
                stretch = self.first_day.setdefault(clock_hour, FirstDayHour())
                stretch.evidence.add(minute)
                stretch.tweets += tweets
                stretch.minutes += 1
        elif self.first_day:
            self.first_day.clear()
        self.minutes_seen += 1
        self.tweets_seen += tweets

    def learn_silence(self, minute: int, minutes: int) -> None:
        """Learn `minutes` closed minutes without a tweet from `minute` on (minutes since the epoch), as as
        many `learn` calls would, in O(clock hours) past the brand's first day: a detector that skips a long
        gap (`max_gap_minutes`, a week) spent seconds a brand closing the silence minute by minute.

        While the brand learns (its first day is kept by the clock hour, see `surges`) the minutes are
        learned one by one; after it, each clock hour's run folds in at once, equal to its minute steps up
        to rounding: the hour's volume mean decays as a running mean of zeros, then exponentially, the
        share counts and the all-hours evidence geometrically, and the minutes add their exposure. The
        brand's hours follow its clock through the silence (`follow_clock`, at each quarter hour, then at
        each clock hour), as the closings would have turned them. The whole stream is silent: a settled
        brand learns it up to its outage (`outage`) and no further, to the minute.
        """
        cfg = self.config
        end = minute + minutes
        while minute < end and (self.first_day or self.minutes_seen < cfg.learning_minutes):
            if minute % CLOCK_CHECK_MINUTES == 0:
                self.follow_clock(minute)
            hour = (minute // 60) % HOURS
            if not self.outage(hour, 0.0):  # (a learning brand has none: this resets the run)
                self.learn(hour, Evidence(1.0, self.shape[hour]), 0.0, minute // 60)
            minute += 1
        volume_horizon = 60.0 * cfg.volume_horizon_days
        share_keep = 1.0 - 1.0 / (60.0 * cfg.share_horizon_days)
        overall_keep = 1.0 - 1.0 / cfg.global_horizon_minutes
        overall = self.overall
        while minute < end:
            if minute % CLOCK_CHECK_MINUTES == 0:
                self.follow_clock(minute)
            steps = min(end, (minute // 60 + 1) * 60) - minute  # the rest of this clock hour
            hour = (minute // 60) % HOURS
            bucket = self.hourly_volume[hour]
            learned = self._silent_steps(bucket, steps, volume_horizon)
            running = min(learned, max(int(volume_horizon - bucket.weight), 0))  # steps before the horizon
            if running:
                bucket.mean *= bucket.weight / (bucket.weight + running)  # the product of (w - 1) / w
            bucket.mean *= (1.0 - 1.0 / volume_horizon) ** (learned - running)
            bucket.weight = min(bucket.weight + learned, volume_horizon)
            share = self.hourly_share[hour]
            share_decay = share_keep**learned
            share.negative *= share_decay
            share.total *= share_decay
            share.squares *= share_decay
            decay = overall_keep**learned
            added = (1.0 - decay) / (1.0 - overall_keep)  # sum of overall_keep^k, k < learned
            overall.scale(decay)
            overall.minutes += added
            overall.exposure += added * self.shape[hour]
            self.minutes_seen += learned
            if learned < steps:  # an outage: the rest is not learned, the clock turns as closings turn it
                first_quarter = -(-(minute + learned) // CLOCK_CHECK_MINUTES) * CLOCK_CHECK_MINUTES
                for quarter in range(first_quarter, end, CLOCK_CHECK_MINUTES):
                    self.follow_clock(quarter)
                return
            minute += steps

    def _silent_steps(self, bucket: Ewma, steps: int, horizon: float) -> int:
        """How many of `steps` empty minutes of one clock hour (its volume `bucket`) a settled brand learns
        before its outage begins, counted into the run as `outage` counts them minute by minute (the hour's
        rate falling as each is learned)."""
        mean, weight = bucket.mean, bucket.weight
        for learned in range(steps):
            if self._silent_minute(mean):
                return learned
            weight = min(weight + 1.0, horizon)
            mean -= mean / weight
        return steps

    def surges(self, recent_hours: Mapping[int, tuple[float, int]]) -> Evidence:
        """The share evidence to leave out of a learning brand's all-hours share: its first-day clock hours
        that were clear volume surges, all but `anomaly_weight` of them.

        While a brand learns, a buzz it could not tell from its traffic (its first tweets were the buzz, or
        its tests were too wide to alert) is learned in full, and would hide the next buzz. Once calmer
        hours have come, the buzz's hours stand out by their volume: a clock hour whose tweets are a clear
        surge (Poisson z >= `first_day_surge_z`) above `first_day_surge_ratio` times the quietest hour's
        rate (hours of at least `first_day_reference_minutes`, by the day shape) keeps only
        `anomaly_weight` of its share, as an alerted buzz's minutes do. Hours are chosen by their volume,
        never by their negatives, so an ordinary brand's share is not biased low.

        An hour counts all its closed minutes: the learned ones and `recent_hours`, the tweets and minutes
        not learned yet by clock hour (the last two hours). Each unlearned hour stands on its own, so a
        second buzz among them raises only its own hours' rate, never the calm hours' before it that the
        first buzz's hours are compared with.
        """
        cfg = self.config
        enough = cfg.first_day_reference_minutes
        seen = {clock: (hour.tweets, hour.minutes) for clock, hour in self.first_day.items()}
        for clock, (tweets, minutes) in recent_hours.items():
            learned_tweets, learned_minutes = seen.get(clock, (0.0, 0))
            seen[clock] = (learned_tweets + tweets, learned_minutes + minutes)
        shape = {clock: self.shape[self.hour_of(clock * 60)] for clock in seen}  # by the hour's own clock
        rates = [
            (tweets + 1.0) / (minutes * shape[clock])
            for clock, (tweets, minutes) in seen.items()
            if minutes >= enough
        ]
        left_out = Evidence()
        if not rates:
            return left_out
        surge = cfg.first_day_surge_ratio * min(rates)
        for clock, hour in self.first_day.items():
            tweets, minutes = seen[clock]
            if poisson_z(tweets, surge * minutes * shape[clock]) >= cfg.first_day_surge_z:
                left_out.add(hour.evidence, 1.0 - cfg.anomaly_weight)
        left_out.minutes = left_out.exposure = left_out.volume = 0.0  # only the share leaves them
        return left_out

    def expect(self, hour: int, recent: Evidence | None = None) -> Expectation:
        """The expected traffic of that hour from the learned minutes, `recent` unlearned ones and the prior.

        Volume: an hour of the day with little data of its own leans on the brand's level (tweets per
        unit of day shape) times the shape (shrinkage). The level is local: the `recent` closed minutes
        the baseline has not learned yet (about the last two hours; all a brand has in its first hours),
        with the learned minutes standing for at most `local_level_minutes` more, so a brand whose day
        differs from the shipped shape (another time zone) follows its own hours. Before any data, the
        prior is `volume_prior_tweets` in one minute.

        Share: the learned and recent minutes pooled with the prior (`share_prior_tweets` at
        `share_prior`); an hour with few tweets of its own leans on that. `volume_tweets` and
        `share_tweets` are how many tweets the two figures rest on (their variance, as a count), so the
        tests can widen while a brand is new and narrow as its data grows.

        Dispersion, (count, share), both 1 with hard labels and below 1 with a model's probabilities: a
        Poisson number of tweets with negative probabilities p sums to a count of variance E[p^2] per tweet
        instead of E[p], and n tweets' summed p vary by Var(p) per tweet instead of share x (1 - share).
        The quasi-likelihood tests divide their deviance by these. From the all-hours counts, with the
        prior's pseudo-tweets scored as `prior_confusion` says; floored at `MIN_DISPERSION`.

        The same as `expect_hour(hour, level(recent))`: a caller that needs several hours with the same
        `recent` computes the hour-independent `level` once.
        """
        return self.expect_hour(hour, self.level(recent or Evidence()))

    def pooled(self, recent_hours: Mapping[int, tuple[float, int]] | None = None) -> Evidence:
        """The learned all-hours evidence the share pools: `overall`, less a learning brand's surge hours
        (`surges`; `recent_hours`: the unlearned closed minutes' tweets and minutes by clock hour). It does
        not depend on `recent`: a minute's expectations compute it once for all their `level`s."""
        if not self.first_day:
            return self.overall
        return self.overall.minus(self.surges(recent_hours or {}))

    def level(self, recent: Evidence, pooled: Evidence | None = None) -> BrandLevel:
        """What every hour's expectation shares: the brand's level and its pooled share (see `expect`;
        `pooled`: this minute's `pooled()`, computed here when None)."""
        cfg = self.config
        overall = self.overall
        overall_exposure = max(overall.exposure, 0.0)
        overall_level = (max(overall.volume, 0.0) + cfg.volume_prior_tweets) / (overall_exposure + 1.0)
        recent_shape = recent.exposure / recent.minutes if recent.minutes > 0 else 1.0
        overall_weight = min(overall_exposure, cfg.local_level_minutes * recent_shape) + 1.0
        level_tweets = max(recent.volume, 0.0) + overall_weight * overall_level
        level = level_tweets / (max(recent.exposure, 0.0) + overall_weight)

        overall = self.pooled() if pooled is None else pooled
        prior = cfg.share_prior_tweets
        pooled_tweets = max(overall.total + recent.total, 0.0) + prior
        # the prior's pseudo-tweets, a share_prior of them negative, scored as `prior_confusion` says
        negative_p, other_p = self.prior_confusion
        negative, other = cfg.share_prior, 1.0 - cfg.share_prior
        prior_negatives = prior * (negative * negative_p + other * other_p)
        prior_squares = prior * (negative * negative_p**2 + other * other_p**2)
        overall_share = (max(overall.negative + recent.negative, 0.0) + prior_negatives) / pooled_tweets
        mean_square = (max(overall.squares + recent.squares, 0.0) + prior_squares) / pooled_tweets
        # If the probabilities are calibrated, a negative tweet's mean probability is E[p^2] / E[p] and
        # any other tweet's is (E[p] - E[p^2]) / (1 - E[p]): the confusion, from the brand's own traffic.
        return BrandLevel(
            level=level,
            level_tweets=level_tweets,
            share=overall_share,
            share_tweets=pooled_tweets,
            count_dispersion=mean_square / overall_share,
            share_dispersion=(mean_square - overall_share**2) / (overall_share * (1.0 - overall_share)),
            other_p=(overall_share - mean_square) / (1.0 - overall_share),
        )

    def expect_hour(self, hour: int, level: BrandLevel) -> Expectation:
        """The expectation of that hour of the day given the brand's `level` (see `expect`)."""
        cfg = self.config
        bucket = self.hourly_volume[hour]
        prior_minutes = cfg.hour_prior_minutes
        prior_rate = level.level * self.shape[hour]
        shrunk = bucket.weight + prior_minutes
        rate = (bucket.weight * bucket.mean + prior_minutes * prior_rate) / shrunk
        rate_variance = (
            bucket.weight * bucket.mean + (prior_minutes * prior_rate) ** 2 / level.level_tweets
        ) / shrunk**2

        overall_share = level.share
        hour_share = self.hourly_share[hour]
        hour_prior = cfg.hour_share_prior_tweets
        share = (hour_share.negative + hour_prior * overall_share) / (hour_share.total + hour_prior)
        spread = share * (1.0 - share)
        share_variance = (
            hour_share.total * spread
            + hour_prior**2 * overall_share * (1.0 - overall_share) / level.share_tweets
        ) / (hour_share.total + hour_prior) ** 2
        return Expectation(
            max(rate, cfg.min_rate_per_minute),
            share,
            max(level.count_dispersion, MIN_DISPERSION),
            max(level.share_dispersion, MIN_DISPERSION),
            rate * rate / rate_variance,
            spread / share_variance,
            level.count_dispersion,
            max(level.other_p, 0.0),
        )

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state."""
        return {
            "hourly_volume": [e.to_row() for e in self.hourly_volume],
            "hourly_share": [s.to_row() for s in self.hourly_share],
            "overall": self.overall.to_list(),
            "minutes_seen": self.minutes_seen,
            "tweets_seen": self.tweets_seen,
            "first_day": [[clock, *hour.to_list()] for clock, hour in self.first_day.items()],
            "utc_offset": self.utc_offset,
            "zone": self.zone,
            "turned_at": self.turned_at,
            "prior_confusion": list(self.prior_confusion),
            "silence_expected": self.silence_expected,
            "silence_learning": self.silence_learning,
        }

    @classmethod
    def from_state(cls, config: DetectorConfig, state: dict[str, Any]) -> DayProfileBaseline:
        """Rebuild from `state_dict` output (or from a state saved before the day shape, see `_overall`)."""
        return cls(
            config=config,
            hourly_volume=[Ewma.from_row(row) for row in state["hourly_volume"]],
            hourly_share=[DecayedShare.from_row(row) for row in state["hourly_share"]],
            overall=_overall(state),
            minutes_seen=int(state["minutes_seen"]),
            tweets_seen=float(state["tweets_seen"]),
            first_day={int(row[0]): FirstDayHour.from_row(row[1:]) for row in state.get("first_day", ())},
            utc_offset=state.get("utc_offset"),  # saved before zones: None, the shipped day
            zone=state.get("zone"),  # saved before summer time was followed: None (see `zone`)
            turned_at=state.get("turned_at"),  # saved before it was kept: None, every minute its UTC hour
            # saved before it: hard labels, as the prior was scored then
            prior_confusion=tuple(map(float, state.get("prior_confusion", HARD_LABELS))),
            silence_expected=float(state.get("silence_expected", 0.0)),  # saved before outages: none running
            silence_learning=float(state.get("silence_learning", 0.0)),
        )


def _overall(state: dict[str, Any]) -> Evidence:
    """The all-hours evidence; a state saved before it kept a volume EWMA and a share (a flat day shape)."""
    if "overall" in state:
        return Evidence(*map(float, state["overall"]))
    mean, weight = map(float, state["overall_volume"])
    share = DecayedShare.from_row(state["overall_share"])
    return Evidence(weight, weight, mean * weight, share.negative, share.total, share.squares)


def _silence_run(
    run: float, rate: float, limit: float, evidence_tweets: float = math.inf
) -> tuple[float, bool]:
    """A run of empty minutes (the tweets they should have held) with one more, expected to hold `rate`
    (no further once it is an outage), and whether it is one: no tweet where that many were expected has
    log-probability below -`limit` (Poisson; a negative binomial, Gamma-Poisson, when the rate rests on
    `evidence_tweets` tweets)."""

    def unlikely(expected: float) -> bool:
        if math.isinf(evidence_tweets):
            return expected > limit
        return evidence_tweets * math.log1p(expected / evidence_tweets) > limit

    if not unlikely(run):
        run += rate
    return run, unlikely(run)
