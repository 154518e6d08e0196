"""`buzzwatch train --quick`: the whole champion path in seconds, on a temporary MLflow store."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from buzzwatch.cli import main
from models.predictor import Predictor
from models.train import CHAMPION_VARIANT

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_quick_train_registers_and_exports_a_champion(tmp_path, capsys):
    extra = tmp_path / "feedback.csv"
    pd.DataFrame(
        {
            "text": ["@united the new lounge is lovely", "@united still waiting for my refund"],
            "label": ["positive", "negative"],
        }
    ).to_csv(extra, index=False)
    output = tmp_path / "champion"
    code = main(
        [
            "train",
            "--quick",
            "--extra-data",
            str(extra),
            "--output",
            str(output),
            "--skip-baseline",
            "--skip-reasons",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["champion"] == CHAMPION_VARIANT
    assert summary["registered"].endswith("@champion")
    assert summary["variants"][CHAMPION_VARIANT]["onnx_parity_max_abs"] < 1e-4

    shipped = Predictor.load(str(output))
    registered = Predictor.load("models:/buzzwatch-sentiment@champion")
    assert shipped.model_version == registered.model_version == summary["model_version"]
    assert shipped.meta["details"]["extra_data_files"] == str(extra)
    assert "validation_macro_f1" in shipped.metrics
    texts = ["@united the new lounge is lovely", "flight delayed again"]
    assert (shipped.predict_proba(texts) == registered.predict_proba(texts)).all()


def test_train_refuses_bad_extra_data(tmp_path, capsys):
    assert main(["train", "--quick", "--extra-data", str(tmp_path / "missing.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"text": ["hi"], "label": ["furious"]}).to_csv(bad, index=False)
    assert (
        main(
            [
                "train",
                "--quick",
                "--extra-data",
                str(bad),
                "--output",
                str(tmp_path / "out"),
                "--skip-baseline",
                "--skip-reasons",
                "--no-register",
            ]
        )
        == 2
    )
    assert "furious" in capsys.readouterr().err
