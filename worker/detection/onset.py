"""When a bad buzz began: its estimated first minute, from the per-minute counts the detector keeps.

An alert fires once the evidence is strong enough, which is minutes after the buzz began (a slow ramp:
tens of minutes). A person wants both times. The estimate is the change point of a CUSUM read backwards
from the firing minute: over the minutes before it, the start s maximises the sum from s to the firing
minute of (negatives - expected negatives - allowance). The allowance keeps ordinary minutes from joining
the buzz: each one lowers the sum on average, so the estimate reaches back only while the minutes still
carry clear excess negatives. It is half a standard deviation of a minute's expected count (Poisson:
0.5 * sqrt(expected)) or a quarter of the expected count, whichever is larger: on a busy brand a baseline
a little low gives every minute a small excess, which must not pull the start back. For the same reason
the baseline of each minute is at least the lower quartile of the series' negatives (`LEVEL_QUANTILE`):
a brand still learning can have a baseline far below its real level, and the lower quartile of its recent
minutes is its level as long as the buzz fills less than three quarters of them (with `LEVEL_MINUTES` of
history or more; a shorter one may be all buzz). The start is then the
first minute from s on whose negatives exceed the baseline by the allowance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

ALLOWANCE_SDS = 0.5  # per-minute allowance, in standard deviations of the expected count ...
ALLOWANCE_SHARE = 0.25  # ... or as a share of the expected count, whichever is larger
MIN_EXPECTED = 0.02  # expected negatives a minute at least (quiet nights), as the detector's floor
LEVEL_QUANTILE = 0.25  # a minute's baseline is at least this quantile of the series' negatives ...
LEVEL_MINUTES = 30  # ... when the series has this many minutes


def estimate_onset(
    minutes: Sequence[int], negatives: Sequence[float], expected: Sequence[float]
) -> int | None:
    """The estimated first minute of a buzz detected at the last minute of the series; None if empty.

    `minutes` are consecutive minute numbers in order, `negatives` each minute's (weighted) negative
    count and `expected` its baseline expectation; the series should start no earlier than the
    end of the brand's previous episode.
    """
    if not minutes:
        return None
    level = (
        sorted(negatives)[int(LEVEL_QUANTILE * (len(negatives) - 1))]
        if len(negatives) >= LEVEL_MINUTES
        else 0.0
    )
    floors = [_floor(max(value, level)) for value in expected]
    best, start, running = -math.inf, len(minutes) - 1, 0.0
    for index in range(len(minutes) - 1, -1, -1):
        running += negatives[index] - floors[index]
        if running > best:  # strictly: among equal sums, the latest start
            best, start = running, index
    for index in range(start, len(minutes)):
        if negatives[index] > floors[index]:
            return minutes[index]
    return minutes[-1]


def _floor(expected: float) -> float:
    """Negatives a minute must pass to count toward a buzz: the baseline plus the allowance."""
    baseline = max(expected, MIN_EXPECTED)
    return baseline + max(ALLOWANCE_SDS * math.sqrt(baseline), ALLOWANCE_SHARE * baseline)
