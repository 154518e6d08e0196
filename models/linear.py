"""The linear sentiment model: TF-IDF over word and character n-grams, multinomial logistic regression.

Features of one tweet, from its `models.text.tokenize` tokens (the LSTM's tokens, so one tokenisation
serves both halves of the ensemble):
- words: unigrams and bigrams of the tokens with negation scope marked (`neg_` prefix: a bag of words
  cannot see order otherwise); with `flip_negation`, a word in a negation scope also counts -1 towards
  the word itself, so "not bad" leans the opposite way from "bad" (as much as the data allows);
- characters: 2- to 5-grams of each word with a space on either side (as scikit-learn's `char_wb`).
Each block is sublinear TF (1 + log count; a net negative count keeps its sign) times smooth IDF,
L2-normalised on its own, as two scikit-learn `TfidfVectorizer`s stacked side by side would be.

`LinearModel` scores with numpy only (no scikit-learn at serving); `fit_linear` trains one with
scikit-learn's `LogisticRegression` (a training dependency) on exactly the features `LinearModel` computes.
Saved as `linear.npz` (idf, coefficients, intercepts) + `linear_features.json` (feature strings in
column order, words then characters) inside an artifact folder.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from models.text import NEGATION_PREFIX, mark_negation

WEIGHTS_FILE = "linear.npz"
FEATURES_FILE = "linear_features.json"


@dataclass(frozen=True)
class LinearConfig:
    """Feature and regularisation settings (logged with the run)."""

    C: float = 2.0
    word_min_df: int = 2
    char_min_df: int = 3
    max_char_features: int = 300_000
    char_ngrams: tuple[int, int] = (2, 5)
    max_iter: int = 2000
    flip_negation: bool = False


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, classes) decision values."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def word_terms(tokens: Sequence[str]) -> list[str]:
    """Word unigrams and bigrams of the negation-marked tokens."""
    marked = mark_negation(tokens)
    return marked + [f"{first} {second}" for first, second in pairwise(marked)]


def flipped_terms(tokens: Sequence[str]) -> list[str]:
    """The words inside a negation scope, unmarked (each counts -1 towards its own feature)."""
    prefix = len(NEGATION_PREFIX)
    return [term[prefix:] for term in mark_negation(tokens) if term.startswith(NEGATION_PREFIX)]


def char_terms(tokens: Sequence[str], low: int = 2, high: int = 5) -> list[str]:
    """Character n-grams of each token padded with a space on either side (scikit-learn's `char_wb`)."""
    terms: list[str] = []
    for token in tokens:
        padded = f" {token} "
        size = len(padded)
        for n in range(low, high + 1):
            if n > size:
                break
            terms.extend(padded[start : start + n] for start in range(size - n + 1))
    return terms


def _block(
    term_lists: Sequence[list[str]],
    index: dict[str, int],
    idf: np.ndarray,
    offset: int,
    flipped_lists: Sequence[list[str]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COO triplets (rows, columns, values) of one L2-normalised sublinear TF-IDF block."""
    lookup = index.get
    rows: list[int] = []
    columns: list[int] = []
    counts: list[int] = []
    for row, terms in enumerate(term_lists):
        found = Counter(column for column in map(lookup, terms) if column is not None)
        if flipped_lists is not None and flipped_lists[row]:
            found.subtract(column for column in map(lookup, flipped_lists[row]) if column is not None)
            found = Counter({column: count for column, count in found.items() if count})
        rows.extend([row] * len(found))
        columns.extend(found.keys())
        counts.extend(found.values())
    row_ids = np.asarray(rows, dtype=np.int64)
    column_ids = np.asarray(columns, dtype=np.int64)
    signed = np.asarray(counts, dtype=np.float64)
    values = np.sign(signed) * (1.0 + np.log(np.abs(signed))) * idf[column_ids]
    norms = np.sqrt(np.bincount(row_ids, values * values, minlength=len(term_lists)))
    return row_ids, column_ids + offset, values / norms[row_ids]


class LinearModel:
    """TF-IDF + logistic regression scored with numpy (no scikit-learn)."""

    def __init__(
        self,
        word_features: Sequence[str],
        char_features: Sequence[str],
        idf: np.ndarray,
        coefficients: np.ndarray,
        intercepts: np.ndarray,
        char_ngrams: tuple[int, int] = (2, 5),
        flip_negation: bool = False,
    ) -> None:
        self.word_features = list(word_features)
        self.char_features = list(char_features)
        self.word_index = {term: column for column, term in enumerate(self.word_features)}
        self.char_index = {term: column for column, term in enumerate(self.char_features)}
        self.idf = np.asarray(idf, dtype=np.float32).astype(np.float64)  # as saved
        self.coefficients = np.asarray(coefficients, dtype=np.float32)
        self.intercepts = np.asarray(intercepts, dtype=np.float32)
        self.char_ngrams = (int(char_ngrams[0]), int(char_ngrams[1]))
        self.flip_negation = bool(flip_negation)
        n_features = len(self.word_features) + len(self.char_features)
        if self.idf.shape != (n_features,) or self.coefficients.shape[1] != n_features:
            raise ValueError(
                f"linear model shapes disagree: {n_features} features, idf {self.idf.shape}, "
                f"coefficients {self.coefficients.shape}"
            )

    def features(self, token_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """COO triplets (rows, columns, values) of the TF-IDF matrix, word columns then character columns."""
        n_words = len(self.word_features)
        low, high = self.char_ngrams
        flipped = [flipped_terms(tokens) for tokens in token_lists] if self.flip_negation else None
        words = _block([word_terms(tokens) for tokens in token_lists], self.word_index, self.idf, 0, flipped)
        chars = _block(
            [char_terms(tokens, low, high) for tokens in token_lists],
            self.char_index,
            self.idf[n_words:],
            n_words,
        )
        return tuple(np.concatenate(pair) for pair in zip(words, chars, strict=True))  # type: ignore[return-value]

    def logits(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """(n, classes) decision values: coefficients . features + intercepts."""
        rows, columns, values = self.features(token_lists)
        contributions = self.coefficients[:, columns] * values
        out = np.tile(self.intercepts.astype(np.float64), (len(token_lists), 1))
        for label in range(out.shape[1]):
            out[:, label] += np.bincount(rows, contributions[label], minlength=len(token_lists))
        return out

    def save(self, directory: Path) -> None:
        """Write linear.npz and linear_features.json into directory."""
        directory = Path(directory)
        np.savez_compressed(
            directory / WEIGHTS_FILE,
            idf=self.idf.astype(np.float32),
            coefficients=self.coefficients,
            intercepts=self.intercepts,
            char_ngrams=np.asarray(self.char_ngrams),
            n_words=np.asarray(len(self.word_features)),
            flip_negation=np.asarray(self.flip_negation),
        )
        features = self.word_features + self.char_features
        (directory / FEATURES_FILE).write_text(json.dumps(features, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> LinearModel:
        """Read a model written by `save`."""
        directory = Path(directory)
        features = json.loads((directory / FEATURES_FILE).read_text(encoding="utf-8"))
        with np.load(directory / WEIGHTS_FILE) as weights:
            n_words = int(weights["n_words"])
            return cls(
                features[:n_words],
                features[n_words:],
                weights["idf"],
                weights["coefficients"],
                weights["intercepts"],
                tuple(weights["char_ngrams"].tolist()),
                bool(weights["flip_negation"]),
            )


def _vocabulary(
    term_lists: Sequence[list[str]], min_df: int, max_features: int | None
) -> tuple[list[str], np.ndarray]:
    """Terms in at least min_df documents (the max_features most frequent ones), sorted; their df."""
    document_frequency: Counter[str] = Counter()
    for terms in term_lists:
        document_frequency.update(set(terms))
    kept = [(term, df) for term, df in document_frequency.items() if df >= min_df]
    if max_features is not None and len(kept) > max_features:
        kept = sorted(kept, key=lambda item: (-item[1], item[0]))[:max_features]
    kept.sort()
    return [term for term, _ in kept], np.array([df for _, df in kept], dtype=np.float64)


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
    low, high = config.char_ngrams
    words, word_df = _vocabulary([word_terms(tokens) for tokens in token_lists], config.word_min_df, None)
    chars, char_df = _vocabulary(
        [char_terms(tokens, low, high) for tokens in token_lists],
        config.char_min_df,
        config.max_char_features,
    )
    n_docs = len(token_lists)
    idf = np.log((1.0 + n_docs) / (1.0 + np.concatenate([word_df, char_df]))) + 1.0
    n_features = len(words) + len(chars)
    zeros = np.zeros((len(label_order), n_features), dtype=np.float32)
    model = LinearModel(
        words, chars, idf, zeros, np.zeros(len(label_order)), config.char_ngrams, config.flip_negation
    )
    rows, columns, values = model.features(token_lists)
    matrix = csr_matrix((values, (rows, columns)), shape=(n_docs, n_features))
    classifier = LogisticRegression(C=config.C, class_weight="balanced", max_iter=config.max_iter)
    classifier.fit(matrix, list(labels), sample_weight=row_weights)
    order = [list(classifier.classes_).index(label) for label in label_order]
    model.coefficients = classifier.coef_[order].astype(np.float32)
    model.intercepts = classifier.intercept_[order].astype(np.float32)
    return model
