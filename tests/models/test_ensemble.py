"""The soft-voting ensemble: weight and temperature choice, calibration error, bootstrap, one artifact."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from models.baseline import fit_linear
from models.ensemble import choose_weight, fit_temperature, write_ensemble_artifact
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


def test_paired_bootstrap_values_match_the_report_and_a_model_minus_itself_is_zero():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 500)
    predicted = np.where(rng.random(500) < 0.7, truth, rng.integers(0, 3, 500))
    report = evaluation_report([LABELS[i] for i in truth], [LABELS[i] for i in predicted], LABELS)
    result = paired_bootstrap(truth, predicted, resamples=200)
    value, low, high = result["macro_f1"]
    assert value == pytest.approx(report["macro_f1"]) and low < value < high
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
