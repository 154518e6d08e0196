"""`buzzwatch train --embeddings-file`: the LSTM over a user's pretrained GloVe (or word2vec) text file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from buzzwatch.cli import main
from buzzwatch.settings import REPO_ROOT
from models.predictor import Predictor
from models.text import tokenize
from models.train import VARIANTS, resolve_variants

GLOVE = ("glove-frozen-air5", "glove-tuned-air5")


def write_glove(path: Path, dim: int = 12, words: int = 600) -> Path:
    """A GloVe-format file (no header line) for the commonest tokens of real airline tweets."""
    texts = pd.read_csv(REPO_ROOT / "data" / "airline_us" / "train.csv", nrows=3000)["text"]
    counts = pd.Series([token for text in texts for token in tokenize(text)]).value_counts()
    rng = np.random.default_rng(5)
    with open(path, "w", encoding="utf-8") as handle:
        for token in counts.index[:words]:
            if " " not in token:
                handle.write(token + " " + " ".join(f"{x:.5f}" for x in rng.normal(0, 0.3, dim)) + "\n")
    return path


def test_the_pretrained_variants_mirror_the_fasttext_recipes():
    assert {VARIANTS[name].embedding for name in GLOVE} == {"pretrained"}
    assert VARIANTS["glove-frozen-air5"].trainable_embeddings is False
    assert VARIANTS["glove-tuned-air5"].trainable_embeddings is True


def test_variants_and_the_file_must_go_together(tmp_path):
    with pytest.raises(ValueError, match="--embeddings-file FILE"):
        resolve_variants(("glove-frozen-air5",))
    with pytest.raises(ValueError, match="read only by the variants glove-frozen-air5, glove-tuned-air5"):
        resolve_variants(("champion",), tmp_path / "vectors.txt")
    every = resolve_variants(("all",))
    assert not set(GLOVE) & set(every) and len(every) == len(VARIANTS) - 2
    assert set(GLOVE) <= set(resolve_variants(("all",), tmp_path / "vectors.txt"))


def test_train_refuses_a_missing_embeddings_file(tmp_path, capsys):
    code = main(
        ["train", "--quick", "--variants", "glove-frozen-air5", "--embeddings-file", str(tmp_path / "no.txt")]
    )
    assert code == 2
    assert "embeddings file not found" in capsys.readouterr().err


def test_quick_train_over_a_glove_file(isolated_var_dir, tmp_path, capsys):
    """The vectors come from the file (its dimension, its digest in the artifact), and the command that
    reproduces the artifact names it."""
    glove = write_glove(tmp_path / "glove.twitter.12d.txt")
    args = ["train", "--quick", "--variants", "glove-frozen-air5", "--embeddings-file", str(glove)]
    # A one-epoch model over random vectors fails the behavioural checks (nothing is promoted: exit 2); its
    # artifact and MLflow run are still written, which is what this test reads.
    main([*args, "--skip-reasons", "--skip-baseline", "--no-register", "--no-export"])
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)["variants"]["glove-frozen-air5"]
    assert metrics["onnx_parity_max_abs"] < 1e-4
    lines = (line for line in captured.err.splitlines() if "pretrained vectors:" in line)
    assert any(line.endswith(f"{sum(1 for _ in glove.open())} words of dimension 12") for line in lines)
    predictor = Predictor(next((isolated_var_dir / "artifacts").glob("*/meta.json")).parent)
    details = predictor.meta["details"]
    digest = hashlib.sha256(glove.read_bytes()).hexdigest()
    assert details["embedding"] == "pretrained" and details["embedding_dim"] == 12
    assert details["embedding_file"] == f"{glove} sha256:{digest}"
    params = mlflow.get_run(details["mlflow_run_id"]).data.params  # the store `train` configured
    assert 0.05 < float(params["embedding_coverage"]) < 1
    assert params["embedding_file"] == details["embedding_file"]
    assert details["command"].endswith(f"--embeddings-file {glove}")
    assert predictor.predict_proba(["@united thanks, great crew"]).shape == (1, 3)


def test_train_refuses_a_damaged_embeddings_file_before_reading_the_data(tmp_path, capsys):
    """A line narrower than the others is named at once, in one line, before minutes of data preparation."""
    glove = write_glove(tmp_path / "glove.txt", words=50)
    lines = glove.read_text(encoding="utf-8").splitlines()
    lines[30] = " ".join(lines[30].split(" ")[:-1])
    glove.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = main(["train", "--quick", "--variants", "glove-frozen-air5", "--embeddings-file", str(glove)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"buzzwatch train: {glove}, line 31: 11 numbers after the word, expected 12" in err
    assert "Traceback" not in err and "reading every tweet text" not in err
