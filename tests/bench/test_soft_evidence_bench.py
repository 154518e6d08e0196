"""The soft-evidence bench weighs tweets as it says: with calibrated probabilities no weight beats p."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .loading import load_bench


def _bench() -> ModuleType:
    return load_bench("soft_evidence", "bench_soft_evidence")


def calibrated(count: int, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities from Beta(2, 3) with labels drawn at those probabilities (P(negative | p) = p), then
    only the tweets whose label is negative when `share` is 1 (a buzz), else all of them."""
    p_negative = rng.beta(2.0, 3.0, count)
    negative = rng.random(count) < p_negative
    return (p_negative[negative], negative[negative]) if share == 1.0 else (p_negative, negative)


def test_with_calibrated_probabilities_the_sum_of_p_is_as_good_as_any_weight() -> None:
    # Calibrated: the likelihood ratio of a negative's p to any tweet's is p / E[p], linear in p, so p
    # is the best weight there is for the count test and p^2 is worse; the labels carry more than any.
    bench, rng = _bench(), np.random.default_rng(5)
    ordinary_p, ordinary_negative = calibrated(400_000, 0.0, rng)
    buzz_p, buzz_negative = calibrated(200_000, 1.0, rng)
    p_negative = np.concatenate([ordinary_p, buzz_p])
    negative = np.concatenate([ordinary_negative, buzz_negative])
    buzz = np.arange(len(p_negative)) >= len(ordinary_p)
    count = {
        name: bench.efficiencies(weight[~buzz], weight[buzz])[0]
        for name, weight in bench.weights(p_negative, negative, buzz).items()
    }
    assert abs(count["best (binned LR)"] - count["p"]) < 0.01
    assert count["p^2"] < count["p"] - 0.01
    assert count["labels"] > count["p"] + 0.1


def test_a_weight_that_does_not_tell_buzz_tweets_apart_has_no_share_test_power() -> None:
    bench, rng = _bench(), np.random.default_rng(6)
    same = rng.random(100_000)
    _, share = bench.efficiencies(same[:50_000], same[50_000:])
    assert abs(share) < 0.02
