"""The evaluation report: exact shape, hand-computed values, edge cases, the confusion-matrix PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.evaluate import (
    confusion_matrix,
    evaluation_report,
    report_from_matrix,
    write_confusion_matrix_png,
)

LABELS = ("negative", "neutral", "positive")


def test_report_shape_is_the_cli_contract() -> None:
    report = evaluation_report(["negative", "positive"], ["negative", "neutral"], LABELS)
    assert set(report) == {"accuracy", "macro_f1", "macro_recall", "n", "per_class"}
    assert list(report["per_class"]) == list(LABELS)
    for scores in report["per_class"].values():
        assert set(scores) == {"precision", "recall", "f1", "support"}
    json.dumps(report)


def test_values_match_a_hand_computation() -> None:
    y_true = ["negative", "negative", "negative", "neutral", "neutral", "positive"]
    y_pred = ["negative", "negative", "neutral", "neutral", "positive", "positive"]
    report = evaluation_report(y_true, y_pred, LABELS)
    assert report["n"] == 6
    assert report["accuracy"] == pytest.approx(4 / 6)
    negative = report["per_class"]["negative"]
    assert (negative["precision"], negative["recall"], negative["support"]) == (1.0, pytest.approx(2 / 3), 3)
    assert negative["f1"] == pytest.approx(0.8)
    neutral = report["per_class"]["neutral"]
    assert (neutral["precision"], neutral["recall"], neutral["f1"]) == (0.5, 0.5, 0.5)
    positive = report["per_class"]["positive"]
    assert (positive["precision"], positive["recall"]) == (0.5, 1.0)
    assert positive["f1"] == pytest.approx(2 / 3)
    assert report["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_never_predicted_and_absent_classes_score_zero() -> None:
    report = evaluation_report(["negative", "negative"], ["negative", "negative"], LABELS)
    assert report["per_class"]["positive"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["accuracy"] == 1.0
    assert report["macro_recall"] == pytest.approx(1 / 3)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="items"):
        evaluation_report(["negative"], [], LABELS)
    with pytest.raises(ValueError, match="outside"):
        evaluation_report(["angry"], ["negative"], LABELS)
    with pytest.raises(ValueError, match="zero"):
        evaluation_report([], [], LABELS)


def test_confusion_matrix_orientation_and_png(tmp_path: Path) -> None:
    matrix = confusion_matrix(
        ["negative", "positive", "positive"], ["positive", "positive", "neutral"], LABELS
    )
    assert matrix.tolist() == [[0, 0, 1], [0, 0, 0], [0, 1, 1]]
    assert report_from_matrix(matrix, LABELS)["n"] == 3
    png = write_confusion_matrix_png(matrix, tmp_path / "cm" / "matrix.png", LABELS, title="test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
