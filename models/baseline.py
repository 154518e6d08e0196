"""The baseline: TF-IDF over word and character n-grams + class-weighted logistic regression.

Words are `models.text.tokenize` tokens with negation scope marked (`neg_` prefix: a bag of words cannot
see order otherwise), 1-2-grams; characters are 2-5-grams inside word boundaries of the normalised text.
Trained on the `make_splits` train split, evaluated on validation, test and the proxy sets, each run
tracked in MLflow (experiment `buzzwatch`, run name `baseline-tfidf-lr`).

    from models.baseline import train_baseline
    result = train_baseline()            # loads data/, splits, trains, evaluates, tracks
    result.reports["airline_test"]["macro_f1"]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from buzzwatch.schema import LABELS
from buzzwatch.settings import CommonSettings
from models.text import NORMALISER_VERSION, normalise, tokenize

logger = logging.getLogger(__name__)

RUN_NAME = "baseline-tfidf-lr"


@dataclass(frozen=True)
class BaselineConfig:
    """Hyper-parameters of the baseline (all logged to MLflow)."""

    C: float = 2.0
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    word_min_df: int = 2
    char_min_df: int = 3
    max_char_features: int = 300_000
    mark_negation: bool = True
    class_weight: str | None = "balanced"
    max_iter: int = 2000


def _identity(features: list[str]) -> list[str]:
    """The word vectorizer's analyzer: documents arrive as lists of n-gram strings already."""
    return features


class BaselineModel:
    """A fitted TF-IDF + logistic regression text classifier (scikit-learn; training side only)."""

    def __init__(self, config: BaselineConfig | None = None) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.config = config or BaselineConfig()
        self.normaliser_version = NORMALISER_VERSION
        self.word_vectorizer = TfidfVectorizer(
            analyzer=_identity,
            min_df=self.config.word_min_df,
            sublinear_tf=True,
        )
        self.char_vectorizer = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=self.config.char_ngrams,
            min_df=self.config.char_min_df,
            max_features=self.config.max_char_features,
            sublinear_tf=True,
            dtype=np.float32,
        )
        self.classifier = LogisticRegression(
            C=self.config.C, class_weight=self.config.class_weight, max_iter=self.config.max_iter
        )

    def _word_docs(self, texts: Sequence[str]) -> list[list[str]]:
        """Word n-grams of each text's tokens (negation marked per config), joined by spaces."""
        low, high = self.config.word_ngrams
        docs = []
        for text in texts:
            tokens = tokenize(text, mark_negation_scope=self.config.mark_negation)
            docs.append(
                [
                    " ".join(tokens[i : i + n])
                    for n in range(low, high + 1)
                    for i in range(len(tokens) - n + 1)
                ]
            )
        return docs

    def _features(self, texts: Sequence[str], fit: bool = False) -> Any:
        from scipy.sparse import hstack

        words = self._word_docs(texts)
        chars = [normalise(text) for text in texts]
        if fit:
            return hstack(
                [self.word_vectorizer.fit_transform(words), self.char_vectorizer.fit_transform(chars)]
            ).tocsr()
        return hstack([self.word_vectorizer.transform(words), self.char_vectorizer.transform(chars)]).tocsr()

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> BaselineModel:
        """Fit vectorizers and classifier."""
        self.classifier.fit(self._features(texts, fit=True), list(labels))
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, columns in `LABELS` order."""
        probabilities = self.classifier.predict_proba(self._features(texts))
        order = [list(self.classifier.classes_).index(label) for label in LABELS]
        return probabilities[:, order]

    def predict(self, texts: Sequence[str]) -> list[str]:
        """One label per text."""
        return [LABELS[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def save(self, directory: str | Path) -> Path:
        """Pickle the fitted model (joblib) with its normaliser version; training-side only."""
        import joblib

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, directory / "baseline.joblib")
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
    """The sets a sentiment model is evaluated on: validation, test and every proxy set."""
    sets = {"validation": splits.validation, "test": splits.test}
    sets.update(splits.proxies())
    return {name: frame for name, frame in sets.items() if len(frame)}


def train_baseline(
    frame: pd.DataFrame | None = None,
    config: BaselineConfig | None = None,
    seed: int | None = None,
    track: bool = True,
    settings: CommonSettings | None = None,
    output_dir: str | Path | None = None,
) -> BaselineResult:
    """Train and evaluate the baseline; track the run in MLflow unless `track` is False.

    `frame` defaults to `models.data.load_labelled()`; it is split by `make_splits(frame, seed)`.
    With `output_dir` the fitted model is saved there (and logged as the run's `model` artifact).
    """
    from models import data
    from models.evaluate import confusion_matrix, report_from_matrix

    config = config or BaselineConfig()
    seed = data.DEFAULT_SEED if seed is None else seed
    frame = data.load_labelled() if frame is None else frame
    splits = data.make_splits(frame, seed=seed)
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
    config: BaselineConfig,
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


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m models.baseline`: train on data/, print the reports as JSON, track the run."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m models.baseline", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seed", type=int, default=None, help="split seed (default models.data.DEFAULT_SEED)"
    )
    parser.add_argument("--C", type=float, default=BaselineConfig.C, help="inverse regularisation strength")
    parser.add_argument("--no-negation", action="store_true", help="do not mark negation scope (neg_ prefix)")
    parser.add_argument("--no-track", action="store_true", help="do not log the run to MLflow")
    parser.add_argument("--output-dir", type=Path, default=None, help="save the fitted model (joblib) here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = BaselineConfig(C=args.C, mark_negation=not args.no_negation)
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
