"""The baseline: TF-IDF over word n-grams + class-weighted logistic regression.

The features and the scorer are `models.linear`'s (the same model is the linear half of the ensemble
champion): word 1-2-grams of the `models.text.tokenize` tokens with negation scope marked, binary TF-IDF.
Trained on the `make_splits` train split (the LSTM's), evaluated on validation, test and the proxy sets,
each run tracked in MLflow (experiment `buzzwatch`, run name `baseline-tfidf-lr`).

    from models.baseline import train_baseline
    result = train_baseline()            # loads data/, splits, trains, evaluates, tracks
    result.reports["airline_test"]["macro_f1"]
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from buzzwatch.schema import LABELS
from buzzwatch.settings import CommonSettings
from models.linear import PAD_FEATURE, LinearConfig, LinearModel, softmax, word_terms
from models.text import NORMALISER_VERSION, tokenize

logger = logging.getLogger(__name__)


def fit_linear(
    token_lists: Sequence[Sequence[str]],
    labels: Sequence[str],
    label_order: Sequence[str],
    config: LinearConfig | None = None,
    row_weights: np.ndarray | None = None,
) -> LinearModel:
    """Fit the vocabulary, IDF and a class-balanced logistic regression (scikit-learn; training only).

    `row_weights` multiply the class weights per row (e.g. the target domain's rows up-weighted).
    """
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    config = config or LinearConfig()
    document_frequency: Counter[str] = Counter()
    for tokens in token_lists:
        document_frequency.update(set(word_terms(tokens)))
    kept = sorted(term for term, df in document_frequency.items() if df >= config.min_df)
    df = np.array([document_frequency[term] for term in kept], dtype=np.float64)
    idf = np.log((1.0 + len(token_lists)) / (1.0 + df)) + 1.0
    model = LinearModel(
        kept, idf, np.zeros((len(label_order), len(kept))), np.zeros(len(label_order)), config.flip_negation
    )
    # The same vectors the fused graph builds: each id's signed idf over the row's L2 norm.
    ids = model.id_matrix(token_lists)
    present = ids != PAD_FEATURE
    n_features = len(kept)
    columns = (ids - 1) % n_features
    signs = np.where(ids > n_features, -1.0, 1.0)
    values = np.where(present, signs * model.idf[columns].astype(np.float64), 0.0)
    norms = np.sqrt(np.maximum((values**2).sum(axis=1), 1e-12))
    rows = np.broadcast_to(np.arange(len(ids))[:, None], ids.shape)
    matrix = csr_matrix(
        ((values / norms[:, None])[present], (rows[present], columns[present])),
        shape=(len(ids), n_features),
    )
    classifier = LogisticRegression(C=config.C, class_weight="balanced", max_iter=config.max_iter)
    classifier.fit(matrix, list(labels), sample_weight=row_weights)
    order = [list(classifier.classes_).index(label) for label in label_order]
    model.coefficients = classifier.coef_[order].astype(np.float32)
    model.intercepts = classifier.intercept_[order].astype(np.float32)
    return model


RUN_NAME = "baseline-tfidf-lr"


class BaselineModel:
    """A fitted TF-IDF + logistic regression text classifier (fitted with scikit-learn, scored with numpy)."""

    def __init__(self, config: LinearConfig | None = None) -> None:
        self.config = config or LinearConfig()
        self.normaliser_version = NORMALISER_VERSION
        self.linear: LinearModel | None = None

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> BaselineModel:
        """Fit the vocabularies, IDF and classifier."""
        self.linear = fit_linear([tokenize(text) for text in texts], list(labels), LABELS, self.config)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, columns in `LABELS` order."""
        if self.linear is None:
            raise RuntimeError("fit the baseline first")
        return softmax(self.linear.logits([tokenize(text) for text in texts]))

    def predict(self, texts: Sequence[str]) -> list[str]:
        """One label per text."""
        return [LABELS[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def save(self, directory: str | Path) -> Path:
        """Write the fitted model's numpy files (`models.linear`) into directory."""
        if self.linear is None:
            raise RuntimeError("fit the baseline first")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.linear.save(directory)
        return directory


@dataclass
class BaselineResult:
    """What `train_baseline` returns: the model, its evaluation reports by set name, timings, run id."""

    model: BaselineModel
    reports: dict[str, dict] = field(default_factory=dict)
    train_seconds: float = 0.0
    n_train: int = 0
    run_id: str | None = None


def evaluation_sets(splits: Any) -> dict[str, pd.DataFrame]:
    """The sets a sentiment model is evaluated on: validation (selection), test and every proxy set."""
    sets = {"validation": splits.validation, "test": splits.test}
    sets.update(splits.proxies())
    return {name: frame for name, frame in sets.items() if len(frame)}


def train_baseline(
    frame: pd.DataFrame | None = None,
    config: LinearConfig | None = None,
    seed: int | None = None,
    track: bool = True,
    settings: CommonSettings | None = None,
    output_dir: str | Path | None = None,
    splits: Any = None,
) -> BaselineResult:
    """Train and evaluate the baseline; track the run in MLflow unless `track` is False.

    `frame` defaults to `models.data.load_labelled()`; it is split by `make_splits(frame, seed)`, unless
    `splits` (a `models.data.Splits`, e.g. `buzzwatch train`'s with its extra rows) is given.
    With `output_dir` the fitted model is saved there (and logged as the run's `model` artifact).
    """
    from models import data
    from models.evaluate import confusion_matrix, report_from_matrix

    config = config or LinearConfig()
    seed = data.DEFAULT_SEED if seed is None else seed
    if splits is None:
        splits = data.make_splits(data.load_labelled() if frame is None else frame, seed=seed)
    model = BaselineModel(config)
    start = time.perf_counter()
    model.fit(splits.train["text"].tolist(), splits.train["label"].tolist())
    result = BaselineResult(model=model, train_seconds=time.perf_counter() - start, n_train=len(splits.train))
    matrices = {}
    for name, subset in evaluation_sets(splits).items():
        predictions = model.predict(subset["text"].tolist())
        matrices[name] = confusion_matrix(subset["label"].tolist(), predictions, LABELS)
        result.reports[name] = report_from_matrix(matrices[name], LABELS)
        logger.info("baseline %s macro_f1=%.4f", name, result.reports[name]["macro_f1"])
    if output_dir is not None:
        model.save(output_dir)
    if track:
        result.run_id = _track(result, matrices, config, seed, settings, output_dir)
    return result


def _track(
    result: BaselineResult,
    matrices: dict[str, np.ndarray],
    config: LinearConfig,
    seed: int,
    settings: CommonSettings | None,
    output_dir: str | Path | None,
) -> str:
    import mlflow

    from models import tracking

    params = {**config.__dict__, "seed": seed, "normaliser_version": NORMALISER_VERSION, "model": "tfidf+lr"}
    with tracking.start_run(RUN_NAME, params=params, settings=settings) as run:
        mlflow.log_metrics({"train_seconds": result.train_seconds, "n_train": result.n_train})
        for name, report in result.reports.items():
            tracking.log_report(name, report, matrices[name], LABELS)
        if output_dir is not None:
            tracking.log_model_dir(output_dir)
        return run.info.run_id


def _positive_number(value: str) -> float:
    """An argparse type: a finite number above 0 (`--C 0` or `nan` was a scikit-learn traceback)."""
    import argparse

    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 < number < math.inf:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m models.baseline`: train on data/, print the reports as JSON, track the run."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m models.baseline", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seed", type=int, default=None, help="split seed (default models.data.DEFAULT_SEED)"
    )
    parser.add_argument(
        "--C", type=_positive_number, default=LinearConfig.C, help="inverse regularisation strength (> 0)"
    )
    parser.add_argument("--no-track", action="store_true", help="do not log the run to MLflow")
    parser.add_argument("--output-dir", type=Path, default=None, help="save the fitted model (numpy) here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = LinearConfig(C=args.C)
    result = train_baseline(
        config=config, seed=args.seed, track=not args.no_track, output_dir=args.output_dir
    )
    summary = {
        "train_seconds": round(result.train_seconds, 1),
        "n_train": result.n_train,
        "run_id": result.run_id,
        "reports": result.reports,
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    # Run the importable module's main, so pickled classes are `models.baseline.*`, not `__main__.*`.
    from models.baseline import main as module_main

    raise SystemExit(module_main())
