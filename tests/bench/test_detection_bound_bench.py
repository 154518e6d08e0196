"""The ideal quiet-brand detector of bench/detection_bound.py: its CUSUM, its threshold and its delays."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from .loading import load_bench

bound = load_bench("detection_bound", "detection_bound")
data = load_bench("detection_data", "detection_data")
WEEK = 7 * 24 * 60


def test_the_cusum_alarms_on_a_rise_and_waits_for_the_fewest_negatives() -> None:
    counts = np.zeros((60, 3))
    counts[10:, 1] = 1  # a negative a minute from minute 10
    counts[10, 2] = 3  # three at once, then nothing
    assumed = np.full(60, 0.05)
    alarms, first = bound.cusum(counts, assumed, 0.5, 6.0, 1)
    assert alarms.tolist() == [0, 1, 1]
    # a negative weighs log(1 + 0.5 / 0.05) = 2.4 less the drift 0.5: the fourth in a row crosses 6, three
    # at once (6.7) at once
    assert first.tolist() == [-1, 13, 10]
    alarms, first = bound.cusum(counts, assumed, 0.5, 6.0, 5)
    assert first.tolist() == [-1, 14, -1]  # the fifth complaint; three at once are not five


def test_the_threshold_spends_the_budget_on_fresh_weeks() -> None:
    rates = np.full(WEEK, 0.05)
    one = bound.threshold_for(rates, rates, 0.3, 1.0, 1, seed=1)
    quarter = bound.threshold_for(rates, rates, 0.3, 0.25, 1, seed=1)
    assert quarter > one
    fresh = np.random.default_rng(7).poisson(rates[:, None], size=(WEEK, 40))
    alarms = bound.cusum(fresh, rates, 0.3, one, 1)[0].sum() / 40
    assert 0.4 <= alarms <= 2.0  # one a week, within the noise of 40 simulated weeks


def test_each_constraint_makes_the_ideal_detector_no_sooner() -> None:
    start = data.START
    brand = data.Brand("Quiet", "general", "quiet", 0.2, 0, 0.25, start, start + timedelta(days=7))
    begins = start + timedelta(days=3, hours=14, minutes=7, seconds=20)
    episode = {"start": begins, "end": begins + timedelta(minutes=60), "peak_per_minute": "0.6"}
    negatives = [begins + timedelta(minutes=1.7 * i) for i in range(35)]
    delays = bound.ideal_delays(brand, episode, negatives, 1.0, seed=3)
    ideal, guarded, unshaped = (delays[name] for name, _, _ in bound.VARIANTS)
    assert ideal is not None and guarded is not None and unshaped is not None
    assert 1 <= ideal <= guarded <= 60
    assert guarded >= 1.7 * 4  # five complaints take 6.8 minutes
    assert unshaped == pytest.approx(guarded, abs=10)


def test_the_table_counts_every_buzz_and_splits_the_first_day_from_the_rest() -> None:
    rows = [
        {"first_day": True, "delays": {"a": 5.0, "b": None}},
        {"first_day": True, "delays": {"a": 20.0, "b": 40.0}},
        {"first_day": False, "delays": {"a": 9.0, "b": 12.0}},
    ]
    lines = bound.delay_table(rows, ["a", "b"]).splitlines()
    assert "first day (2)" in lines[0] and "seen a day (1)" in lines[0]
    assert lines[2].startswith("| a | 3/3 | 9.0 [") and lines[2].endswith("| 2 | 12.5, 1 | 9.0, 1 |")
    assert lines[3].startswith("| b | 2/3 | 26.0 [") and lines[3].endswith("| 1 | 40.0, 0 | 12.0, 1 |")


@pytest.mark.parametrize("budget", ["0", "-1", "nan", "0.01"])
def test_a_budget_the_simulated_weeks_cannot_measure_is_refused(
    budget: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["detection_bound.py", "--budget", budget, "--no-replay"])
    with pytest.raises(SystemExit):
        bound.main()
    assert "--budget must be at least 0.025" in capsys.readouterr().err
