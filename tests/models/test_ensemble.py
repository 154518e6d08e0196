"""The soft-voting ensemble: weight, temperature and class-offset choice, calibration error, bootstrap, one
artifact."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from models.baseline import fit_linear
from models.ensemble import (
    choose_class_offsets,
    choose_weight,
    fit_temperature,
    negative_log_likelihood,
    write_ensemble_artifact,
)
from models.evaluate import evaluation_report, expected_calibration_error, paired_bootstrap
from models.linear import softmax
from models.predictor import Predictor, combine
from models.text import tokenize

pytestmark = pytest.mark.model
LABELS = ("negative", "neutral", "positive")


def test_choose_weight_takes_the_best_score_and_the_smaller_weight_on_ties():
    weight, scores = choose_weight(lambda w: -abs(w - 0.35), grid=(0.0, 0.3, 0.4, 1.0))
    assert weight == 0.3 and set(scores) == {0.0, 0.3, 0.4, 1.0}
    assert choose_weight(lambda w: 1.0, grid=(0.0, 0.5))[0] == 0.0


def test_temperature_undoes_overconfidence_and_lowers_the_calibration_error():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, size=(20_000, 3))
    truth = np.array([rng.choice(3, p=row) for row in softmax(logits)])
    overconfident = softmax(2.0 * logits)  # the true probabilities, sharpened: T = 2 undoes it
    temperature = fit_temperature(overconfident, truth)
    assert temperature == pytest.approx(2.0, rel=0.05)
    calibrated = softmax(np.log(overconfident) / temperature)
    assert (
        expected_calibration_error(calibrated, truth)
        < 0.02
        < expected_calibration_error(overconfident, truth)
    )
    # Temperature scaling never changes a label.
    assert (calibrated.argmax(axis=1) == overconfident.argmax(axis=1)).all()


def test_class_offsets_undo_a_prior_against_the_minority_class_and_raise_its_recall():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2.0, size=(6_000, 3))
    truth = np.array([rng.choice(3, p=row) for row in softmax(logits)])
    # A model that learned a prior against negatives (class 0): its log-odds of class 0 are 0.8 too low.
    biased = logits - np.array([0.8, 0.0, 0.0])

    def macro_recall(offsets: np.ndarray) -> float:
        predicted = (biased + offsets).argmax(axis=1)
        return float(np.mean([(predicted[truth == k] == k).mean() for k in range(3)]))

    def loss(offsets: np.ndarray) -> float:
        return negative_log_likelihood(softmax(biased + offsets), truth)

    offsets, best = choose_class_offsets(macro_recall, loss, n_labels=3, pinned=1)
    assert offsets[1] == 0.0 and offsets[0] == pytest.approx(0.8, abs=0.25)
    assert abs(offsets[2]) <= 0.25
    assert best == macro_recall(offsets) > macro_recall(np.zeros(3)) + 0.01
    negative_recall = ((biased + offsets).argmax(axis=1)[truth == 0] == 0).mean()
    assert negative_recall > (biased.argmax(axis=1)[truth == 0] == 0).mean() + 0.05


def test_class_offsets_ties_go_to_the_lowest_loss_then_the_smallest_offsets():
    target = np.array([0.3, 0.0, -0.2])
    offsets, _ = choose_class_offsets(
        lambda offsets: 1.0, lambda offsets: float(np.sum((offsets - target) ** 2)), n_labels=3, pinned=1
    )
    np.testing.assert_allclose(offsets, target)
    offsets, _ = choose_class_offsets(lambda offsets: 1.0, lambda offsets: 0.0, n_labels=3, pinned=2)
    np.testing.assert_allclose(offsets, 0.0)


def test_paired_bootstrap_values_match_the_report_and_a_model_minus_itself_is_zero():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 500)
    predicted = np.where(rng.random(500) < 0.7, truth, rng.integers(0, 3, 500))
    report = evaluation_report([LABELS[i] for i in truth], [LABELS[i] for i in predicted], LABELS)
    result = paired_bootstrap(truth, predicted, resamples=200)
    value, low, high = result["macro_f1"]
    assert value == pytest.approx(report["macro_f1"]) and low < value < high
    value, low, high = result["negative_recall"]
    assert value == pytest.approx(report["per_class"]["negative"]["recall"]) and low < value < high
    assert paired_bootstrap(truth, predicted, predicted, resamples=100)["macro_recall"] == (0.0, 0.0, 0.0)
    better = paired_bootstrap(truth, truth, predicted, resamples=200)["accuracy"]
    assert better[1] > 0  # a perfect model beats a 70% one on every resample


@pytest.fixture(scope="module")
def ensemble_dir(tiny_model, tmp_path_factory):
    texts = tiny_model.texts[:600]
    labels = ["negative", "neutral", "positive"] * 200
    linear = fit_linear([tokenize(text) for text in texts], labels, LABELS)
    out = tmp_path_factory.mktemp("ensemble") / "artifact"
    meta = write_ensemble_artifact(
        tiny_model.artifact_dir, linear, out, linear_weight=0.4, temperature=1.5, details={"purpose": "tests"}
    )
    assert meta["model_version"].startswith("ensemble-")
    return out


def test_ensemble_artifact_scores_as_the_weighted_vote_then_temperature(tiny_model, ensemble_dir):
    ensemble = Predictor.load(str(ensemble_dir))
    alone = Predictor.load(str(tiny_model.artifact_dir))
    # Real tweets too: some of their tokens only one half knows (one token index serves both).
    texts = [
        "@united worst flight ever",
        "",
        "not bad at all :)",
        "gate 12 at noon",
        *tiny_model.texts[-200:],
    ]
    expected = combine(
        alone.predict_proba(texts), ensemble.linear.logits([tokenize(t) for t in texts]), 0.4, 1.5
    )
    np.testing.assert_allclose(ensemble.predict_proba(texts), expected, atol=1e-6)
    assert not np.allclose(ensemble.predict_proba(texts), alone.predict_proba(texts))
    # The fused graph still gives the LSTM's own probabilities.
    np.testing.assert_allclose(
        ensemble.predict_ids(alone.encode(texts)), alone.predict_proba(texts), atol=1e-6
    )
    # Batch independence holds for the ensemble too.
    together = ensemble.predict_proba(tiny_model.texts[:40])
    one_by_one = np.vstack([ensemble.predict_proba([text]) for text in tiny_model.texts[:40]])
    np.testing.assert_allclose(one_by_one, together, atol=1e-6)
    assert ensemble.predict(texts)[0].model_version == ensemble.model_version


def test_class_offsets_are_served_by_the_graph_and_recorded_in_meta(tiny_model, tmp_path):
    texts = tiny_model.texts[:600]
    linear = fit_linear([tokenize(text) for text in texts], ["negative", "neutral", "positive"] * 200, LABELS)
    offsets = np.array([0.6, 0.0, -0.35])
    meta = write_ensemble_artifact(
        tiny_model.artifact_dir,
        linear,
        tmp_path / "offsets",
        linear_weight=0.4,
        temperature=1.5,
        class_offsets=offsets,
        details={"purpose": "tests"},
    )
    assert meta["ensemble"]["class_offsets"] == {"negative": 0.6, "neutral": 0.0, "positive": -0.35}
    ensemble = Predictor.load(str(tmp_path / "offsets"))
    alone = Predictor.load(str(tiny_model.artifact_dir))
    sample = tiny_model.texts[-300:]
    sequence = alone.predict_proba(sample)
    linear_logits = ensemble.linear.logits([tokenize(text) for text in sample])
    served = ensemble.predict_proba(sample)
    np.testing.assert_allclose(served, combine(sequence, linear_logits, 0.4, 1.5, offsets), atol=1e-6)
    without = combine(sequence, linear_logits, 0.4, 1.5)
    # The offsets move probability towards negative and away from positive: more negative labels.
    assert served[:, 0].mean() > without[:, 0].mean() and served[:, 2].mean() < without[:, 2].mean()
    assert (served.argmax(axis=1) == 0).sum() > (without.argmax(axis=1) == 0).sum()


def test_the_ensembles_shared_ids_kept_per_chunk_are_the_tokenizers(tiny_model, ensemble_dir):
    from models.vocab import UNK_ID
    from tests.models.test_text import EDGE_CASES

    ensemble = Predictor.load(str(ensemble_dir))
    texts = [*tiny_model.texts, *EDGE_CASES, "", None]
    index = ensemble._token_index
    expected = [[index.get(token, UNK_ID) for token in tokenize(text or "")] for text in texts]
    assert ensemble._encode_ensemble(texts) == expected
    assert ensemble._encode_ensemble(texts[::-1]) == expected[::-1]


def test_ensemble_serving_needs_no_scikit_learn_scipy_or_tensorflow(ensemble_dir):
    code = (
        "import sys; from models.predictor import Predictor; "
        f"Predictor.load({str(ensemble_dir)!r}).predict(['not bad at all']); "
        "print([m for m in ('tensorflow', 'keras', 'sklearn', 'scipy', 'mlflow') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_broken_ensemble_artifact_is_a_clear_load_error(ensemble_dir, tmp_path):
    import shutil

    from models.predictor import ModelLoadError

    broken = tmp_path / "broken"
    shutil.copytree(ensemble_dir, broken)
    (broken / "linear_features.json").unlink()
    with pytest.raises(ModelLoadError, match=r"linear_features\.json"):
        Predictor.load(str(broken))


def test_an_ensemble_graph_without_ngram_keys_is_a_clear_load_error(tiny_model, ensemble_dir, tmp_path):
    import shutil

    from models.predictor import ModelLoadError

    stale = tmp_path / "stale"
    shutil.copytree(ensemble_dir, stale)
    shutil.copy(tiny_model.artifact_dir / "model.onnx", stale / "model.onnx")
    with pytest.raises(ModelLoadError, match="ngram_keys"):
        Predictor.load(str(stale))


def test_fit_ensemble_offsets_are_chosen_on_the_selection_split_and_served_as_chosen(tiny_model, tmp_path):
    from models.train import fit_ensemble, selection_score
    from tests.models.conftest import airline_sample

    frame = airline_sample(2600)
    train, held = frame.head(1500), frame.iloc[1500:].reset_index(drop=True)
    linear = fit_linear([tokenize(text) for text in train["text"]], list(train["label"]), LABELS)
    sets = {"validation": held, "validation_airline": held.iloc[:550], "tweeteval_val": held.iloc[550:]}
    plain = fit_ensemble(tiny_model.artifact_dir, linear, sets)
    assert (plain["class_offsets"] == 0).all()
    assert plain["selection_score_with_offsets"] == plain["selection_score_without_offsets"]
    fit = fit_ensemble(tiny_model.artifact_dir, linear, sets, class_offsets=True)
    assert (fit["linear_weight"], fit["temperature"]) == (plain["linear_weight"], plain["temperature"])
    assert fit["class_offsets"][1] == 0.0 and fit["class_offsets"].any()
    assert fit["selection_score_with_offsets"] > fit["selection_score_without_offsets"]
    write_ensemble_artifact(
        tiny_model.artifact_dir,
        linear,
        tmp_path / "fitted",
        linear_weight=fit["linear_weight"],
        temperature=fit["temperature"],
        class_offsets=fit["class_offsets"],
        details={"purpose": "tests"},
    )
    served = Predictor.load(str(tmp_path / "fitted"))
    reports = {
        name: evaluation_report(
            list(sets[name]["label"]), [label.label for label in served.predict(list(sets[name]["text"]))]
        )
        for name in ("validation_airline", "tweeteval_val")
    }
    assert selection_score(reports) == pytest.approx(fit["selection_score_with_offsets"])
