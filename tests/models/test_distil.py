"""Distillation targets: the teacher's probabilities mixed with the labels, by raw-text key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.teacher import text_key
from models.train import teacher_targets

pytestmark = pytest.mark.model


def test_teacher_targets_mix_the_teacher_with_the_label_and_keep_unscored_rows_one_hot(tmp_path):
    path = tmp_path / "teacher_probs.npz"
    np.savez(
        path,
        keys=np.array([text_key("great flight")], dtype=np.uint64),
        probs=np.array([[0.1, 0.3, 0.6]], dtype=np.float16),
        labels=np.array(["negative", "neutral", "positive"]),
    )
    train = pd.DataFrame({"text": ["great flight", "lost my bag"], "label": ["positive", "negative"]})
    targets = teacher_targets(train, 0.5, path)
    np.testing.assert_allclose(targets[0], [0.05, 0.15, 0.8], atol=1e-3)
    np.testing.assert_allclose(targets[1], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-3)


def test_the_shipped_teacher_covers_the_training_split():
    from models.data import load_labelled, make_splits

    train = make_splits(load_labelled(sources=["airline"])).train.head(500)
    targets = teacher_targets(train, 1.0)
    assert (targets.max(axis=1) < 1.0).mean() > 0.99  # teacher probabilities, not one-hot labels
