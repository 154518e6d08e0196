"""models.compare's table: each metric with its interval, the share called negative, the gain."""

from __future__ import annotations

import numpy as np
import pytest

from models.compare import bag_probabilities, format_table, main
from models.predictor import Predictor
from tests.models.conftest import CHAMPION_DIR


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


def test_a_bag_is_the_mean_of_its_members_probabilities() -> None:
    class Uniform:
        def predict_proba(self, texts: list[str]) -> np.ndarray:
            return np.full((len(texts), 3), 1 / 3, dtype=np.float32)

    champion = Predictor.load(str(CHAMPION_DIR))
    texts = ["@united lost my bag again", "thanks @jetblue, great crew", "flight 123 boards at 5"]
    alone = champion.predict_proba(texts)
    assert np.array_equal(bag_probabilities([champion], texts), alone)
    bagged = bag_probabilities([champion, Uniform()], texts)
    np.testing.assert_allclose(bagged, (alone + 1 / 3) / 2, rtol=1e-6)
    np.testing.assert_allclose(bagged.sum(axis=1), 1.0, rtol=1e-6)


def test_a_model_that_cannot_be_loaded_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([str(CHAMPION_DIR), f"/nonexistent+{CHAMPION_DIR}"])
    assert stopped.value.code == 2
    assert "error: model path does not exist: /nonexistent" in capsys.readouterr().err


@pytest.mark.parametrize("resamples", ["0", "-100", "150", "many"])
def test_compare_refuses_resamples_that_are_no_multiple_of_a_hundred(resamples: str) -> None:
    """`--resamples 0` was a ValueError traceback after the models loaded; 150 was taken."""
    with pytest.raises(SystemExit) as refused:
        main(["a", "b", "--resamples", resamples])
    assert refused.value.code == 2


@pytest.mark.parametrize(
    ("module", "bad", "says"),
    [
        ("models.compare", ["--resamples", "150"], "positive multiple of 100"),
        ("models.baseline", ["--C", "0"], "positive"),
    ],
)
def test_the_modules_run_as_documented_and_refuse_a_bad_number(
    module: str, bad: list[str], says: str
) -> None:
    """Their argparse types were defined below the `__main__` block: `python -m models.compare` failed on
    any arguments (NameError: _hundreds), which an in-process `main()` call did not show."""
    import subprocess
    import sys

    helped = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0, helped.stderr[-1000:]
    refused = subprocess.run(
        [sys.executable, "-m", module, *bad], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and says in refused.stderr and "Traceback" not in refused.stderr
