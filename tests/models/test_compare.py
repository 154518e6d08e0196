"""models.compare's table: each metric with its interval, the share called negative, the gain."""

from __future__ import annotations

from models.compare import format_table


def test_the_table_shows_negative_recall_the_share_called_negative_and_the_gains():
    def entry(version: str, gain: bool) -> dict:
        row = {
            "model_version": version,
            "n": 100,
            "ece": 0.02,
            "called_negative": 0.19,
            "negative_share": 0.156,
            "macro_f1": (0.62, 0.61, 0.63),
            "macro_recall": (0.625, 0.618, 0.633),
            "accuracy": (0.65, 0.64, 0.66),
            "negative_recall": (0.559, 0.541, 0.577),
        }
        if gain:
            row["minus_first"] = {
                "macro_f1": (-0.002, -0.005, 0.002),
                "macro_recall": (-0.005, -0.009, -0.002),
                "accuracy": (0.001, -0.003, 0.005),
                "negative_recall": (-0.05, -0.058, -0.043),
            }
        return row

    lines = format_table(
        {"semeval2016test": {"a": entry("first", False), "b": entry("second", True)}}
    ).splitlines()
    assert len(lines) == 2
    assert (
        "negative_recall 0.559 [0.541, 0.577]" in lines[0]
        and "called negative 0.190 (true 0.156)" in lines[0]
    )
    assert "gain" not in lines[0]
    assert "recall -0.005 [-0.009, -0.002] negative recall -0.050 [-0.058, -0.043]" in lines[1]
