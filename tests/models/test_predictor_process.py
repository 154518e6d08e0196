"""The Predictor in a child process: the same answers as in this one, its load errors, its end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.predictor import ModelLoadError, Predictor
from models.predictor_process import PredictorProcess
from tests.models.conftest import CHAMPION_DIR, airline_sample

pytestmark = pytest.mark.model


def test_the_child_scores_the_same_bits_as_the_predictor_here() -> None:
    texts = airline_sample(600)["text"].tolist()
    here = Predictor.load(str(CHAMPION_DIR))
    with PredictorProcess(str(CHAMPION_DIR)) as child:
        assert (child.labels, child.model_version, child.languages) == (
            here.labels,
            here.model_version,
            here.languages,
        )
        for start in range(0, len(texts), 250):  # one child, several calls
            batch = texts[start : start + 250]
            got = child.predict_proba(batch)
            assert np.array_equal(got.view(np.uint32), here.predict_proba(batch).view(np.uint32))
        with pytest.raises(TypeError):
            child.predict_proba("one text")
    assert not child._process.is_alive()


def test_a_model_that_cannot_load_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "no-model"
    with pytest.raises(ModelLoadError) as here:
        Predictor.load(str(missing))
    child = PredictorProcess(str(missing))
    try:
        with pytest.raises(ModelLoadError) as there:
            child.wait_ready()
        assert str(there.value) == str(here.value)
    finally:
        child.close()
    assert not child._process.is_alive()


def test_closing_before_the_model_is_loaded_ends_the_child() -> None:
    child = PredictorProcess(str(CHAMPION_DIR))
    child.close()
    assert not child._process.is_alive()
