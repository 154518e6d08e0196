"""`buzzwatch evaluate` and `buzzwatch score`: the exact command-line contract."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from buzzwatch.cli import main

pytestmark = pytest.mark.model


def test_evaluate_json(tiny_model, tmp_path, capsys):
    data = tmp_path / "labelled.csv"
    pd.DataFrame(
        {
            "text": ["@united great crew, thanks!", "my bag is lost again", "flight 123 to Boston"],
            "label": ["positive", "negative", "neutral"],
        }
    ).to_csv(data, index=False)
    code = main(["evaluate", "--data", str(data), "--json", "--model-uri", str(tiny_model.artifact_dir)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"accuracy", "macro_f1", "macro_recall", "n", "per_class"}
    assert report["n"] == 3
    assert set(report["per_class"]) == {"negative", "neutral", "positive"}
    assert set(report["per_class"]["negative"]) == {"precision", "recall", "f1", "support"}


def test_evaluate_rejects_unknown_labels(tiny_model, tmp_path, capsys):
    data = tmp_path / "labelled.csv"
    pd.DataFrame({"text": ["hello"], "label": ["angry"]}).to_csv(data, index=False)
    code = main(["evaluate", "--data", str(data), "--json", "--model-uri", str(tiny_model.artifact_dir)])
    assert code == 2
    assert "angry" in capsys.readouterr().err


def test_score_adds_columns_and_flags_empty_text(tiny_model, tmp_path):
    source = tmp_path / "in.csv"
    out = tmp_path / "out.csv"
    pd.DataFrame(
        {"id": ["1", "2", "3"], "text": ["@delta worst delay ever", "", "love this airline"]}
    ).to_csv(source, index=False)
    code = main(
        ["score", "--input", str(source), "--output", str(out), "--model-uri", str(tiny_model.artifact_dir)]
    )
    assert code == 0
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(scored.columns) == ["id", "text", "label", "p_negative", "p_neutral", "p_positive", "error"]
    assert scored.loc[1, "error"] == "empty text"
    assert scored.loc[1, "label"] == ""
    for row in (0, 2):
        assert scored.loc[row, "error"] == ""
        assert scored.loc[row, "label"] in {"negative", "neutral", "positive"}
        total = sum(float(scored.loc[row, f"p_{label}"]) for label in ("negative", "neutral", "positive"))
        assert total == pytest.approx(1.0, abs=1e-4)


def test_score_without_text_column_fails_clearly(tiny_model, tmp_path, capsys):
    source = tmp_path / "in.csv"
    pd.DataFrame({"tweet": ["hello"]}).to_csv(source, index=False)
    code = main(
        [
            "score",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out.csv"),
            "--model-uri",
            str(tiny_model.artifact_dir),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "no text column" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()


def test_score_missing_file_and_bad_model(tmp_path, capsys):
    assert main(["score", "--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": ["hello"]}).to_csv(source, index=False)
    code = main(
        [
            "score",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "o.csv"),
            "--model-uri",
            str(tmp_path / "no-model"),
        ]
    )
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
