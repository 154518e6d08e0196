"""Small, dependency-free statistics for spike detection and alert explanation.

Signed-root deviance scores turn a likelihood-ratio test into a z-like number (about N(0, 1) under the
null for moderate counts), so one threshold reads the same for a Poisson count and a binomial share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def _xlogy(x: float, y: float) -> float:
    """x * log(y) with the convention 0 * log(anything) = 0."""
    return 0.0 if x == 0 else x * math.log(y)


def _towards(count: float, expected: float, continuity: float) -> float:
    """Move an observed count `continuity` towards its expectation (never past it)."""
    if count > expected:
        return max(count - continuity, expected)
    return min(count + continuity, expected)


def poisson_z(count: float, expected: float, continuity: float = 0.5) -> float:
    """Signed root of the Poisson deviance of `count` against `expected` (positive when above).

    A continuity correction of half a count keeps small counts (quiet nights) from looking significant.
    """
    expected = max(expected, 1e-9)
    observed = _towards(count, expected, continuity)
    deviance = 2.0 * (_xlogy(observed, observed / expected) - (observed - expected))
    root = math.sqrt(max(deviance, 0.0))
    return root if observed >= expected else -root


def binomial_z(successes: float, trials: float, null_share: float, continuity: float = 0.5) -> float:
    """Signed root of the binomial likelihood-ratio statistic of successes/trials against null_share."""
    if trials <= 0:
        return 0.0
    null_share = min(max(null_share, 1e-6), 1.0 - 1e-6)
    expected = trials * null_share
    observed = _towards(successes, expected, continuity)
    failures = trials - observed
    llr = _xlogy(observed, observed / expected) + _xlogy(failures, failures / (trials - expected))
    root = math.sqrt(max(2.0 * llr, 0.0))
    return root if observed >= expected else -root


def weighted_log_odds(
    focus: Mapping[str, float],
    focus_docs: float,
    reference: Mapping[str, float],
    reference_docs: float,
    prior_docs: float = 10.0,
) -> dict[str, float]:
    """z-scores of each word's log-odds of appearing in a `focus` tweet against a `reference` tweet.

    `focus` / `reference` map a word to the (weighted) number of tweets that contain it, out of
    `focus_docs` / `reference_docs` tweets. In the spirit of Monroe, Colaresi & Quinn (2008), each cell
    of the 2x2 table gets an informative prior: `prior_docs` pseudo-tweets at the word's pooled rate, and
    never less than half a tweet. The prior shrinks rare words towards zero, so a word seen twice does not
    beat one seen forty times, while a word that never appears in a thousand normal tweets still stands
    out. The z-score divides the log-odds ratio by its standard error.
    """
    if focus_docs <= 0:
        return {}
    pooled_docs = focus_docs + reference_docs
    scores: dict[str, float] = {}
    for word, focus_with in focus.items():
        reference_with = reference.get(word, 0.0)
        pooled_rate = (focus_with + reference_with) / pooled_docs
        prior_with = max(prior_docs * pooled_rate, 0.5)
        prior_without = max(prior_docs * (1.0 - pooled_rate), 0.5)
        cells = (
            focus_with + prior_with,
            max(focus_docs - focus_with, 0.0) + prior_without,
            reference_with + prior_with,
            max(reference_docs - reference_with, 0.0) + prior_without,
        )
        log_odds_ratio = math.log(cells[0] / cells[1]) - math.log(cells[2] / cells[3])
        scores[word] = log_odds_ratio / math.sqrt(sum(1.0 / cell for cell in cells))
    return scores
