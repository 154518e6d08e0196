"""A brand's normal traffic: volume per minute and negative share, by hour of day, adapting over days.

Each hour of the day keeps an EWMA of tweets per minute and decayed counts of (negative, total) tweets.
An hour bucket with little data leans on the brand's all-hours figures (shrinkage), so a quiet night or a
brand seen for an hour still gets a sensible expectation, and the share of a night with three tweets is
mostly the day's share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.detection.config import DetectorConfig

HOURS = 24
MIN_DISPERSION = 0.25  # a model whose probabilities barely vary must not make every wobble significant


@dataclass
class Ewma:
    """Running mean until `horizon` observations, then an exponentially weighted one (weights allowed)."""

    mean: float = 0.0
    weight: float = 0.0

    def update(self, value: float, horizon: float, weight: float = 1.0) -> None:
        """Fold in one observation with the given weight."""
        self.weight = min(self.weight + weight, horizon)
        self.mean += (weight / self.weight) * (value - self.mean)


@dataclass
class DecayedShare:
    """Negative and total counts, decayed geometrically so old days weigh less.

    `negative` sums each tweet's probability of being negative (1 or 0 with hard labels); `squares` sums
    the squared probabilities, which measure how uncertain the labels are (see `dispersion`).
    """

    negative: float = 0.0
    total: float = 0.0
    squares: float = 0.0

    def update(
        self, negative: float, total: float, squares: float, horizon: float, weight: float = 1.0
    ) -> None:
        """Decay by one step of a `horizon`-step memory, then add weighted counts."""
        keep = 1.0 - weight / horizon
        self.negative = self.negative * keep + weight * negative
        self.total = self.total * keep + weight * total
        self.squares = self.squares * keep + weight * squares


@dataclass
class DayProfileBaseline:
    """Expected tweets per minute and negative share for each hour of the day, for one brand."""

    config: DetectorConfig
    hourly_volume: list[Ewma] = field(default_factory=lambda: [Ewma() for _ in range(HOURS)])
    hourly_share: list[DecayedShare] = field(default_factory=lambda: [DecayedShare() for _ in range(HOURS)])
    overall_volume: Ewma = field(default_factory=Ewma)
    overall_share: DecayedShare = field(default_factory=DecayedShare)
    minutes_seen: int = 0
    tweets_seen: float = 0.0

    def update(
        self,
        hour: int,
        total: float,
        negative: float,
        squares: float,
        expected_total: float,
        weight: float = 1.0,
    ) -> None:
        """Fold in one closed minute of the given hour (weight < 1 for minutes inside an episode).

        `negative` and `squares` sum the minute's negative probabilities and their squares.

        Robust to surges: the volume is capped at `surge_cap` times what was expected (at least
        `surge_floor` tweets), and a bigger minute's share counts as if it held only that many tweets,
        so one promotion or retweet storm neither inflates the volume nor dilutes the negative share.
        """
        cfg = self.config
        cap = max(cfg.surge_cap * expected_total, cfg.surge_floor)
        self.hourly_volume[hour].update(min(total, cap), 60.0 * cfg.volume_horizon_days, weight)
        self.overall_volume.update(min(total, cap), cfg.global_horizon_minutes, weight)
        if total:
            share_weight = weight * min(1.0, cap / total)
            self.hourly_share[hour].update(
                negative, total, squares, 60.0 * cfg.share_horizon_days, share_weight
            )
            self.overall_share.update(negative, total, squares, cfg.global_horizon_minutes, share_weight)
        self.minutes_seen += 1
        self.tweets_seen += total

    def rate(self, hour: int) -> float:
        """Expected tweets per minute in that hour of the day."""
        cfg = self.config
        bucket = self.hourly_volume[hour]
        prior = cfg.hour_prior_minutes
        blended = (bucket.weight * bucket.mean + prior * self.overall_volume.mean) / (bucket.weight + prior)
        return max(blended, cfg.min_rate_per_minute)

    def overall_negative_share(self) -> float:
        """The brand's negative share over all hours (the prior share before data)."""
        cfg = self.config
        share = self.overall_share
        return (share.negative + cfg.share_prior_tweets * cfg.share_prior) / (
            share.total + cfg.share_prior_tweets
        )

    def dispersion(self) -> tuple[float, float]:
        """How much less a soft negative count varies than a count of hard labels, for the brand's tweets.

        Returns (count dispersion, share dispersion), both 1 with hard labels and below 1 with a model's
        probabilities: a Poisson number of tweets with negative probabilities p sums to a count of variance
        E[p^2] per tweet instead of E[p], and n tweets' summed p vary by Var(p) per tweet instead of
        share x (1 - share). The quasi-likelihood tests divide their deviance by these. From the all-hours
        counts, with the prior's pseudo-tweets as hard labels; floored at `MIN_DISPERSION`.
        """
        cfg = self.config
        prior = cfg.share_prior_tweets
        total = self.overall_share.total + prior
        mean = (self.overall_share.negative + prior * cfg.share_prior) / total
        mean_square = (self.overall_share.squares + prior * cfg.share_prior) / total
        count = mean_square / mean
        share = (mean_square - mean * mean) / (mean * (1.0 - mean))
        return max(count, MIN_DISPERSION), max(share, MIN_DISPERSION)

    def share(self, hour: int) -> float:
        """Expected negative share in that hour of the day."""
        bucket = self.hourly_share[hour]
        prior = self.config.hour_share_prior_tweets
        return (bucket.negative + prior * self.overall_negative_share()) / (bucket.total + prior)

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state."""
        return {
            "hourly_volume": [[e.mean, e.weight] for e in self.hourly_volume],
            "hourly_share": [[s.negative, s.total, s.squares] for s in self.hourly_share],
            "overall_volume": [self.overall_volume.mean, self.overall_volume.weight],
            "overall_share": [
                self.overall_share.negative,
                self.overall_share.total,
                self.overall_share.squares,
            ],
            "minutes_seen": self.minutes_seen,
            "tweets_seen": self.tweets_seen,
        }

    @classmethod
    def from_state(cls, config: DetectorConfig, state: dict[str, Any]) -> DayProfileBaseline:
        """Rebuild from `state_dict` output."""
        return cls(
            config=config,
            hourly_volume=[Ewma(float(m), float(w)) for m, w in state["hourly_volume"]],
            hourly_share=[_decayed_share(counts) for counts in state["hourly_share"]],
            overall_volume=Ewma(*map(float, state["overall_volume"])),
            overall_share=_decayed_share(state["overall_share"]),
            minutes_seen=int(state["minutes_seen"]),
            tweets_seen=float(state["tweets_seen"]),
        )


def _decayed_share(counts: list[float]) -> DecayedShare:
    """A saved [negative, total, squares]; a state saved before squares were kept counted hard labels."""
    negative, total = float(counts[0]), float(counts[1])
    return DecayedShare(negative, total, float(counts[2]) if len(counts) > 2 else negative)
