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
    increments = bound.poisson_increments(counts, np.full(60, 0.05), 0.5)
    alarms, first = bound.cusum(increments, counts, 6.0, 1)
    assert alarms.tolist() == [0, 1, 1]
    # a negative weighs log(1 + 0.5 / 0.05) = 2.4 less the drift 0.5: the fourth in a row crosses 6, three
    # at once (6.7) at once
    assert first.tolist() == [-1, 13, 10]
    alarms, first = bound.cusum(increments, counts, 6.0, 5)
    assert first.tolist() == [-1, 14, -1]  # the fifth complaint; three at once are not five


def test_the_threshold_spends_the_budget_on_fresh_weeks() -> None:
    rates = np.full(WEEK, 0.05)
    weeks = bound.simulated_weeks(rates, rates, 0.3, seed=1)
    one = bound.threshold_for(*weeks, 1.0, 1)
    quarter = bound.threshold_for(*weeks, 0.25, 1)
    assert quarter > one
    fresh = bound.simulated_weeks(rates, rates, 0.3, seed=7)
    alarms = bound.cusum(*fresh, one, 1)[0].sum() / 40
    assert 0.4 <= alarms <= 2.0  # one a week, within the noise of 40 simulated weeks


def test_each_constraint_makes_the_ideal_detector_no_sooner() -> None:
    start = data.START
    brand = data.Brand("Quiet", "general", "quiet", 0.2, 0, 0.25, start, start + timedelta(days=7))
    begins = start + timedelta(days=3, hours=14, minutes=7, seconds=20)
    episode = {"start": begins, "end": begins + timedelta(minutes=60), "peak_per_minute": "0.6"}
    tweets = [(begins + timedelta(minutes=1.7 * i), True, 0.9) for i in range(35)]
    delays = bound.ideal_delays(brand, episode, tweets, 1.0, seed=3)
    assert set(delays) == {name for name, scores, _, _ in bound.VARIANTS if scores == "labels"}
    ideal, guarded, unshaped = delays.values()
    assert ideal is not None and guarded is not None and unshaped is not None
    assert 1 <= ideal <= guarded <= 60
    assert guarded >= 1.7 * 4  # five complaints take 6.8 minutes
    assert unshaped == pytest.approx(guarded, abs=10)


def test_with_labels_for_scores_the_marked_cusum_is_the_poisson_one() -> None:
    n = 200_000  # the densities' half-tweet smoothing is then negligible
    marks = bound.Marks(negative=np.ones(n), other=np.zeros(n), buzz=np.ones(n))
    share, rate, extra = 0.25, 0.2, 0.4  # 0.05 ordinary negatives a minute, 0.4 extra in a buzz
    scores = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    minutes = np.array([0, 0, 1, 1, 2])
    increments, complaints = bound.score_increments(
        minutes, np.zeros(5, dtype=int), scores, (3, 1), np.full(3, rate), extra, marks, share
    )
    counts = np.array([[1.0], [2.0], [0.0]])
    expected = bound.poisson_increments(counts, np.full(3, rate * share), extra)
    np.testing.assert_allclose(increments, expected, atol=1e-3)
    np.testing.assert_allclose(complaints, counts)


def test_blurred_scores_make_the_ideal_detector_later_and_spend_the_same_budget() -> None:
    start = data.START
    brand = data.Brand("Quiet", "general", "quiet", 0.2, 0, 0.25, start, start + timedelta(days=2))
    begins = start + timedelta(days=1, hours=14, minutes=7, seconds=20)
    episode = {"start": begins, "end": begins + timedelta(minutes=60), "peak_per_minute": "0.6"}
    rng = np.random.default_rng(5)
    # the model scores a buzz's tweets and ordinary negatives 0.4-0.8, other tweets 0.05-0.5
    marks = bound.Marks(
        rng.uniform(0.4, 0.8, 4000), rng.uniform(0.05, 0.5, 12000), rng.uniform(0.4, 0.8, 4000)
    )
    tweets = [(begins + timedelta(minutes=1.7 * i), True, float(rng.uniform(0.4, 0.8))) for i in range(35)]
    delays = bound.ideal_delays(brand, episode, tweets, 1.0, seed=3, marks=marks)
    assert set(delays) == {name for name, _, _, _ in bound.VARIANTS}
    labels, _, labels_unshaped, model, model_unshaped, summed = delays.values()
    assert labels is not None and model is not None and labels_unshaped is not None
    assert model > labels  # the same tweets, read through blurred scores
    assert model_unshaped is None or model_unshaped >= labels_unshaped
    assert summed is not None and summed >= 5 * 1.7 - 1  # at least the five complaints' time
    rates = np.full(WEEK // 3, 0.2)  # 40 simulated weeks of a third of a week
    weeks = bound.simulated_weeks(rates, rates, 0.6, 1, marks, 0.25)
    threshold = bound.threshold_for(*weeks, 1.0, 1)
    fresh = bound.simulated_weeks(rates, rates, 0.6, 8, marks, 0.25)
    assert 0.4 <= bound.cusum(*fresh, threshold, 1)[0].sum() / (40 / 3) <= 2.0


def test_summed_scores_are_read_as_a_count_of_buzz_negatives() -> None:
    marks = bound.Marks(np.array([0.6, 0.8]), np.array([0.1, 0.1]), np.array([0.5, 0.7]))
    share, rate, extra = 0.25, 0.2, 0.4
    # ordinary tweets score 0.25 x 0.7 + 0.75 x 0.1 = 0.25 a tweet on average, a buzz negative 0.6: each
    # minute's summed scores / 0.6 are a count of negatives against 0.2 x 0.25 / 0.6 expected a minute
    increments, complaints = bound.score_increments(
        np.array([0, 0, 1]),
        np.zeros(3, dtype=int),
        np.array([0.6, 0.3, 0.9]),
        (2, 1),
        np.full(2, rate),
        extra,
        marks,
        share,
        summed=True,
    )
    counted = np.array([[0.9 / 0.6], [0.9 / 0.6]])
    np.testing.assert_allclose(increments, bound.poisson_increments(counted, np.full(2, 0.05 / 0.6), extra))
    # complaints as the shipped detector counts them: (p - 0.1) / (0.7 - 0.1), at most 1
    np.testing.assert_allclose(complaints, [[0.5 / 0.6 + 0.2 / 0.6], [1.0]])


def test_a_score_counts_as_much_of_a_complaint_as_the_shipped_detector_counts_it() -> None:
    marks = bound.Marks(np.array([0.7, 0.9]), np.array([0.1, 0.3]), np.array([0.8]))
    # the negatives' mean score 0.8 is one complaint, the others' 0.2 none, halfway half of one
    np.testing.assert_allclose(marks.complaints(np.array([0.8, 0.95, 0.2, 0.05, 0.5])), [1, 1, 0, 0, 0.5])


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
