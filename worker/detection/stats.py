"""Small, dependency-free statistics for spike detection.

Signed-root deviance scores turn a likelihood-ratio test into a z-like number (about N(0, 1) under the
null for moderate counts), so one threshold reads the same for a Poisson count and a binomial share.
"""

from __future__ import annotations

import math


def poisson_z(count: float, expected: float, continuity: float = 0.5) -> float:
    """Signed root of the Poisson deviance of `count` against `expected` (positive when above).

    A continuity correction of half a count keeps small counts (quiet nights) from looking significant.
    The observed count moves `continuity` towards the expectation (never past it). That step and
    x log(y) are written out here and in `binomial_z`, not left to helpers: the detector runs these three
    times per window and minute.
    """
    if expected < 1e-9:
        expected = 1e-9
    if count > expected:
        observed = count - continuity
        if expected > observed:
            observed = expected
    else:
        observed = count + continuity
        if expected < observed:
            observed = expected
    deviance = 2.0 * (
        (0.0 if observed == 0 else observed * math.log(observed / expected)) - (observed - expected)
    )
    root = math.sqrt(0.0 if deviance < 0.0 else deviance)
    return root if observed >= expected else -root


def binomial_z(successes: float, trials: float, null_share: float, continuity: float = 0.5) -> float:
    """Signed root of the binomial likelihood-ratio statistic of successes/trials against null_share."""
    if trials <= 0:
        return 0.0
    if null_share < 1e-6:
        null_share = 1e-6
    if null_share > 1.0 - 1e-6:
        null_share = 1.0 - 1e-6
    expected = trials * null_share
    if successes > expected:
        observed = successes - continuity
        if expected > observed:
            observed = expected
    else:
        observed = successes + continuity
        if expected < observed:
            observed = expected
    failures = trials - observed
    llr = (0.0 if observed == 0 else observed * math.log(observed / expected)) + (
        0.0 if failures == 0 else failures * math.log(failures / (trials - expected))
    )
    llr *= 2.0
    root = math.sqrt(0.0 if llr < 0.0 else llr)
    return root if observed >= expected else -root
