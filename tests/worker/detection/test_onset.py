"""The estimated start of a bad buzz (worker.detection.onset), on tables of minute series."""

from __future__ import annotations

import pytest

from worker.detection.onset import estimate_onset

QUIET = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]  # ordinary minutes: 0.25 negatives expected


@pytest.mark.parametrize(
    ("negatives", "expected", "onset"),
    [
        ([*QUIET, 3, 4, 5, 6], [0.25] * 14, 10),  # a sharp buzz: its first minute
        ([*QUIET, 1, 1, 2, 2, 3, 3, 4, 4], [0.25] * 18, 10),  # a slow ramp: the first minute of the run-up
        ([*QUIET, 0, 3, 0, 4, 5], [0.25] * 15, 11),  # a gap inside the buzz does not end it
        ([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 7], [0.25] * 17, 15),  # a lone old negative: not it
        ([12, 11, 13, 10, 30, 35], [12.0] * 6, 4),  # a busy brand: its usual minutes are not the buzz
        ([70] * 40 + [150, 160], [60.0] * 42, 40),  # a busy brand's baseline a little low: not a buzz
        ([90] * 80 + [200, 210, 220], [5.0] * 83, 80),  # a brand still learning: its level is its own
        ([5, 6], [0.25, 0.25], 0),  # the history starts inside the buzz: its first minute held
        ([0.0], [0.25], 0),  # nothing above the baseline: the firing minute itself
    ],
)
def test_the_start_is_the_first_minute_of_the_run_up(
    negatives: list[float], expected: list[float], onset: int
) -> None:
    minutes = list(range(1000, 1000 + len(negatives)))
    assert estimate_onset(minutes, negatives, expected) == 1000 + onset


def test_no_history_no_estimate() -> None:
    assert estimate_onset([], [], []) is None
