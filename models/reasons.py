"""Why people are angry: a negative-reason classifier for airline-style complaints.

Trained (scikit-learn, `train_reasons`) on the airline tweets' `negativereason` labels: TF-IDF over the
`models.text.tokenize` unigrams and bigrams, then multinomial logistic regression. Served by
`ReasonClassifier` in pure numpy (no scikit-learn import), from a small artifact folder
(`models/artifacts/reasons/`): `meta.json` (classes, normaliser version, feature settings, metrics),
`vocabulary.json` (terms in column order) and `weights.npz` (idf, coefficients, intercepts).

    from models.reasons import ReasonClassifier
    reasons = ReasonClassifier.load()
    reasons.predict(["@united 3 hours on the tarmac, still no gate"])  # ['late flight']

Services (the scoring worker, detection, the replay command) load it with `load_reason_model`, the one
lenient path: a missing or unreadable artifact is one warning and no reason model, never a failed start.
`ReasonClassifier.load` itself raises (FileNotFoundError when the folder or a file is missing, ValueError
when one is unreadable), for training, evaluation and benchmarks that need the real thing.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from models.text import NORMALISER_VERSION, READS_LIKE, tokenize

if TYPE_CHECKING:
    import pandas as pd

    from buzzwatch.settings import CommonSettings

logger = logging.getLogger(__name__)

DEFAULT_ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts" / "reasons"
ARTIFACT_FORMAT = "buzzwatch-reasons/1"
META_FILE = "meta.json"
VOCABULARY_FILE = "vocabulary.json"
WEIGHTS_FILE = "weights.npz"
# The Kaggle taxonomy, lower-cased ("longlines" spelled out). "can't tell" is kept: an honest "unclear".
REASON_NAMES = {
    "Bad Flight": "bad flight",
    "Can't Tell": "can't tell",
    "Cancelled Flight": "cancelled flight",
    "Customer Service Issue": "customer service issue",
    "Damaged Luggage": "damaged luggage",
    "Flight Attendant Complaints": "flight attendant complaints",
    "Flight Booking Problems": "flight booking problems",
    "Late Flight": "late flight",
    "Lost Luggage": "lost luggage",
    "longlines": "long lines",
}


class ReasonModel(Protocol):
    """What scoring and the detector's explanations need from a reason model: one reason a text."""

    def predict(self, texts: Sequence[str]) -> list[str]: ...


def reason_features(text: str) -> list[str]:
    """The terms a text contributes: its tokens and adjacent token pairs (shared by training and serving)."""
    tokens = tokenize(text)
    return tokens + [f"{first} {second}" for first, second in pairwise(tokens)]


class ReasonClassifier:
    """Numpy-only inference for the negative-reason model."""

    def __init__(
        self,
        reasons: Sequence[str],
        vocabulary: Sequence[str],
        idf: np.ndarray,
        coefficients: np.ndarray,
        intercepts: np.ndarray,
        meta: dict | None = None,
    ) -> None:
        self.reasons: tuple[str, ...] = tuple(reasons)
        self.vocabulary = {term: index for index, term in enumerate(vocabulary)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self.coefficients = np.asarray(coefficients, dtype=np.float64)
        self.intercepts = np.asarray(intercepts, dtype=np.float64)
        self.meta = dict(meta or {})
        if self.coefficients.shape != (len(self.reasons), len(self.vocabulary)):
            raise ValueError(
                f"coefficients shape {self.coefficients.shape} does not match "
                f"{len(self.reasons)} reasons x {len(self.vocabulary)} terms"
            )

    @property
    def metrics(self) -> dict:
        """Held-out metrics recorded at training time."""
        return dict(self.meta.get("metrics", {}))

    @classmethod
    def load(cls, path: str | Path | None = None) -> ReasonClassifier:
        """Load an artifact folder (default: the shipped `models/artifacts/reasons/`)."""
        directory = Path(path) if path is not None else DEFAULT_ARTIFACT_DIR
        try:
            meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
            if meta.get("format") != ARTIFACT_FORMAT:
                raise ValueError(f"{META_FILE} is not a {ARTIFACT_FORMAT} artifact")
            if meta.get("normaliser_version") not in READS_LIKE:
                logger.warning(
                    "reason classifier trained with normaliser v%s, running v%s: retrain (train_reasons)",
                    meta.get("normaliser_version"),
                    NORMALISER_VERSION,
                )
            vocabulary = json.loads((directory / VOCABULARY_FILE).read_text(encoding="utf-8"))
            with np.load(directory / WEIGHTS_FILE) as weights:
                return cls(
                    meta["reasons"],
                    vocabulary,
                    weights["idf"],
                    weights["coefficients"],
                    weights["intercepts"],
                    meta,
                )
        except FileNotFoundError as exc:
            missing = Path(exc.filename or directory).name
            raise FileNotFoundError(f"no reason classifier at {directory} (missing {missing})") from exc
        except (ValueError, KeyError, AttributeError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"the reason classifier at {directory} is unreadable: {exc!r}") from exc

    def transform(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (term indices, L2-normalised sublinear TF-IDF values), as scikit-learn computes them."""
        rows = []
        for text in texts:
            counts: dict[int, int] = {}
            for term in reason_features(text or ""):
                index = self.vocabulary.get(term)
                if index is not None:
                    counts[index] = counts.get(index, 0) + 1
            indices = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            values = (
                1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
            ) * self.idf[indices]
            norm = np.sqrt(values @ values)
            rows.append((indices, values / norm if norm > 0 else values))
        return rows

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """Linear scores (n, reasons)."""
        scores = np.tile(self.intercepts, (len(texts), 1))
        for row, (indices, values) in enumerate(self.transform(texts)):
            if len(indices):
                scores[row] += self.coefficients[:, indices] @ values
        return scores

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities (n, len(reasons)), columns in `reasons` order (softmax of the linear scores)."""
        scores = self.decision_function(texts)
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most likely reason for each text."""
        if not len(texts):
            return []
        return [self.reasons[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def top_terms(self, reason: str, count: int = 10) -> list[str]:
        """The terms that push hardest towards `reason` (for explanations and sanity checks)."""
        row = self.coefficients[self.reasons.index(reason)]
        terms = list(self.vocabulary)
        return [terms[i] for i in np.argsort(-row)[:count]]


def load_reason_model(path: str | Path | None = None) -> ReasonClassifier | None:
    """The services' reason model, or None (one warning) when its artifact is missing or unreadable.

    Reasons are an extra: without them scoring goes on (tweets carry no predicted reason) and alerts show
    only the reasons already on the tweets, so a missing or damaged artifact must not stop a service.
    """
    try:
        return ReasonClassifier.load(path)
    except (OSError, ValueError) as exc:
        logger.warning(
            "no negative-reason classifier (%s): tweets carry no predicted reason, alerts only known ones",
            exc,
            extra={"error": str(exc)},
        )
        return None


def _fit(texts: Sequence[str], labels: Sequence[str], C: float, min_df: int) -> Any:
    """A scikit-learn TF-IDF + LR pipeline on `reason_features` (training side only)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(analyzer=reason_features, min_df=min_df, sublinear_tf=True),
        LogisticRegression(C=C, class_weight="balanced", max_iter=3000),
    )
    return pipeline.fit(list(texts), list(labels))


def export(pipeline: Any, directory: str | Path, meta: dict) -> Path:
    """Write a fitted pipeline as the numpy artifact folder."""
    vectorizer, classifier = pipeline.steps[0][1], pipeline.steps[-1][1]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocabulary = vectorizer.get_feature_names_out().tolist()
    np.savez_compressed(
        directory / WEIGHTS_FILE,
        idf=vectorizer.idf_.astype(np.float32),
        coefficients=classifier.coef_.astype(np.float32),
        intercepts=classifier.intercept_.astype(np.float32),
    )
    (directory / VOCABULARY_FILE).write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
    full_meta = {
        "format": ARTIFACT_FORMAT,
        "reasons": [str(reason) for reason in classifier.classes_],
        "normaliser_version": NORMALISER_VERSION,
        "features": "tokenize() unigrams + bigrams, sublinear TF-IDF, L2; multinomial logistic regression",
        **meta,
    }
    (directory / META_FILE).write_text(json.dumps(full_meta, indent=2, sort_keys=True), encoding="utf-8")
    return directory


def reason_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The airline negative tweets of a labelled table that carry a reason (reason names cleaned)."""
    rows = frame[(frame["source"] == "airline") & (frame["negativereason"] != "")]
    return rows.assign(reason=rows["negativereason"].map(lambda name: REASON_NAMES.get(name, name.lower())))


def train_reasons(
    frame: pd.DataFrame | None = None,
    output_dir: str | Path | None = DEFAULT_ARTIFACT_DIR,
    seed: int | None = None,
    grid: Sequence[float] = (0.3, 1.0, 3.0, 10.0),
    min_df: int = 2,
    track: bool = True,
    settings: CommonSettings | None = None,
) -> dict:
    """Train, select C on validation, refit on train+validation, report on test, export, track.

    `frame` defaults to `models.data.load_labelled()`; the splits are `make_splits(frame, seed)`, so the
    held-out reason tweets are the sentiment model's airline test tweets too. Returns the held-out test
    report (plus the chosen C).
    """
    from models import data
    from models.evaluate import confusion_matrix, evaluation_report, report_from_matrix

    seed = data.DEFAULT_SEED if seed is None else seed
    frame = data.load_labelled() if frame is None else frame
    splits = data.make_splits(frame, seed=seed)
    # No early stopping here: the early-stop rows train, as they did before that split existed.
    train = reason_table(splits.without_early_stopping())
    validation, test = reason_table(splits.validation), reason_table(splits.test)
    reasons = sorted(set(train["reason"]))
    scores = {}
    for C in grid:
        model = _fit(train["text"], train["reason"], C, min_df)
        predictions = model.predict(validation["text"].tolist())
        scores[C] = evaluation_report(validation["reason"].tolist(), list(predictions), reasons)["macro_f1"]
    best_C = max(grid, key=lambda C: (scores[C], -C))
    final_train = np.concatenate([train["text"].to_numpy(), validation["text"].to_numpy()])
    final_labels = np.concatenate([train["reason"].to_numpy(), validation["reason"].to_numpy()])
    pipeline = _fit(final_train, final_labels, best_C, min_df)
    predictions = list(pipeline.predict(test["text"].tolist()))
    matrix = confusion_matrix(test["reason"].tolist(), predictions, reasons)
    report = report_from_matrix(matrix, reasons)
    metrics = {
        "held_out": "airline negatives in the test split of models.data.make_splits",
        "C": best_C,
        "validation_macro_f1_by_C": {str(C): score for C, score in scores.items()},
        "n_train": len(final_train),
        "test": report,
    }
    logger.info(
        "reasons: C=%s test macro_f1=%.4f accuracy=%.4f", best_C, report["macro_f1"], report["accuracy"]
    )
    if output_dir is not None:
        export(pipeline, output_dir, {"metrics": metrics, "seed": seed, "C": best_C, "min_df": min_df})
    if track:
        from models import tracking

        params = {"model": "reasons tfidf+lr", "C": best_C, "min_df": min_df, "seed": seed}
        with tracking.start_run("reasons-tfidf-lr", params=params, settings=settings):
            tracking.log_report("reasons_test", report, matrix, reasons)
            if output_dir is not None:
                tracking.log_model_dir(output_dir)
    return {"C": best_C, **report}


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m models.reasons`: retrain the shipped artifact from data/ and print its test report."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m models.reasons", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output-dir", type=Path, default=DEFAULT_ARTIFACT_DIR, help="artifact folder to write"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="split seed (default models.data.DEFAULT_SEED)"
    )
    parser.add_argument("--no-track", action="store_true", help="do not log the run to MLflow")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = train_reasons(output_dir=args.output_dir, seed=args.seed, track=not args.no_track)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    # Run the importable module's main, so pickled classes are `models.reasons.*`, not `__main__.*`.
    from models.reasons import main as module_main

    raise SystemExit(module_main())
