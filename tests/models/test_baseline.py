"""The TF-IDF + logistic-regression baseline on a tiny table (the full run is `train_baseline()`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buzzwatch.settings import CommonSettings
from models.baseline import BaselineModel, train_baseline
from models.baseline import main as baseline_main
from models.linear import LinearConfig, LinearModel
from models.text import tokenize

POSITIVE = ["love this {}", "great flight {} thanks", "amazing crew {}", "best service {} :)"]
NEGATIVE = ["hate this {}", "worst flight {} ever", "terrible crew {}", "not good at all {} :("]
NEUTRAL = ["flight {} leaves at noon", "is there wifi on flight {}", "boarding gate {} moved"]


def tokenize_all(texts: list[str]) -> list[list[str]]:
    return [tokenize(text) for text in texts]


def tiny_table(per_template: int = 25) -> pd.DataFrame:
    rows = []
    for label, templates in (("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)):
        for template in templates:
            for i in range(per_template):
                rows.append(
                    {
                        "text": template.format(f"ua{i}"),
                        "label": label,
                        "source": "airline",
                        "id": f"{label}{i}",
                    }
                )
    return pd.DataFrame(rows)


def test_model_learns_and_marks_negation() -> None:
    table = tiny_table(5)
    model = BaselineModel(LinearConfig(min_df=1)).fit(table["text"], table["label"])
    assert model.predict(["love this flight", "worst crew ever", "which gate for flight 12"]) == [
        "positive",
        "negative",
        "neutral",
    ]
    probabilities = model.predict_proba(["great"])
    assert probabilities.shape == (1, 3)
    assert "not neg_good" in model.linear.features


def test_train_baseline_evaluates_and_tracks(tmp_path: Path) -> None:
    settings = CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(tmp_path / "var")})
    result = train_baseline(
        tiny_table(),
        LinearConfig(min_df=1),
        track=True,
        settings=settings,
        output_dir=tmp_path / "model",
    )
    assert {"validation", "test", "airline_test"} <= set(result.reports)
    assert result.reports["airline_test"]["macro_f1"] > 0.9
    assert result.run_id
    saved = LinearModel.load(tmp_path / "model")
    texts = ["love this flight", "worst crew ever"]
    np.testing.assert_allclose(
        saved.logits(tokenize_all(texts)), result.model.linear.logits(tokenize_all(texts))
    )


@pytest.mark.parametrize("strength", ["0", "-1", "nan", "inf", "strong"])
def test_the_baseline_command_refuses_a_regularisation_that_cannot_fit(strength: str) -> None:
    """`python -m models.baseline --C 0` was a scikit-learn traceback after the data loaded."""
    with pytest.raises(SystemExit) as refused:
        baseline_main(["--C", strength, "--no-track"])
    assert refused.value.code == 2
