"""The linear sentiment model: TF-IDF over word n-grams, multinomial logistic regression.

Features of one tweet, from its `models.text.tokenize` tokens (the LSTM's tokens, so one tokenisation
serves both halves of the ensemble): unigrams and bigrams of the tokens with negation scope marked
(`neg_` prefix: a bag of words cannot see order otherwise), each counted once (binary TF). With
`flip_negation`, a word inside a negation scope also enters as its own feature with the sign flipped, so
"not bad" leans away from what "bad" means (as far as the data allows). A tweet's vector is those entries'
IDF, L2-normalised: logits = sum(sign * idf * W[feature]) / sqrt(sum(idf^2)) + b.

Every tweet becomes a list of feature ids (`feature_ids`): 0 pads, 1..F are the features, F+1..2F their
flipped twins. The serving artifact computes the logits inside the ONNX graph next to the LSTM
(`models.export.fuse_ensemble`), from an int32 (batch, n) id matrix; `LinearModel.logits` computes the same
with numpy (training, evaluation, parity tests). Serving imports this module, so what trains one
(`models.baseline.fit_linear`, scikit-learn) lives with the training code.
Saved as `linear.npz` (idf, coefficients, intercepts) + `linear_features.json` (features in id order).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from models.text import NEGATION_PREFIX, mark_negation

WEIGHTS_FILE = "linear.npz"
FEATURES_FILE = "linear_features.json"
PAD_FEATURE = 0


@dataclass(frozen=True)
class LinearConfig:
    """Feature and regularisation settings (logged with the run)."""

    C: float = 2.0
    min_df: int = 2
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
    """The words inside a negation scope, unmarked (each enters its own feature with the sign flipped)."""
    prefix = len(NEGATION_PREFIX)
    return [term[prefix:] for term in mark_negation(tokens) if term.startswith(NEGATION_PREFIX)]


class LinearModel:
    """TF-IDF + logistic regression over feature ids (numpy here; inside the ONNX graph at serving)."""

    def __init__(
        self,
        features: Sequence[str],
        idf: np.ndarray,
        coefficients: np.ndarray,
        intercepts: np.ndarray,
        flip_negation: bool = False,
    ) -> None:
        self.features = list(features)
        self.index = {term: position + 1 for position, term in enumerate(self.features)}
        self.idf = np.asarray(idf, dtype=np.float32)
        self.coefficients = np.asarray(coefficients, dtype=np.float32)
        self.intercepts = np.asarray(intercepts, dtype=np.float32)
        self.flip_negation = bool(flip_negation)
        if self.idf.shape != (len(self.features),) or self.coefficients.shape[1] != len(self.features):
            raise ValueError(
                f"linear model shapes disagree: {len(self.features)} features, idf {self.idf.shape}, "
                f"coefficients {self.coefficients.shape}"
            )

    def feature_ids(self, tokens: Sequence[str]) -> list[int]:
        """One tweet's distinct feature ids (1..F; flipped twins F+1..2F)."""
        lookup = self.index.get
        # Ids start at 1, so filter(None, ...) drops exactly the unknown terms (at C speed).
        ids = dict.fromkeys(filter(None, map(lookup, word_terms(tokens))))
        if self.flip_negation:
            offset = len(self.features)
            ids.update(dict.fromkeys(offset + c for c in filter(None, map(lookup, flipped_terms(tokens)))))
        return list(ids)

    def id_matrix(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """An int32 (n, widest) matrix of feature ids, PAD_FEATURE after each row's own."""
        rows = [self.feature_ids(tokens) for tokens in token_lists]
        matrix = np.full((len(rows), max([1, *map(len, rows)])), PAD_FEATURE, dtype=np.int32)
        for position, ids in enumerate(rows):
            matrix[position, : len(ids)] = ids
        return matrix

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Per feature id (pad, features, flipped twins): signed idf * coefficients (ids, classes), idf^2."""
        weighted = (self.coefficients * self.idf).T
        zero = np.zeros((1, weighted.shape[1]), dtype=np.float32)
        squares = np.concatenate([[0.0], self.idf**2, self.idf**2]).astype(np.float32)
        return np.concatenate([zero, weighted, -weighted]).astype(np.float32), squares

    def logits(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """(n, classes) decision values (what the fused ONNX graph computes)."""
        weighted, squares = self.tables()
        ids = self.id_matrix(token_lists)
        norms = np.sqrt(np.maximum(squares[ids].sum(axis=1), 1e-12))
        return weighted[ids].sum(axis=1) / norms[:, None] + self.intercepts

    def save(self, directory: Path) -> None:
        """Write linear.npz and linear_features.json into directory."""
        directory = Path(directory)
        np.savez(
            directory / WEIGHTS_FILE,
            idf=self.idf,
            coefficients=self.coefficients,
            intercepts=self.intercepts,
            flip_negation=np.asarray(self.flip_negation),
        )
        text = json.dumps(self.features, ensure_ascii=False)
        (directory / FEATURES_FILE).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> LinearModel:
        """Read a model written by `save`."""
        directory = Path(directory)
        features = json.loads((directory / FEATURES_FILE).read_text(encoding="utf-8"))
        with np.load(directory / WEIGHTS_FILE) as weights:
            return cls(
                features,
                weights["idf"],
                weights["coefficients"],
                weights["intercepts"],
                bool(weights["flip_negation"]),
            )
