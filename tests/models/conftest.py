"""Shared fixtures for the LSTM / predictor tests: one tiny trained model and its exported artifact."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAMPION_DIR = REPO_ROOT / "models" / "artifacts" / "champion"


@dataclass
class TinyModel:
    """A small BiLSTM trained for one epoch on real airline tweets, and its serving artifact."""

    model: object
    config: object
    vocab: object
    artifact_dir: Path
    texts: list[str]


def airline_sample(n: int) -> pd.DataFrame:
    """The first n rows of the airline training file (real tweets, real labels)."""
    frame = pd.read_csv(REPO_ROOT / "data" / "airline_us" / "train.csv", dtype=str, keep_default_na=False)
    return frame.head(n)


def write_test_artifact(
    out_dir: Path, model: object, vocab: object, config: object, **kwargs: object
) -> dict:
    """`write_artifact` with the config's shapes and no metrics (kwargs: name, details, subwords...)."""
    from models.export import write_artifact
    from models.lstm import LABELS

    options = {"metrics": {}, "details": {}, **kwargs}
    return write_artifact(
        out_dir,
        model,
        vocab,
        labels=LABELS,
        max_length=config.max_length,
        bucket_size=config.bucket_size,
        **options,
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    from models.lstm import LABELS, LstmConfig, build_model, fit
    from models.text import tokenize
    from models.vocab import Vocabulary

    frame = airline_sample(1500)
    tokens = [tokenize(text) for text in frame["text"]]
    vocab = Vocabulary.build(tokens, min_count=2, max_size=2000)
    config = LstmConfig(lstm_units=8, epochs=1, batch_size=64, max_length=48, bucket_size=8)
    ids = [vocab.encode(item, config.max_length) for item in tokens]
    labels = np.array([LABELS.index(label) for label in frame["label"]])
    matrix = np.random.default_rng(0).normal(0, 0.1, (len(vocab), 16)).astype(np.float32)
    model = build_model(config, matrix)
    fit(model, ids[:1200], labels[:1200], ids[1200:], labels[1200:], config, verbose=0, log=lambda _: None)
    artifact_dir = tmp_path_factory.mktemp("artifact") / "tiny"
    write_test_artifact(
        artifact_dir,
        model,
        vocab,
        config,
        metrics={"validation_macro_f1": 0.5},
        details={"purpose": "tests"},
        name="tiny",
    )
    return TinyModel(model, config, vocab, artifact_dir, list(airline_sample(2600)["text"][1500:]))
