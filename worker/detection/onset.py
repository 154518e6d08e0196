"""When a bad buzz began: its estimated first minute, from the per-minute counts the detector keeps.

An alert fires once the evidence is strong enough, which is minutes after the buzz began (a slow ramp:
tens of minutes). A person wants both times. The estimate is the change point of a CUSUM read backwards
from the firing minute: over the minutes before it, the start s maximises the sum from s to the firing
minute of (negatives - expected negatives - allowance). The allowance, half a standard deviation of a
minute's expected count (Poisson: 0.5 * sqrt(expected)), keeps ordinary minutes from joining the buzz:
each one lowers the sum on average, so the estimate reaches back only while the minutes still carry
excess negatives. The start is then the first minute from s on whose negatives exceed the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

ALLOWANCE_SDS = 0.5  # per-minute allowance, in standard deviations of the expected count
MIN_EXPECTED = 0.02  # expected negatives a minute at least (quiet nights), as the detector's floor


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
    best, start, running = -math.inf, len(minutes) - 1, 0.0
    for index in range(len(minutes) - 1, -1, -1):
        baseline = max(expected[index], MIN_EXPECTED)
        running += negatives[index] - baseline - ALLOWANCE_SDS * math.sqrt(baseline)
        if running > best:  # strictly: among equal sums, the latest start
            best, start = running, index
    for index in range(start, len(minutes)):
        if negatives[index] > max(expected[index], MIN_EXPECTED):
            return minutes[index]
    return minutes[-1]
